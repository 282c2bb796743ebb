"""Pages that are only a picture: kept as a rendering of the whole page.

A page can show a reader something (a vector drawing, a logo, a shading, a picture too small or
too odd to keep on its own) and still yield no text, no table and no figure. Such a page is
rendered and stored as one ``page`` picture, the way a scan's page picture is. Blank pages (less
than :data:`INK_SHARE` of the page darker than near-white) stay empty.

A page's size in points says nothing about what it shows: some files draw a whole picture on a
page a few points wide. The rendering is therefore sized in pixels, not in points: its longer side
is :data:`PAGE_LONG_SIDE` pixels, its shorter side at least :data:`PAGE_SHORT_SIDE` where that
fits within :data:`PAGE_MAX_LONG_SIDE` and the pixel limit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
from PIL import Image

from mrag.extract.document import ExtractedImage
from mrag.extract.formats.pdf.pdfium import page_picture

#: Share of a page that must be inked for the page to show something.
INK_SHARE = 0.01
#: Grey levels above this are paper, not ink.
_PAPER = 235
#: Scale for the ink check: a coarse rendering (18 pixels per inch) is plenty to see ink...
_CHECK_SCALE = 0.25
#: ... unless the page is so small that it would come out a few pixels wide.
_CHECK_MIN_SIDE = 32
#: Longer side of a page picture, in pixels (the model reads 224).
PAGE_LONG_SIDE = 1024
#: Shorter side a page picture reaches when its page is long and thin (the model's input side)...
PAGE_SHORT_SIDE = 224
#: ... as long as its longer side stays within this.
PAGE_MAX_LONG_SIDE = 4096


def _check_scale(page: Any) -> float:
    width, height = page.get_size()
    shorter = max(min(width, height), 1e-3)
    return min(max(_CHECK_SCALE, _CHECK_MIN_SIDE / shorter), 1000.0)


def inked_share(page: Any) -> float:
    """The share of the page darker than paper, from a coarse greyscale rendering."""
    bitmap = page.render(scale=_check_scale(page), grayscale=True, draw_annots=True)
    return picture_ink(bitmap.to_pil())


def picture_ink(picture: Image.Image) -> float:
    """The share of a picture darker than paper."""
    histogram = picture.convert("L").histogram()
    total = sum(histogram)
    return sum(histogram[:_PAPER]) / total if total else 0.0


def first_page_ink(path: Path, password: str | None = None) -> float | None:
    """The inked share of a PDF's first page as PDFium renders it; ``None`` when PDFium cannot
    open the file or draw its first page (a measure of what a reader of the file sees)."""
    try:
        document = pdfium.PdfDocument(str(path), password=password)
    except pdfium.PdfiumError:
        return None
    try:
        return inked_share(document[0]) if len(document) else None
    except Exception:
        return None
    finally:
        document.close()


def page_scale(width: float, height: float, max_pixels: int) -> float:
    """Pixels per point for a page picture of a ``width`` x ``height`` point page."""
    longer, shorter = max(width, height), max(min(width, height), 1e-3)
    scale = PAGE_LONG_SIDE / longer
    if shorter * scale < PAGE_SHORT_SIDE:
        scale = min(PAGE_SHORT_SIDE / shorter, PAGE_MAX_LONG_SIDE / longer)
    pixels = width * height * scale * scale
    if pixels > max_pixels:
        scale *= (max_pixels / pixels) ** 0.5
    return scale


def page_as_picture(page: Any, number: int, name: str, max_pixels: int) -> ExtractedImage | None:
    """The whole page as a ``page`` picture, or ``None`` when the page is blank."""
    if not any(True for _ in page.get_objects(max_depth=1)) or inked_share(page) < INK_SHARE:
        return None
    width, height = page.get_size()
    bitmap = page.render(scale=page_scale(width, height, max_pixels), draw_annots=True)
    picture = bitmap.to_pil().convert("RGB")
    image = page_picture(picture, number, f"p{number}-page")
    image.context, image.context_kind, image.element = f"{name}, page {number}", "filename", "page"
    return image
