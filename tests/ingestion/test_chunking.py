"""Token-aware chunking, checked against a real WordPiece tokenizer built from a test vocabulary."""

from __future__ import annotations

import itertools
import random
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from mrag.extract.document import PageText
from mrag.extract.tables import Table, table_unit
from mrag.ingestion.chunking import Chunk, chunk_document, document_text
from mrag.model.tokenizer import bert_wordpiece_tokenizer

WORDS = (
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "this",
    "are",
    "be",
    "or",
    "an",
    "it",
    "which",
    "were",
    "index",
    "image",
    "page",
    "figure",
    "document",
    "search",
    "model",
    "text",
    "chunk",
    "token",
    "paragraph",
    "sentence",
)


def build_vocab() -> dict[str, int]:
    tokens = ["[PAD]", *[f"[unused{i}]" for i in range(99)], "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = string.ascii_lowercase + string.digits + string.punctuation
    tokens += list(chars)
    tokens += [f"##{char}" for char in chars]
    tokens += [*WORDS, *(f"##{word}" for word in ("ing", "ed", "s", "ly"))]
    return {token: index for index, token in enumerate(dict.fromkeys(tokens))}


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return bert_wordpiece_tokenizer(build_vocab())


def sentence(rng: random.Random) -> str:
    words = [rng.choice([*WORDS, "zebra", "quokka", "x9"]) for _ in range(rng.randint(4, 18))]
    return " ".join(words).capitalize() + rng.choice([".", ".", "!", "?"])


def paragraph(rng: random.Random) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(1, 6)))


def pages_of(rng: random.Random, count: int) -> list[PageText]:
    return [
        PageText(page=number, text="\n\n".join(paragraph(rng) for _ in range(rng.randint(0, 5))))
        for number in range(1, count + 1)
    ]


def check_invariants(
    pages: list[PageText], chunks: list[Chunk], tokenizer: Tokenizer, max_tokens: int
) -> None:
    full = document_text(pages)
    covered = bytearray(len(full))
    for position, chunk in enumerate(chunks):
        assert chunk.index == position
        assert full[chunk.start : chunk.end] == chunk.text
        assert chunk.text.strip() == chunk.text and chunk.text
        encoded = tokenizer.encode(chunk.embedding_text(), add_special_tokens=True)
        assert len(encoded.ids) <= max_tokens
        assert encoded.ids[0] == 101 and encoded.ids[-1] == 102
        for index in range(chunk.start, chunk.end):
            covered[index] = 1
    missing = [
        char for char, seen in zip(full, covered, strict=True) if not seen and not char.isspace()
    ]
    assert missing == []


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(("max_tokens", "overlap"), [(64, 8), (128, 16), (512, 64), (20, 4)])
def test_random_documents_respect_every_invariant(
    tokenizer: Tokenizer, seed: int, max_tokens: int, overlap: int
) -> None:
    rng = random.Random(seed)
    pages = pages_of(rng, rng.randint(1, 12))
    chunks = chunk_document(pages, tokenizer, max_tokens=max_tokens, overlap_tokens=overlap)
    check_invariants(pages, chunks, tokenizer, max_tokens)


def test_pages_joined_by_blank_lines_and_chunks_may_span_pages(tokenizer: Tokenizer) -> None:
    pages = [PageText(1, "The index page."), PageText(2, ""), PageText(3, "A figure of a model.")]
    chunks = chunk_document(pages, tokenizer, max_tokens=64)
    assert len(chunks) == 1
    assert chunks[0].pages == [1, 3]
    assert chunks[0].text == "The index page.\n\n\n\nA figure of a model."
    assert chunks[0].start == 0


def test_empty_pages_yield_nothing(tokenizer: Tokenizer) -> None:
    assert chunk_document([PageText(1, "  \n "), PageText(2, "")], tokenizer) == []
    assert chunk_document([], tokenizer) == []


def test_overlap_between_consecutive_chunks(tokenizer: Tokenizer) -> None:
    rng = random.Random(7)
    text = " ".join(sentence(rng) for _ in range(60))
    chunks = chunk_document([PageText(None, text)], tokenizer, max_tokens=64, overlap_tokens=16)
    assert len(chunks) > 3
    for previous, following in itertools.pairwise(chunks):
        assert following.start < previous.end  # shares text with the chunk before
        assert following.start > previous.start
        assert following.pages == [None]


def test_no_overlap_when_disabled(tokenizer: Tokenizer) -> None:
    text = " ".join(["the index"] * 300)
    chunks = chunk_document([PageText(None, text)], tokenizer, max_tokens=50, overlap_tokens=0)
    for previous, following in itertools.pairwise(chunks):
        assert following.start > previous.end


