"""Image files (PNG, JPEG, WebP, GIF, BMP, TIFF) as documents of one picture each.

A multi-page TIFF gives one picture per frame, numbered from 1 like PDF pages. Animated GIF, WebP
and APNG files give their first frame only: later frames are motion, not new content. EXIF
orientation is applied so a phone photo is indexed the right way up.

With OCR on, every picture is also read by Tesseract: a scan, a screenshot or a photographed page
then yields its text as chunks (and that text explains the picture); a photo yields no words, or
too few and too uncertain ones, and stays a picture only.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
import warnings
from collections import Counter
from pathlib import Path

from PIL import Image, ImageOps

from mrag.extract.document import (
    ExtractedImage,
    ExtractionError,
    ExtractionLimits,
    PageText,
    ParsedDocument,
    image_content_hash,
    read_source,
)
from mrag.extract.figures import humanize_name, trim_context
from mrag.extract.hygiene import clean_text
from mrag.extract.ocr import OcrSettings, recognise, resolve
from mrag.images import pixel_problem, to_rgb
from mrag.images.decode import error_words

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
# Formats whose extra frames are separate pages rather than animation.
_PAGED_FORMATS = ("TIFF",)
#: A picture is a page of text when Tesseract reads at least this many words (of two letters or
#: more: a chart's tick numbers and a title do not make a page) this surely (0..1).
_TEXT_MIN_WORDS = 8
_TEXT_MIN_CONFIDENCE = 0.6
_WORD = re.compile(r"[^\W\d_]{2,}")
# Pictures are OCR'd at most this large (longer side, pixels); a 12-megapixel phone photo of a
# page reads as well at this size, several times faster.
_OCR_MAX_SIDE = 3000


class _FrameRefused(Exception):
    """A frame judged too big or empty from its header; the message is the reason."""


def _frame_image(opened: Image.Image, frame: int, max_pixels: int) -> Image.Image:
    opened.seek(frame)
    problem = pixel_problem(*opened.size, max_pixels)
    if problem:
        raise _FrameRefused(f"{problem}; not decoded")
    opened.load()
    picture = opened.copy()
    # A broken EXIF block must not cost the picture.
    with contextlib.suppress(Exception):
        picture = ImageOps.exif_transpose(picture) or picture
    return to_rgb(picture)


def _read_text(
    picture: Image.Image, where: str, settings: OcrSettings, problems: list[str]
) -> tuple[str, float] | None:
    """The picture's text and confidence when it is a page of text, else ``None``."""
    if max(picture.size) > _OCR_MAX_SIDE:
        picture = picture.copy()
        picture.thumbnail((_OCR_MAX_SIDE, _OCR_MAX_SIDE), Image.Resampling.LANCZOS)
    try:
        found = recognise(picture, settings, flatten=True)
    except Exception as exc:
        problems.append(f"{where}OCR: {' '.join(str(exc).split())[:200]}")
        return None
    words = len(_WORD.findall(found.text))
    if words < _TEXT_MIN_WORDS or found.confidence < _TEXT_MIN_CONFIDENCE:
        return None
    return clean_text(found.text).strip(), found.confidence


def parse_image_file(
    path: Path, *, limits: ExtractionLimits, ocr: OcrSettings | None = None
) -> ParsedDocument:
    """Read an image file; each TIFF frame becomes one page-numbered picture.

    With ``ocr`` enabled (and Tesseract installed), pictures that are pages of text also give
    that text as pages. Raises :class:`ExtractionError` when the file is empty, not an image, or
    over the pixel limit.
    """
    started = time.monotonic()
    data = read_source(path)
    context = humanize_name(path.stem)
    problems: list[str] = []
    images: list[ExtractedImage] = []
    pages: list[PageText] = []
    timings: Counter[str] = Counter()
    reading = ocr is not None and resolve(ocr)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            opened = Image.open(io.BytesIO(data))
            paged = opened.format in _PAGED_FORMATS
            frames = getattr(opened, "n_frames", 1) if paged else 1
        except Image.DecompressionBombError as exc:
            raise ExtractionError(f"{path}: refused as a decompression bomb ({exc})") from None
        except Exception as exc:
            raise ExtractionError(f"{path}: not a readable image ({error_words(exc)})") from None
        limit = min(frames, limits.max_pages, limits.max_images_per_document)
        if frames > limit:
            problems.append(f"image has {frames} frames; only the first {limit} were read")
        for frame in range(limit):
            if time.monotonic() - started > limits.time_budget_s:
                raise ExtractionError(
                    f"{path}: time budget of {limits.time_budget_s:g}s exceeded at frame "
                    f"{frame + 1} of {frames}"
                )
            try:
                picture = _frame_image(opened, frame, limits.max_pixels)
            except Exception as exc:
                reason = (
                    str(exc)
                    if isinstance(exc, _FrameRefused)
                    else f"cannot decode ({type(exc).__name__}: {exc})"
                )
                where = f"frame {frame + 1}: {reason}" if paged else reason
                if frames == 1:
                    raise ExtractionError(f"{path}: {where}") from None
                problems.append(where)
                continue
            number = frame + 1 if paged else None
            image = ExtractedImage(
                image=picture,
                pages=[number],
                name=path.name if number is None else f"{path.name}#{number}",
                context=context if number is None else f"{context}, page {number}",
                context_kind="filename",
                content_hash=image_content_hash(picture),
            )
            images.append(image)
            if reading and ocr is not None:
                clock = time.monotonic()
                where = f"frame {number}: " if number is not None else ""
                read = _read_text(picture, where, ocr, problems)
                timings["ocr"] += time.monotonic() - clock
                if read is not None and read[0]:
                    text, confidence = read
                    pages.append(PageText(page=number, text=text, ocr_confidence=confidence))
                    image.context, image.context_kind = trim_context(text), "ocr"
    if not images:
        raise ExtractionError(f"{path}: no frame could be decoded ({'; '.join(problems)})")
    return ParsedDocument(
        source=str(path),
        kind="image",
        pages=pages,
        images=images,
        problems=problems,
        page_count=frames if paged else 1,
        parser="pillow",
        timings=timings,
    )
