"""Pages that are only a picture: kept as a rendering of the whole page.

A page can show a reader something (a vector drawing, a logo, a shading, a picture too small or
too odd to keep on its own) and still yield no text, no table and no figure. Such a page is
rendered and stored as one ``page`` picture, the way a scan's page picture is. Blank pages (less
than :data:`INK_SHARE` of the page darker than near-white) stay empty.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from mrag.extract.document import ExtractedImage
from mrag.extract.formats.pdf.pdfium import page_picture
from mrag.extract.formats.pdf.render import render_region

#: Share of a page that must be inked for the page to show something.
INK_SHARE = 0.01
#: Grey levels above this are paper, not ink.
_PAPER = 235
#: Scale for the ink check: a coarse rendering (18 pixels per inch) is plenty to see ink.
_CHECK_SCALE = 0.25


def inked_share(page: Any) -> float:
    """The share of the page darker than paper, from a coarse greyscale rendering."""
    return picture_ink(page.render(scale=_CHECK_SCALE, grayscale=True, draw_annots=True).to_pil())


def picture_ink(picture: Image.Image) -> float:
    """The share of a picture darker than paper."""
    histogram = picture.convert("L").histogram()
    total = sum(histogram)
    return sum(histogram[:_PAPER]) / total if total else 0.0


def page_as_picture(page: Any, number: int, name: str, max_pixels: int) -> ExtractedImage | None:
    """The whole page as a ``page`` picture, or ``None`` when the page is blank."""
    if not any(True for _ in page.get_objects(max_depth=1)) or inked_share(page) < INK_SHARE:
        return None
    picture = render_region(page, tuple(page.get_cropbox()), max_pixels=max_pixels)
    image = page_picture(picture, number, f"p{number}-page")
    image.context, image.context_kind, image.element = f"{name}, page {number}", "filename", "page"
    return image
