"""Cutting extracted text into chunks the text tower can embed whole.

Offsets: every chunk's ``start``/``end`` index into the *document text*, which is the texts of all
pages joined with ``"\\n\\n"`` (exactly :attr:`mrag.extract.document.ParsedDocument.text`), so
``document_text(pages)[chunk.start:chunk.end] == chunk.text`` always holds.

How cuts are chosen: each page is tokenized once (with offsets) by the model's own tokenizer; a
chunk takes as many tokens as fit and then backs off to the best boundary within its second half,
preferring a paragraph break, then a sentence end, then a space, and only then cutting between two
tokens. Consecutive chunks of one section share ``overlap_tokens`` tokens so a sentence cut in two
is still whole somewhere. Sections (runs of pages with the same heading path) never share a chunk;
pages without headings (PDF pages) do, and then the chunk lists each page it covers.

Tables (units whose ``element`` is "table", Markdown from :mod:`mrag.extract.tables`) are
sections of their own, with their caption as the last heading: one that fits stays one chunk,
a longer one is cut between rows only, and every piece after the first starts with the table's
header row again. For those later pieces ``text`` is the header then ``document_text[start:end]``
(the rows); everywhere else the offset rule above holds exactly.

The token budget counts what the model will actually read: ``[CLS]``/``[SEP]`` and the heading
prefix that :meth:`Chunk.embedding_text` adds are all inside ``max_tokens``; every chunk is checked
by encoding its embedding text once before it is emitted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from tokenizers import Tokenizer

from mrag.extract.document import PageText
from mrag.extract.tables import header_lines

#: Separator between page texts in the document text that offsets refer to.
PAGE_SEPARATOR = "\n\n"
#: Separator between heading levels in :meth:`Chunk.embedding_text`.
HEADING_SEPARATOR = " > "

# A tokenizer maps an over-long "word" (a URL, a base64 blob, 100k characters without a space) to
# one [UNK] spanning all of it. Such spans are cut into pieces of this many characters, each counted
# as one token, so a chunk's *text* stays bounded too.
_LONG_TOKEN_CHARS = 24
_PIECE_CHARS = 8

_PARAGRAPH, _SENTENCE, _WORD, _NONE = 3, 2, 1, 0
_SENTENCE_ENDS = frozenset(".!?;:。！？")


@dataclass
class Chunk:
    """A piece of a document small enough to embed in one pass.

    ``text == document_text[start:end]``; ``pages`` lists every page the chunk touches (``[None]``
    for formats without pages); ``headings`` is the section's heading path (possibly shortened so
    it fits the token budget); ``element`` is "text", or "table" for a piece of a table.
    """

    text: str
    pages: list[int | None]
    start: int
    end: int
    index: int
    headings: list[str] = field(default_factory=list)
    element: str = "text"

    def embedding_text(self) -> str:
        """The text to embed: "H1 > H2" then a blank line then the chunk text."""
        return heading_prefix(self.headings) + self.text


def heading_prefix(headings: Sequence[str]) -> str:
    """What :meth:`Chunk.embedding_text` puts before the chunk text ("" without headings)."""
    return HEADING_SEPARATOR.join(headings) + "\n\n" if headings else ""


def document_text(pages: Sequence[PageText]) -> str:
    """The text chunk offsets refer to: page texts joined with :data:`PAGE_SEPARATOR`."""
    return PAGE_SEPARATOR.join(page.text for page in pages)


@dataclass
class _Tokens:
    """Flat token spans of one section, as offsets into the document text."""

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)  # index into the pages list


_SURROGATES = re.compile("[\ud800-\udfff]")


def _encodable(text: str) -> str:
    """``text`` with lone surrogates (which the tokenizer rejects) as U+FFFD, one for one.

    Extraction cleans text before it gets here; this keeps chunking total on any ``str`` without
    moving a single offset.
    """
    return _SURROGATES.sub("\ufffd", text)


def _count(tokenizer: Tokenizer, text: str) -> int:
    return len(tokenizer.encode(_encodable(text), add_special_tokens=False).ids)


def _fit_headings(tokenizer: Tokenizer, headings: list[str], limit: int) -> list[str]:
    """Drop outer headings (then shorten the innermost) until the prefix takes ``limit`` tokens."""
    kept = list(headings)
    while kept and _count(tokenizer, heading_prefix(kept)) > limit:
        if len(kept) > 1:
            kept.pop(0)
            continue
        encoding = tokenizer.encode(_encodable(kept[0]), add_special_tokens=False)
        keep_tokens = max(0, limit - 1)
        if keep_tokens == 0 or not encoding.offsets:
            return []
        cut = encoding.offsets[min(keep_tokens, len(encoding.offsets)) - 1][1]
        shorter = kept[0][:cut].rstrip()
        if not shorter or shorter == kept[0]:
            return []
        kept[0] = shorter
        limit_check = _count(tokenizer, heading_prefix(kept))
        if limit_check <= limit:
            break
        # Rare tokenizers count differently once the text is shorter: shrink by one and retry.
        kept[0] = shorter[:-1]
        if not kept[0]:
            return []
    return kept


class _Section:
    def __init__(self, text: str, tokens: _Tokens, page_numbers: list[int | None]) -> None:
        self.text = text
        self.tokens = tokens
        self.page_numbers = page_numbers

    def score(self, index: int) -> int:
        """How good a cut right before token ``index`` is."""
        tokens = self.tokens
        if tokens.pages[index] != tokens.pages[index - 1]:
            return _PARAGRAPH
        gap = self.text[tokens.ends[index - 1] : tokens.starts[index]]
        if not gap:
            return _NONE
        if "\n\n" in gap or "\n\r\n" in gap:
            return _PARAGRAPH
        if "\n" in gap:
            return _SENTENCE
        if gap.isspace() or not gap.strip():
            previous = self.text[tokens.ends[index - 1] - 1 : tokens.ends[index - 1]]
            return _SENTENCE if previous in _SENTENCE_ENDS else _WORD
        return _WORD


def _section_tokens(
    tokenizer: Tokenizer, pages: Sequence[PageText], offsets: list[int], members: list[int]
) -> _Tokens:
    tokens = _Tokens()
    encodings = tokenizer.encode_batch(
        [_encodable(pages[i].text) for i in members], add_special_tokens=False
    )
    for member, encoding in zip(members, encodings, strict=True):
        base = offsets[member]
        for start, end in encoding.offsets:
            if end <= start:
                continue
            if tokens.ends and base + start < tokens.ends[-1]:
                # Several tokens can share a span (e.g. a character split into pieces); one is
                # enough for deciding cuts, the check encode counts them exactly.
                continue
            if end - start > _LONG_TOKEN_CHARS:
                for piece in range(start, end, _PIECE_CHARS):
                    tokens.starts.append(base + piece)
                    tokens.ends.append(base + min(end, piece + _PIECE_CHARS))
                    tokens.pages.append(member)
                continue
            tokens.starts.append(base + start)
            tokens.ends.append(base + end)
            tokens.pages.append(member)
    return tokens


def chunk_document(
    pages: Sequence[PageText],
    tokenizer: Tokenizer,
    *,
    max_tokens: int = 512,
    overlap_tokens: int = 64,
    min_tokens: int = 32,
) -> list[Chunk]:
    """Cut ``pages`` into chunks of at most ``max_tokens`` tokens as the model reads them.

    ``max_tokens`` includes the special tokens the tokenizer adds and the heading prefix of
    :meth:`Chunk.embedding_text`. ``overlap_tokens`` are repeated between consecutive chunks of a
    section (capped at half a chunk). A cut is never placed less than ``min_tokens`` tokens into a
    chunk while a longer cut is possible. Whitespace-only pages yield nothing.
    """
    specials = tokenizer.num_special_tokens_to_add(False)
    room = max_tokens - specials
    if room < 1:
        raise ValueError(f"max_tokens={max_tokens} leaves no room beside {specials} special tokens")
    text = document_text(pages)
    offsets: list[int] = []
    position = 0
    for page in pages:
        offsets.append(position)
        position += len(page.text) + len(PAGE_SEPARATOR)

    groups: list[list[int]] = []
    for index, page in enumerate(pages):
        if not page.text.strip():
            continue
        previous = pages[groups[-1][-1]] if groups else None
        if (
            previous is not None
            and previous.headings == page.headings
            and previous.element == page.element == "text"
        ):
            groups[-1].append(index)
        else:
            groups.append([index])

    chunks: list[Chunk] = []
    for members in groups:
        headings = _fit_headings(tokenizer, list(pages[members[0]].headings), room // 2)
        prefix = heading_prefix(headings)
        budget = max(1, room - (_count(tokenizer, prefix) if prefix else 0))
        unit = pages[members[0]]
        if unit.element == "table":
            pieces = _table_pieces(tokenizer, unit.text, offsets[members[0]], prefix, budget)
            if pieces is not None:
                for piece, first, last in pieces:
                    chunks.append(
                        Chunk(piece, [unit.page], first, last, len(chunks), list(headings), "table")
                    )
                continue
        tokens = _section_tokens(tokenizer, pages, offsets, members)
        section = _Section(text, tokens, [pages[i].page for i in members])
        for start, end in _cut(section, tokenizer, prefix, budget, overlap_tokens, min_tokens):
            first, last = tokens.starts[start], tokens.ends[end - 1]
            page_numbers: list[int | None] = []
            for member in dict.fromkeys(tokens.pages[start:end]):
                if pages[member].page not in page_numbers:
                    page_numbers.append(pages[member].page)
            chunks.append(
                Chunk(
                    text=text[first:last],
                    pages=page_numbers,
                    start=first,
                    end=last,
                    index=len(chunks),
                    headings=list(headings),
                    element=unit.element,
                )
            )
    return chunks


def _table_pieces(
    tokenizer: Tokenizer, text: str, base: int, prefix: str, budget: int
) -> list[tuple[str, int, int]] | None:
    """(text, start, end) of each piece of a Markdown table cut between rows, the header repeated.

    ``None`` when a single row with the header does not fit: the table is then cut like text.
    """
    if _count(tokenizer, prefix + text) <= budget:
        return [(text, base, base + len(text))]
    lines = text.split("\n")
    head = header_lines(text)
    header = "\n".join(lines[:head])
    starts = []
    position = 0
    for line in lines:
        starts.append(position)
        position += len(line) + 1
    lead = prefix + header + "\n" if header else prefix
    lead_cost = _count(tokenizer, lead)
    costs = [_count(tokenizer, line) + 1 for line in lines[head:]]
    pieces: list[tuple[int, int]] = []
    first = head
    while first < len(lines):
        last, used = first, lead_cost
        while last < len(lines) and used + costs[last - head] <= budget:
            used += costs[last - head]
            last += 1
        while last > first and _count(tokenizer, lead + "\n".join(lines[first:last])) > budget:
            last -= 1  # the per-line counts were an estimate; the whole piece decides
        if last == first:
            return None
        pieces.append((first, last))
        first = last
    result = []
    for number, (first, last) in enumerate(pieces):
        rows = "\n".join(lines[first:last])
        start = base + (0 if number == 0 else starts[first])
        end = base + starts[first] + len(rows)
        piece = text[: starts[first] + len(rows)] if number == 0 else f"{header}\n{rows}"
        result.append((piece if header else rows, start, end))
    return result


def _cut(
    section: _Section,
    tokenizer: Tokenizer,
    prefix: str,
    budget: int,
    overlap_tokens: int,
    min_tokens: int,
) -> list[tuple[int, int]]:
    """Token ranges [start, end) of the chunks of one section."""
    total = len(section.tokens.starts)
    overlap = max(0, min(overlap_tokens, budget // 2))
    floor = max(1, min(min_tokens, budget // 2))
    ranges: list[tuple[int, int]] = []
    start = 0
    while start < total:
        end = min(total, start + budget)
        if end < total:
            end = _best_cut(section, start + max(floor, budget // 2), end, start + floor)
        end = _shrink_to_fit(section, tokenizer, prefix, budget, start, end)
        ranges.append((start, end))
        if end >= total:
            break
        start = _overlap_start(section, start, end, overlap)
    return ranges


def _best_cut(section: _Section, preferred_from: int, limit: int, lowest: int) -> int:
    """The token index to cut before: the best boundary, latest among equals, in the window."""
    for window_start in (preferred_from, lowest):
        best_score, best_index = _NONE, -1
        for index in range(limit, max(window_start, 1) - 1, -1):
            score = section.score(index)
            if score > best_score:
                best_score, best_index = score, index
                if score == _PARAGRAPH:
                    break
        if best_score > _NONE:
            return best_index
    return limit


def _shrink_to_fit(
    section: _Section, tokenizer: Tokenizer, prefix: str, budget: int, start: int, end: int
) -> int:
    """Pull ``end`` back until the chunk, encoded as the model will see it, fits the budget."""
    tokens = section.tokens
    while True:
        piece = section.text[tokens.starts[start] : tokens.ends[end - 1]]
        used = _count(tokenizer, prefix + piece)
        if used <= budget or end - start <= 1:
            return end
        # Cutting inside a word can make its pieces tokenize longer than the whole did.
        excess = used - budget
        end = max(start + 1, end - max(1, excess))


def _overlap_start(section: _Section, start: int, end: int, overlap: int) -> int:
    """Where the next chunk begins: ``overlap`` tokens back, moved to a word start if possible."""
    if overlap == 0:
        return end
    earliest = max(start + 1, end - overlap)
    best: int | None = None
    for index in range(earliest, end):
        score = section.score(index)
        if score >= _SENTENCE:
            return index
        if score == _WORD and best is None:
            best = index
    return best if best is not None else earliest
