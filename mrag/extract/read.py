"""Turn a source file into a :class:`~mrag.extract.document.ParsedDocument`, whatever its format.

:func:`parse` picks the reader from the file suffix (and checks the magic bytes where that is
cheap), cleans every extracted text (:func:`~mrag.extract.hygiene.clean_document`), then merges
duplicate pictures and applies the :class:`~mrag.extract.figures.ImageFilter`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from mrag.extract.document import ExtractionError, ExtractionLimits, ParsedDocument
from mrag.extract.figures import ImageFilter, apply_filter
from mrag.extract.formats.docx import DOCX_SUFFIXES, parse_docx
from mrag.extract.formats.html import HTML_SUFFIXES, parse_html
from mrag.extract.formats.image_file import IMAGE_SUFFIXES, parse_image_file
from mrag.extract.formats.pdf.reader import parse_pdf
from mrag.extract.formats.text import MARKDOWN_SUFFIXES, TEXT_SUFFIXES, parse_text_file
from mrag.extract.hygiene import clean_document
from mrag.extract.ocr import OcrSettings

_Reader = Callable[[Path, ExtractionLimits, "OcrSettings | None"], ParsedDocument]

_READERS: dict[str, _Reader] = {}
for _suffix in IMAGE_SUFFIXES:
    _READERS[_suffix] = lambda path, limits, ocr: parse_image_file(path, limits=limits, ocr=ocr)
for _suffix in (*TEXT_SUFFIXES, *MARKDOWN_SUFFIXES):
    _READERS[_suffix] = lambda path, limits, _ocr: parse_text_file(path, limits=limits)
for _suffix in HTML_SUFFIXES:
    _READERS[_suffix] = lambda path, limits, _ocr: parse_html(path, limits=limits)
for _suffix in DOCX_SUFFIXES:
    _READERS[_suffix] = lambda path, limits, _ocr: parse_docx(path, limits=limits)

#: Every file suffix :func:`parse` reads (lower case, with the dot).
SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".pdf", *_READERS})

#: Magic bytes at the start of a file, for files whose suffix says nothing.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"GIF8", ".gif"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
    (b"BM", ".bmp"),
)


def _sniff(path: Path) -> str | None:
    """The suffix a file's content says it has, or None.

    ``%PDF`` may stand anywhere in the first KiB, as PDF readers accept.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(1024)
    except OSError:
        return None
    if b"%PDF" in head:
        return ".pdf"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    return next((suffix for magic, suffix in _MAGIC if head.startswith(magic)), None)


_DEFAULT_LIMITS = ExtractionLimits()
_DEFAULT_FILTER = ImageFilter()


def parse(
    path: Path,
    *,
    limits: ExtractionLimits = _DEFAULT_LIMITS,
    passwords: Sequence[str] = (),
    image_filter: ImageFilter | None = _DEFAULT_FILTER,
    ocr: OcrSettings | None = None,
) -> ParsedDocument:
    """Extract the text and pictures of one file.

    ``passwords`` are tried, after the empty one, on encrypted PDFs. ``image_filter=None`` keeps
    every picture (duplicates are still merged). ``ocr`` turns on OCR of PDF pages without a
    usable text layer and of image files that are pages of text (``None``: no OCR; ingestion
    passes the pipeline's ``[ocr]`` section). Raises :class:`ExtractionError`, naming the file
    and the reason, when the file cannot be read at all; smaller trouble lands in
    ``ParsedDocument.problems``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ExtractionError(f"{path}: not a file or does not exist")
    if suffix not in SUPPORTED_SUFFIXES:
        # Only files named directly get here (folder walks keep to the include globs).
        sniffed = _sniff(path)
        if sniffed is None:
            raise ExtractionError(
                f"{path}: unsupported file type {suffix or '(no suffix)'} "
                "(and no PDF or image header in its first bytes)"
            )
        suffix = sniffed
    try:
        if suffix == ".pdf":
            document = parse_pdf(path, limits=limits, passwords=passwords, ocr=ocr)
        else:
            document = _READERS[suffix](path, limits, ocr)
    except ExtractionError:
        raise
    except (Exception, RecursionError) as exc:
        # Whatever a reader trips over, one bad file must not end a whole ingestion run.
        raise ExtractionError(
            f"{path}: unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})"
        ) from None
    # Every reader's text passes through here: what goes on is clean Unicode.
    clean_document(document)
    document.images, document.filtered = apply_filter(document.images, image_filter)
    return document


__all__ = [
    "SUPPORTED_SUFFIXES",
    "ExtractionError",
    "ExtractionLimits",
    "ImageFilter",
    "OcrSettings",
    "ParsedDocument",
    "parse",
]
