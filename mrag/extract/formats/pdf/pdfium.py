"""PDF pages and pictures through PDFium: the reader for files pypdf cannot open.

PDFium is the engine of a widely used browser's PDF viewer, and it repairs what viewers repair
(truncated streams, broken cross-reference tables). Text comes from its text page, pictures from
the page's image objects, decoded one by one so a bad one costs only itself; sizes are read before
decoding, so a decompression bomb is refused unread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from mrag.extract.document import (
    ExtractedImage,
    ExtractionError,
    ExtractionLimits,
    PageText,
    image_content_hash,
)
from mrag.extract.figures import NEARBY_CHARS, pair_captions, trim_context
from mrag.extract.formats.pdf.vector_figures import caption_anchors
from mrag.extract.hygiene import clean_text, is_garbage
from mrag.images import pixel_problem, to_rgb

#: A page with fewer visible characters than this has no text layer worth the name.
MIN_TEXT_CHARS = 20


@dataclass
class Extraction:
    """What a PDF reader got from the pages, before OCR and figure finding.

    ``spans`` maps ``id(image)`` to the vertical extent (bottom, top) of the picture on its first
    page, where known; ``untexted`` lists pages whose text layer is empty or garbage.
    """

    pages: list[PageText] = field(default_factory=list)
    images: list[ExtractedImage] = field(default_factory=list)
    spans: dict[int, tuple[float, float]] = field(default_factory=dict)
    untexted: list[int] = field(default_factory=list)
    undecoded: list[Undecoded] = field(default_factory=list)


@dataclass
class Undecoded:
    """A picture pypdf could not decode, to be taken from PDFium's rendering of it."""

    page: int
    label: str
    size: tuple[int, int] | None
    reason: str
    context: str
    context_kind: str
    span: tuple[float, float] | None


def rendered_image(page: Any, size: tuple[int, int] | None, taken: set[int]) -> Image.Image | None:
    """PDFium's own rendering of the page's image object of ``size`` pixels (masks applied), the
    first one not ``taken`` yet; PDFium decodes JBIG2, JPEG 2000 and CCITT itself."""
    for position, obj in enumerate(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE])):
        if position in taken:
            continue
        if size is not None and tuple(obj.get_px_size()) != size:
            continue
        taken.add(position)
        picture = to_rgb(obj.get_bitmap(render=True).to_pil())
        picture.load()
        return picture
    return None


def page_picture(picture: Image.Image, number: int, name: str) -> ExtractedImage:
    """A decoded picture of page ``number``, its context still to be found."""
    return ExtractedImage(
        image=picture,
        pages=[number],
        name=name,
        context="",
        context_kind="filename",
        content_hash=image_content_hash(picture),
    )


def usable_text(raw: str) -> tuple[str, bool]:
    """A page's clean text, and whether it is too little (or too broken) to stand for the page."""
    if is_garbage(raw):
        return "", True
    text = clean_text(raw).strip()
    return text, sum(1 for ch in text if not ch.isspace()) < MIN_TEXT_CHARS


def open_with_passwords(
    data: bytes, path: Path, passwords: tuple[str, ...] | list[str]
) -> tuple[pdfium.PdfDocument, str | None]:
    """Open with PDFium, trying the empty password and then each given one."""
    tried = ("", *passwords)
    last = ""
    for password in tried:
        try:
            return pdfium.PdfDocument(data, password=password or None), password or None
        except pdfium.PdfiumError as exc:
            last = str(exc)
            if "password" not in last.lower():
                break
    if "password" in last.lower():
        reason = "wrong password" if len(tried) > 1 else "password required"
        raise ExtractionError(f"{path}: encrypted: {reason}")
    raise ExtractionError(f"{path}: not a PDF / broken file: {last}")


def read_pages(
    document: pdfium.PdfDocument,
    path: Path,
    limits: ExtractionLimits,
    started: float,
    problems: list[str],
) -> Extraction:
    """Text and pictures of every page (up to ``limits.max_pages``)."""
    result = Extraction()
    page_count = len(document)
    attempted = 0
    for index in limits.pages(path, page_count, started, problems):
        number = index + 1
        try:
            page = document[index]
            textpage = page.get_textpage()
            text, untexted = usable_text(textpage.get_text_range())
        except Exception as exc:
            problems.append(f"page {number}: cannot read page ({type(exc).__name__}: {exc})")
            continue
        result.pages.append(PageText(page=number, text=text))
        if untexted:
            result.untexted.append(number)
        found = _page_images(page, number, limits, problems)
        room = max(0, limits.max_images_per_document - attempted)
        if len(found) > room:
            problems.append(
                f"page {number}: {len(found) - room} images not decoded: the document reached "
                f"max_images_per_document={limits.max_images_per_document}"
            )
            found = found[:room]
        attempted += len(found)
        _give_contexts(found, number, text, textpage, result)
    return result


def _page_images(
    page: Any, number: int, limits: ExtractionLimits, problems: list[str]
) -> list[tuple[ExtractedImage, tuple[float, float]]]:
    found = []
    for position, obj in enumerate(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE])):
        where = f"page {number} image {position + 1}"
        try:
            width, height = obj.get_px_size()
            problem = pixel_problem(width, height, limits.max_pixels)
            if problem:
                problems.append(f"{where}: {problem}; not decoded")
                continue
            picture = to_rgb(obj.get_bitmap(render=False).to_pil())
            picture.load()
            _left, bottom, _right, top = obj.get_bounds()
        except Exception as exc:
            reason = " ".join(str(exc).split())[:300]
            problems.append(f"{where}: cannot decode ({type(exc).__name__}: {reason})")
            continue
        found.append(
            (page_picture(picture, number, f"p{number}-image{position + 1}"), (bottom, top))
        )
    return found


def _give_contexts(
    found: list[tuple[ExtractedImage, tuple[float, float]]],
    number: int,
    text: str,
    textpage: Any,
    result: Extraction,
) -> None:
    if not found:
        return
    anchors = caption_anchors(textpage)
    spans: list[tuple[float, float] | None] = [span for _image, span in found]
    pairing = pair_captions(spans, [anchor.box[1] for anchor in anchors])
    for (image, span), caption_index in zip(found, pairing, strict=True):
        if caption_index is not None:
            image.context = anchors[caption_index].caption.text
            image.context_kind = "caption"
        elif text:
            image.context, image.context_kind = trim_context(text, NEARBY_CHARS), "nearby"
        else:
            image.context = f"{image.name.split('-', 1)[1]} on page {number}"
        result.images.append(image)
        result.spans[id(image)] = span