def test_paragraph_boundaries_are_preferred(tokenizer: Tokenizer) -> None:
    # Each paragraph is 30 tokens; three fit into 126 content tokens, so cuts fall between them.
    para = " ".join(["the model"] * 15)
    text = "\n\n".join([para] * 8)
    chunks = chunk_document([PageText(None, text)], tokenizer, max_tokens=100, overlap_tokens=0)
    for chunk in chunks:
        assert chunk.text.startswith("the model") and chunk.text.endswith("the model")
        assert text[chunk.end : chunk.end + 2] in ("\n\n", "")


def test_sentence_boundaries_beat_word_boundaries(tokenizer: Tokenizer) -> None:
    text = " ".join(["The index is a model of the page text."] * 40)
    chunks = chunk_document([PageText(None, text)], tokenizer, max_tokens=60, overlap_tokens=0)
    assert len(chunks) > 2
    assert all(chunk.text.endswith(".") for chunk in chunks)


def test_headings_are_kept_and_budgeted(tokenizer: Tokenizer) -> None:
    rng = random.Random(3)
    pages = [
        PageText(None, paragraph(rng) * 5, ["Install", "From source"]),
        PageText(None, paragraph(rng) * 5, ["Usage"]),
    ]
    chunks = chunk_document(pages, tokenizer, max_tokens=48, overlap_tokens=8)
    check_invariants(pages, chunks, tokenizer, 48)
    assert {tuple(chunk.headings) for chunk in chunks} == {("Install", "From source"), ("Usage",)}
    first = chunks[0]
    assert first.embedding_text() == "Install > From source\n\n" + first.text
    # A section change always starts a fresh chunk.
    assert all(len(set(map(tuple, [c.headings]))) == 1 for c in chunks)
    boundary = next(c for c in chunks if c.headings == ["Usage"])
    assert boundary.start == len(pages[0].text) + 2


def test_overlong_headings_are_shortened_to_fit(tokenizer: Tokenizer) -> None:
    headings = [" ".join(["index"] * 40), " ".join(["page"] * 40)]
    pages = [PageText(None, "the text of the model. " * 30, headings)]
    chunks = chunk_document(pages, tokenizer, max_tokens=32, overlap_tokens=4)
    check_invariants(pages, chunks, tokenizer, 32)
    assert chunks[0].headings and len(chunks[0].headings) == 1


def test_huge_unbroken_token_still_chunks_within_limits(tokenizer: Tokenizer) -> None:
    blob = "".join(random.Random(1).choice("abcdef0123") for _ in range(100_000))
    pages = [PageText(1, "Before the blob. " + blob + " after the blob.")]
    chunks = chunk_document(pages, tokenizer, max_tokens=64, overlap_tokens=8)
    check_invariants(pages, chunks, tokenizer, 64)
    assert max(len(chunk.text) for chunk in chunks) < 2000


def test_long_word_of_known_pieces_hard_splits(tokenizer: Tokenizer) -> None:
    # 90 characters: under WordPiece's per-word cap, so it becomes ~90 single-character tokens.
    word = "abcdefghij" * 9
    pages = [PageText(None, f"{word} {word} {word}")]
    chunks = chunk_document(pages, tokenizer, max_tokens=40, overlap_tokens=4)
    check_invariants(pages, chunks, tokenizer, 40)
    assert len(chunks) >= 7


class CountingTokenizer:
    """Forwards to a tokenizer and counts the characters it is asked to encode."""

    def __init__(self, inner: Tokenizer) -> None:
        self.inner = inner
        self.characters = 0

    def encode(self, text: str, *args: object, **kwargs: object) -> object:
        self.characters += len(text)
        return self.inner.encode(text, *args, **kwargs)

    def encode_batch(self, texts: list[str], *args: object, **kwargs: object) -> object:
        self.characters += sum(len(text) for text in texts)
        return self.inner.encode_batch(texts, *args, **kwargs)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_chunking_work_grows_linearly_with_the_document(tokenizer: Tokenizer) -> None:
    # Counted, not timed: tokenising each character a bounded number of times is what keeps
    # thousands of pages fast, and a quadratic step (re-encoding the document per chunk) shows
    # here as work that quadruples when the document doubles.
    rng = random.Random(11)
    pages = [PageText(n, paragraph(rng) + "\n\n" + paragraph(rng)) for n in range(1, 1601)]
    work = {}
    for count in (400, 800, 1600):
        counting = CountingTokenizer(tokenizer)
        chunks = chunk_document(pages[:count], counting, max_tokens=256, overlap_tokens=32)  # type: ignore[arg-type]
        assert chunks[-1].pages[-1] == count
        text = sum(len(page.text) for page in pages[:count])
        assert counting.characters <= 4 * text, (count, counting.characters, text)
        work[count] = counting.characters
    assert work[1600] / work[800] < 2.5 and work[800] / work[400] < 2.5
    check_invariants(
        pages[:50], chunk_document(pages[:50], tokenizer, max_tokens=256), tokenizer, 256
    )


