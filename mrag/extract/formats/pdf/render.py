"""Rendering PDF pages and page regions to pictures with PDFium (through ``pypdfium2``).

Two users: OCR, which wants a whole page at a print resolution (about 300 dpi), and vector
figures, which want one region of a page at the resolution the embedding model and the stored
rendition need (a 1024-pixel long side is plenty for both: the model reads 224 pixels).

Boxes are ``(left, bottom, right, top)`` in PDF page space, the space PDFium reports object
bounds in; pages rotated by ``/Rotate`` are handled here, so callers never see the rotation.
"""

from __future__ import annotations

import math
from typing import Any

import pypdfium2 as pdfium
from PIL import Image

Box = tuple[float, float, float, float]

#: Longest side of a rendered figure region, in pixels.
REGION_MAX_SIDE = 1024
#: Never render a region finer than this many pixels per point (a tiny figure stays sharp, not
#: huge).
_MAX_REGION_SCALE = 6.0


class RenderError(Exception):
    """PDFium could not open or draw something; the message says what."""


def open_document(data: bytes, password: str | None = None) -> pdfium.PdfDocument:
    """Open a PDF held in memory; :class:`RenderError` when PDFium cannot."""
    try:
        return pdfium.PdfDocument(data, password=password or None)
    except pdfium.PdfiumError as exc:
        raise RenderError(str(exc)) from None


def _scale_within(width_pt: float, height_pt: float, scale: float, max_pixels: int) -> float:
    pixels = width_pt * scale * height_pt * scale
    if pixels > max_pixels:
        scale *= math.sqrt(max_pixels / pixels)
    return scale


def render_page(page: Any, *, dpi: int, max_pixels: int, grayscale: bool = True) -> Image.Image:
    """The whole page at ``dpi`` (lowered so the picture stays within ``max_pixels``)."""
    width, height = page.get_size()
    scale = _scale_within(width, height, dpi / 72.0, max_pixels)
    bitmap = page.render(scale=scale, grayscale=grayscale, draw_annots=True)
    return bitmap.to_pil()


def _crop_amounts(page: Any, box: Box) -> tuple[float, float, float, float]:
    """How much to cut off each side of the rendered canvas so only ``box`` remains."""
    left, bottom, right, top = page.get_cropbox()
    x0, y0, x1, y1 = (
        max(box[0], left),
        max(box[1], bottom),
        min(box[2], right),
        min(box[3], top),
    )
    # Distances from the box to the cropbox edges, named by page side.
    page_left, page_bottom, page_right, page_top = x0 - left, y0 - bottom, right - x1, top - y1
    # The canvas is the page turned clockwise by /Rotate; crop works on the canvas's sides.
    rotation = page.get_rotation() % 360
    if rotation == 90:
        return page_bottom, page_right, page_top, page_left
    if rotation == 180:
        return page_right, page_top, page_left, page_bottom
    if rotation == 270:
        return page_top, page_left, page_bottom, page_right
    return page_left, page_bottom, page_right, page_top


def render_region(
    page: Any, box: Box, *, max_side: int = REGION_MAX_SIDE, max_pixels: int
) -> Image.Image:
    """The part of the page inside ``box``, scaled so its longer side is ``max_side`` pixels."""
    width = box[2] - box[0]
    height = box[3] - box[1]
    if width <= 0 or height <= 0:
        raise RenderError(f"empty region {box}")
    scale = min(max_side / max(width, height), _MAX_REGION_SCALE)
    scale = _scale_within(width, height, scale, max_pixels)
    bitmap = page.render(scale=scale, crop=_crop_amounts(page, box), draw_annots=True)
    return bitmap.to_pil().convert("RGB")
