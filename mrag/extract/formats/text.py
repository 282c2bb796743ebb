"""Plain text and Markdown files.

Markdown is cut into sections at its ATX headings (``#`` to ``######``); each section becomes one
:class:`PageText` whose ``headings`` is the path of headings above it, so a chunk deep in a manual
still knows it belongs to "Install > From source". A ``#`` line inside a fenced code block is code,
not a heading.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from mrag.extract.document import ExtractionLimits, PageText, ParsedDocument, read_source

TEXT_SUFFIXES = (".txt", ".text", ".rst")
MARKDOWN_SUFFIXES = (".md", ".markdown")

_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


_BOMS = (
    # UTF-32 first: its little-endian mark starts with UTF-16's.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
#: The most common legacy encoding of text files, preferred when detection finds a tie.
_WESTERN = "cp1252"
#: Bytes looked at to guess UTF-16 without a byte-order mark.
_SNIFF_BYTES = 4096


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 byte order read from the NUL bytes, or None.

    Text in Latin script has one NUL per character, all on odd positions (little-endian) or all on
    even ones (big-endian).
    """
    head = data[:_SNIFF_BYTES]
    if len(head) < 4:
        return None
    even = head[0::2].count(0) / len(head[0::2])
    odd = head[1::2].count(0) / len(head[1::2])
    if odd > 0.4 and even < 0.05:
        return "utf-16-le"
    if even > 0.4 and odd < 0.05:
        return "utf-16-be"
    return None


def decode_text(data: bytes) -> tuple[str, str | None]:
    """Decode a text file's bytes; returns the text and, when the encoding was a guess, a note.

    Order: a byte-order mark (UTF-8/16/32), UTF-16 without one (from its NUL bytes), UTF-8, then
    charset-normalizer's detection, and Latin-1 (which reads any bytes) as the last resort.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, "replace"), None
    guess = _utf16_without_bom(data)
    if guess is not None:
        try:
            return data.decode(guess), f"no byte-order mark; read as {guess.upper()} (guessed)"
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        position = exc.start
    import charset_normalizer

    matches = list(charset_normalizer.from_bytes(data))
    if matches:
        best = min(matches, key=lambda match: (match.chaos, -match.coherence))
        # Short texts fit many code pages equally well; among equals, the Western default wins.
        tied = [
            match
            for match in matches
            if match.chaos <= best.chaos + 0.01 and match.coherence >= best.coherence - 0.05
        ]
        best = next((match for match in tied if match.encoding == _WESTERN), best)
        note = f"not valid UTF-8 (byte {position}); read as {best.encoding} (detected)"
        return str(best), note
    note = f"not valid UTF-8 (byte {position}); read as Latin-1, some characters may be wrong"
    return data.decode("latin-1"), note


def read_text_file(path: Path, problems: list[str]) -> str:
    """File contents as text (:func:`decode_text`); a guessed encoding is noted in ``problems``."""
    text, note = decode_text(read_source(path))
    if note:
        problems.append(note)
    return text


def markdown_sections(text: str) -> list[PageText]:
    """Split Markdown into sections, each with the heading path leading to it."""
    sections: list[PageText] = []
    stack: list[tuple[int, str]] = []
    body: list[str] = []
    fence: str | None = None

    def flush() -> None:
        content = "\n".join(body).strip()
        if content:
            sections.append(PageText(page=None, text=content, headings=[t for _, t in stack]))
        body.clear()

    for line in text.splitlines():
        fence_match = _FENCE.match(line)
        if fence is not None:
            # A fence closes only with the same character, at least as long as the opener.
            if (
                fence_match
                and fence_match.group(1)[0] == fence[0]
                and len(fence_match.group(1)) >= len(fence)
                and not line.strip()[len(fence_match.group(1)) :].strip()
            ):
                fence = None
            body.append(line)
            continue
        if fence_match:
            fence = fence_match.group(1)
            body.append(line)
            continue
        heading = _ATX_HEADING.match(line)
        if heading:
            flush()
            level = len(heading.group(1))
            title = (heading.group(2) or "").strip()
            while stack and stack[-1][0] >= level:
                stack.pop()
            if title:
                stack.append((level, title))
            continue
        body.append(line)
    flush()
    return sections


def parse_text_file(path: Path, *, limits: ExtractionLimits) -> ParsedDocument:
    """Read a text or Markdown file into sections (one section for plain text)."""
    problems: list[str] = []
    text = read_text_file(path, problems)
    markdown = path.suffix.lower() in MARKDOWN_SUFFIXES
    if markdown:
        pages = markdown_sections(text)
    else:
        stripped = text.strip()
        pages = [PageText(page=None, text=stripped)] if stripped else []
    return ParsedDocument(
        source=str(path),
        kind="markdown" if markdown else "text",
        pages=pages,
        images=[],
        problems=problems,
        page_count=1,
    )
