"""Extraction over the shared corpus of real and hostile files (``../shared/corpus``).

Every file must either parse or raise :class:`ExtractionError` whose message names the file and
the reason; nothing else may escape. For the PDFs of ``pdf/INDEX.csv`` every image a page shows is
accounted for: decoded, or reported in ``problems``. The corpus is never copied into the repository;
files whose suffix does not say what they are (the qpdf fuzz cases) are reached through symlinks in
a temporary folder. Skips cleanly when the corpus is absent.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from helpers import CORPUS
from pypdf import PdfReader
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, StreamObject

from mrag.extract.document import ExtractionError, ExtractionLimits, ParsedDocument
from mrag.extract.read import SUPPORTED_SUFFIXES, parse

# Generous per file: the slowest corpus file takes about 10 s on two cores.
LIMITS = ExtractionLimits(time_budget_s=90.0, max_images_per_document=5000)
PASSWORDS = {
    "pdf/py-pdf-sample-files/005-libreoffice-writer-password/"
    "libreoffice-writer-password.pdf": "openpassword",
    "pdf/pypdf/resources/libreoffice-writer-password.pdf": "openpassword",
    "pdf/pypdf/resources/encrypted-file.pdf": "test",
    "pdf/pypdf/resources/crazyones-encrypted-256.pdf": "password",
    "pdf/pypdf/resources/encryption/r2-user-password.pdf": "asdfzxcv",
    "pdf/pypdf/resources/encryption/r3-user-password.pdf": "asdfzxcv",
    "pdf/pypdf/resources/encryption/r4-user-password.pdf": "asdfzxcv",
    "pdf/pypdf/resources/encryption/r5-user-password.pdf": "asdfzxcv",
    "pdf/pypdf/resources/encryption/r6-user-password.pdf": "asdfzxcv",
    "pdf/pypdf/resources/encryption/r4-aes-user-password.pdf": "asdfzxcv",
    "pdf/pypdf/resources/encryption/r6-both-passwords.pdf": "foo",
    "pdf/pdfplumber/tests/pdfs/password-example.pdf": "test",
}
# Their owner password is empty, so they open without any password (as qpdf opens them too).
OPEN_WITH_EMPTY_OWNER_PASSWORD = {
    "pdf/pypdf/resources/encryption/r5-user-password.pdf",
    "pdf/pypdf/resources/encryption/r6-user-password.pdf",
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def corpus_files(folder: str, pattern: str = "*") -> list[str]:
    base = CORPUS / folder
    if not base.is_dir():
        return []
    return sorted(
        str(path.relative_to(CORPUS))
        for path in base.rglob(pattern)
        if path.is_file() and path.name not in ("INDEX.csv", "README.md")
    )


def index_rows() -> dict[str, dict[str, str]]:
    index = CORPUS / "pdf" / "INDEX.csv"
    if not index.is_file():
        return {}
    with index.open(newline="", encoding="utf-8") as handle:
        return {row["path"]: row for row in csv.DictReader(handle)}


def params(names: list[str]) -> list[object]:
    if not names:
        return [pytest.param(None, marks=pytest.mark.skip(reason="../shared/corpus is absent"))]
    return names


def as_suffix(relative: str, suffix: str, folder: Path) -> Path:
    """The corpus file under a name ending in ``suffix`` (a symlink, never a copy)."""
    source = CORPUS / relative
    if source.suffix.lower() == suffix:
        return source
    link = folder / (source.name + suffix)
    os.symlink(source, link)
    return link


def parse_or_reason(path: Path, **options: object) -> ParsedDocument | ExtractionError:
    try:
        return parse(path, limits=LIMITS, **options)  # type: ignore[arg-type]
    except ExtractionError as error:
        message = str(error)
        assert message.startswith(f"{path}: "), message
        assert len(message) > len(f"{path}: ") + 5, message
        return error


def shown_images(reader: PdfReader) -> int:
    """Image XObjects a viewer can draw as content, found by a generic walk of the object graph.

    Soft masks, tiling-pattern tiles, Type 3 glyphs and thumbnails are not content; everything else
    reachable from the catalogue is.
    """
    blocked = {
        "/Parent",
        "/P",
        "/Pattern",
        "/Font",
        "/SMask",
        "/Mask",
        "/Thumb",
        "/Outlines",
        "/StructTreeRoot",
        "/Metadata",
    }
    seen: set[int] = set()
    images: set[int] = set()
    stack: list[object] = [reader.trailer.raw_get("/Root")]
    while stack:
        item = stack.pop()
        if isinstance(item, IndirectObject):
            if item.idnum in seen:
                continue
            seen.add(item.idnum)
            resolved = item.get_object()
            if isinstance(resolved, StreamObject) and resolved.get("/Subtype") == "/Image":
                images.add(item.idnum)
            stack.append(resolved)
        elif isinstance(item, DictionaryObject):
            stack.extend(value for key, value in item.items() if key not in blocked)
        elif isinstance(item, ArrayObject):
            stack.extend(item)
    return len(images)


def image_problems(document: ParsedDocument) -> list[str]:
    return [p for p in document.problems if p.startswith("page ") and " image" in p]


ROWS = index_rows()


@pytest.mark.parametrize("relative", params(sorted(ROWS)))
def test_indexed_pdfs(relative: str, tmp_path: Path) -> None:
    row = ROWS[relative]
    path = CORPUS / relative
    result = parse_or_reason(path, image_filter=None, passwords=[PASSWORDS.get(relative, "x")])
    if isinstance(result, ExtractionError):
        assert row["status"].startswith("open-error"), f"{relative}: {result}"
        return
    assert row["status"] in ("ok", "password-required", "encrypted(empty user pw)")
    if row["status"] == "ok" and row["pages"]:
        assert result.page_count == int(row["pages"])
    page_texts = [page for page in result.pages if page.element == "text"]
    assert len(page_texts) + sum("cannot read page" in p for p in result.problems) == (
        result.page_count
    )
    if row["status"] == "ok" and int(row["text_chars_first5pages"] or 0) > 50:
        assert sum(len(page.text) for page in result.pages) > 0
    if row["status"] == "ok" and int(row["n_image_xobjects"] or 0) > 0:
        decoded = len(result.images) + result.filtered["duplicate"]
        expected = shown_images(PdfReader(path))
        assert decoded + len(image_problems(result)) >= expected, result.problems
        assert all(image.image.mode == "RGB" for image in result.images)


@pytest.mark.parametrize("relative", params(sorted(PASSWORDS)))
def test_known_passwords_open_encrypted_files(relative: str) -> None:
    path = CORPUS / relative
    if not path.is_file():
        pytest.skip(f"{relative} is not in this corpus")
    if relative in OPEN_WITH_EMPTY_OWNER_PASSWORD:
        assert parse(path, limits=LIMITS).page_count >= 1
    else:
        with pytest.raises(ExtractionError, match="password required"):
            parse(path, limits=LIMITS)
    document = parse(path, limits=LIMITS, passwords=["wrong", PASSWORDS[relative]])
    assert document.page_count >= 1


def unindexed_pdfs() -> list[str]:
    return [name for name in corpus_files("pdf", "*.pdf") if name not in ROWS]


@pytest.mark.parametrize("relative", params(unindexed_pdfs() + corpus_files("malformed/qpdf-pdf")))
def test_every_other_pdf_parses_or_gives_a_reason(relative: str, tmp_path: Path) -> None:
    result = parse_or_reason(as_suffix(relative, ".pdf", tmp_path), image_filter=None)
    if isinstance(result, ParsedDocument):
        assert result.page_count >= len(result.pages)


def image_params() -> list[str]:
    return corpus_files("images") + corpus_files("malformed/images")


@pytest.mark.parametrize("relative", params(image_params()))
def test_every_image_parses_or_gives_a_reason(relative: str, tmp_path: Path) -> None:
    source = CORPUS / relative
    suffix = source.suffix.lower()
    # Odd suffixes (.pcx, .fli, ...) go through the image reader anyway to exercise the decoder.
    path = source if suffix in IMAGE_SUFFIXES else as_suffix(relative, ".png", tmp_path)
    result = parse_or_reason(path)
    if isinstance(result, ParsedDocument):
        for image in result.images:
            assert image.image.mode == "RGB"
            width, height = image.image.size
            assert 0 < width * height <= LIMITS.max_pixels
    elif relative.startswith("images/"):
        pytest.fail(f"a real photo failed: {result}")


def test_photos_all_decode_with_filename_context() -> None:
    photos = corpus_files("images/photos")
    if not photos:
        pytest.skip("../shared/corpus is absent")
    for relative in photos:
        if Path(relative).suffix.lower() not in SUPPORTED_SUFFIXES:
            continue
        document = parse(CORPUS / relative, limits=LIMITS, image_filter=None)
        assert len(document.images) >= 1, relative
        assert document.images[0].context_kind == "filename"