def test_too_small_budget_is_rejected(tokenizer: Tokenizer) -> None:
    with pytest.raises(ValueError, match="no room"):
        chunk_document([PageText(None, "text")], tokenizer, max_tokens=2)


# -- any Unicode at all -------------------------------------------------------------------------

_UNICODE_TEXT = st.lists(
    st.one_of(
        st.characters(codec=None, categories=None),  # every code point, lone surrogates included
        st.sampled_from(["\n", "\n\n", " ", ".", "\x00", "\ud800", "\udcff", "\u200b", "ﬁ"]),
        st.sampled_from(WORDS).map(lambda word: f" {word}"),
    ),
    max_size=300,
).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(_UNICODE_TEXT, min_size=1, max_size=4),
    headings=st.lists(st.text(max_size=30), max_size=3),
    max_tokens=st.integers(min_value=8, max_value=96),
    overlap=st.integers(min_value=0, max_value=24),
)
def test_chunking_any_unicode_never_raises_and_keeps_its_invariants(
    tokenizer: Tokenizer, texts: list[str], headings: list[str], max_tokens: int, overlap: int
) -> None:
    from mrag.ingestion.chunking import _encodable

    pages = [PageText(page=n, text=text, headings=headings) for n, text in enumerate(texts, 1)]
    chunks = chunk_document(pages, tokenizer, max_tokens=max_tokens, overlap_tokens=overlap)
    full = document_text(pages)
    previous_start = -1
    covered = bytearray(len(full))
    for position, chunk in enumerate(chunks):
        assert chunk.index == position
        assert chunk.start > previous_start and chunk.end > chunk.start  # in order, never empty
        previous_start = chunk.start
        assert full[chunk.start : chunk.end] == chunk.text
        encoded = tokenizer.encode(_encodable(chunk.embedding_text()), add_special_tokens=True)
        assert len(encoded.ids) <= max_tokens
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    # Every character the tokenizer reads (a token spans it) lies inside some chunk.
    offset = 0
    for page in pages:
        encoding = tokenizer.encode(_encodable(page.text), add_special_tokens=False)
        for start, end in encoding.offsets:
            assert all(covered[offset + start : offset + end]), (page.text, start, end)
        offset += len(page.text) + 2


def test_tables_split_between_rows_with_the_header_repeated(tokenizer: Tokenizer) -> None:
    header = ["model", "index", "search"]
    body = [[f"text {i}", str(i), f"{i * 7}"] for i in range(60)]
    unit = table_unit(Table([header, *body], caption="Table 2: search by model", page=3))
    pages = [PageText(page=3, text="the page text before the table."), unit]
    chunks = chunk_document(pages, tokenizer, max_tokens=64, overlap_tokens=8)
    tables = [chunk for chunk in chunks if chunk.element == "table"]
    assert len(tables) > 2
    assert chunks[0].element == "text" and "model" not in chunks[0].text
    lines = unit.text.split("\n")
    seen_rows: list[str] = []
    for chunk in tables:
        assert chunk.headings == ["Table 2: search by model"]
        assert chunk.pages == [3]
        piece = chunk.text.split("\n")
        assert piece[:2] == lines[:2]  # the header row and separator start every piece
        assert all(line in lines for line in piece)  # whole rows only
        seen_rows.extend(piece[2:])
        encoded = tokenizer.encode(chunk.embedding_text(), add_special_tokens=True)
        assert len(encoded.ids) <= 64
    assert seen_rows == lines[2:]  # every row once, in order


def test_a_table_that_fits_is_one_chunk(tokenizer: Tokenizer) -> None:
    unit = table_unit(Table([["a", "b"], ["1", "2"]], page=1))
    chunks = chunk_document([unit], tokenizer, max_tokens=64)
    assert [(chunk.text, chunk.element) for chunk in chunks] == [(unit.text, "table")]
    assert chunks[0].text == document_text([unit])[chunks[0].start : chunks[0].end]
