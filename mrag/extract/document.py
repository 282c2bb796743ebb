"""What extraction produces: the text and pictures of one source document.

Every format reader (:mod:`mrag.extract.formats`) returns a :class:`ParsedDocument`. A file that
cannot be read at all raises :class:`ExtractionError`; anything smaller (one undecodable image,
one broken page) is recorded in ``ParsedDocument.problems`` and the rest of the file still goes in.

Images are always stored as RGB: transparency is composited onto white (see
:func:`mrag.images.to_rgb`), since that is how a reader sees a figure on a page and the embedding
model takes RGB input anyway.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from mrag.images import DEFAULT_MAX_PIXELS

#: Ways an image's ``context`` was found, from most to least telling.
CONTEXT_KINDS = ("caption", "ocr", "nearby", "alt", "filename")

#: What a stored point shows a reader (``metadata.element``): a passage of text, a table (as
#: Markdown text or as its picture), a figure (a picture or a drawn figure), or a whole page kept
#: as a picture because it showed content and yielded nothing else.
ELEMENTS = ("text", "table", "figure", "page")


class ExtractionError(Exception):
    """A file could not be read at all; the message names the file and the reason."""


@dataclass
class PageText:
    """Text of one page (PDF, TIFF frame) or one section (Markdown), with its heading path.

    ``page`` is 1-based for paged formats and ``None`` for formats without pages.
    ``ocr_confidence`` (0..1) is set when the text was recognised from pixels rather than read
    from a text layer. ``element`` is "text" for running text and "table" for one table as
    Markdown (:mod:`mrag.extract.tables`): a unit of its own that the chunker keeps whole or
    splits between rows, with its caption as the last heading.
    """

    page: int | None
    text: str
    headings: list[str] = field(default_factory=list)
    ocr_confidence: float | None = None
    element: str = "text"


@dataclass
class ExtractedImage:
    """One distinct picture of a document, with the text that best explains it.

    ``element`` is "figure", "table" (a table region rendered) or "page" (a page kept as a
    picture). ``pages`` lists every page the picture appears on (``[None]`` for formats without
    pages);
    ``content_hash`` is the SHA-256 of the decoded pixels, mode and size, so identical pictures
    stored under different names collapse into one.
    """

    image: Image.Image
    pages: list[int | None]
    name: str
    context: str
    context_kind: str
    content_hash: str
    alt_text: str | None = None
    element: str = "figure"


@dataclass
class ParsedDocument:
    """Everything extracted from one file.

    ``filtered`` counts images dropped by the image filter, by reason ("too_small",
    "extreme_aspect", "duplicate", "too_many"). ``parser`` names the library that read the file
    (PDFs: "pypdf", or "pypdfium2" when pypdf could not open it). ``no_text_pages`` lists pages
    that show something but yielded no text (no usable text layer, and OCR off or unavailable;
    a text layer that is mostly debris counts as none, see :mod:`mrag.extract.hygiene`).
    ``timings`` holds the seconds spent in each extraction stage ("text"; "scan_check", looking
    for scans among pages with little text; "render" and "ocr"; "figures"; "images", pictures
    taken from PDFium; "tables"; "loose_figures", figures without captions; "pages", pages kept
    as pictures). ``pages`` holds the page texts and, after the page they stand on, one unit per
    table (``element`` "table").
    """

    source: str
    kind: str
    pages: list[PageText]
    images: list[ExtractedImage]
    problems: list[str]
    page_count: int
    filtered: Counter[str] = field(default_factory=Counter)
    parser: str = ""
    no_text_pages: list[int] = field(default_factory=list)
    timings: Counter[str] = field(default_factory=Counter)

    @property
    def text(self) -> str:
        """All page texts joined with blank lines (the text chunk offsets refer to)."""
        return "\n\n".join(page.text for page in self.pages)


@dataclass
class ExtractionLimits:
    """Bounds that keep one hostile file from hanging or exhausting a run.

    ``time_budget_s`` is checked between pages (and between images), so a single pathological page
    can overrun it by the time that page takes.
    """

    max_pages: int = 2000
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_images_per_document: int = 500
    time_budget_s: float = 300.0

    def pages(
        self, path: Path, page_count: int, started: float, problems: list[str]
    ) -> Iterator[int]:
        """The indices of the pages to read: at most ``max_pages`` (saying so in ``problems``),
        and :class:`ExtractionError` once the time budget counted from ``started`` is spent."""
        if page_count > self.max_pages:
            problems.append(
                f"document has {page_count} pages; only the first {self.max_pages} were read "
                "(max_pages)"
            )
        for index in range(min(page_count, self.max_pages)):
            if time.monotonic() - started > self.time_budget_s:
                raise ExtractionError(
                    f"{path}: time budget of {self.time_budget_s:g}s exceeded after {index} of "
                    f"{page_count} pages"
                )
            yield index


def read_source(path: Path) -> bytes:
    """The bytes of a source file; :class:`ExtractionError` if unreadable or empty."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExtractionError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise ExtractionError(f"{path}: 0-byte file")
    return data


def image_content_hash(image: Image.Image) -> str:
    """SHA-256 over mode, size and raw pixels: equal for pictures that look exactly the same."""
    digest = hashlib.sha256()
    digest.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()
