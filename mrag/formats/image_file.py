"""Image files (PNG, JPEG, WebP, GIF, BMP, TIFF) as documents of one picture each.

A multi-page TIFF gives one picture per frame, numbered from 1 like PDF pages. Animated GIF, WebP
and APNG files give their first frame only: later frames are motion, not new content. EXIF
orientation is applied so a phone photo is indexed the right way up.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from pathlib import Path

from PIL import Image, ImageOps

from mrag.document import (
    ExtractedImage,
    ExtractionError,
    ExtractionLimits,
    ParsedDocument,
    image_content_hash,
    read_source,
)
from mrag.figures import humanize_name
from mrag.images import pixel_problem, to_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
# Formats whose extra frames are separate pages rather than animation.
_PAGED_FORMATS = ("TIFF",)


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


def parse_image_file(path: Path, *, limits: ExtractionLimits) -> ParsedDocument:
    """Read an image file; each TIFF frame becomes one page-numbered picture.

    Raises :class:`ExtractionError` when the file is empty, not an image, or over the pixel limit.
    """
    started = time.monotonic()
    data = read_source(path)
    context = humanize_name(path.stem)
    problems: list[str] = []
    images: list[ExtractedImage] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            opened = Image.open(io.BytesIO(data))
            paged = opened.format in _PAGED_FORMATS
            frames = getattr(opened, "n_frames", 1) if paged else 1
        except Image.DecompressionBombError as exc:
            raise ExtractionError(f"{path}: refused as a decompression bomb ({exc})") from None
        except Exception as exc:
            raise ExtractionError(
                f"{path}: not a readable image ({type(exc).__name__}: {exc})"
            ) from None
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
            images.append(
                ExtractedImage(
                    image=picture,
                    pages=[number],
                    name=path.name if number is None else f"{path.name}#{number}",
                    context=context if number is None else f"{context}, page {number}",
                    context_kind="filename",
                    content_hash=image_content_hash(picture),
                )
            )
    if not images:
        raise ExtractionError(f"{path}: no frame could be decoded ({'; '.join(problems)})")
    return ParsedDocument(
        source=str(path),
        kind="image",
        pages=[],
        images=images,
        problems=problems,
        page_count=frames if paged else 1,
    )
