"""The picture an image point carries: downscaled and encoded, so any client of the store can
show it without the original file."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

from PIL import Image

from mrag.images.decode import to_rgb

#: Longest side of the image rendition stored in each image point.
RENDITION_MAX_SIDE = 1024
_JPEG_QUALITY = 88
#: Images with at most this many distinct colours are stored as PNG.
_LINE_ART_COLOURS = 256


@dataclass(frozen=True)
class Rendition:
    """An encoded rendition of a picture, and the size of the picture it was made from."""

    width: int
    height: int
    mime_type: str
    #: The encoded bytes, base64 (what the payload stores).
    data_base64: str


def encode_rendition(image: Image.Image, max_side: int = RENDITION_MAX_SIDE) -> tuple[str, bytes]:
    """Downscale ``image`` to fit ``max_side`` and encode it; returns (mime type, bytes).

    Photos compress best as JPEG, line art (charts, diagrams, scans: few distinct colours) as
    PNG, which also keeps its edges sharp.
    """
    image = to_rgb(image)
    if max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if image.getcolors(maxcolors=_LINE_ART_COLOURS) is not None:
        # Pillow's optimize pass made files 3% smaller at 4.7x the time (239 line-art
        # renditions of the shared corpus): not worth it for every picture of every ingest.
        image.save(buffer, format="PNG")
        return "image/png", buffer.getvalue()
    image.save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    return "image/jpeg", buffer.getvalue()


def rendition_of(image: Image.Image, max_side: int = RENDITION_MAX_SIDE) -> Rendition:
    """The :class:`Rendition` of ``image`` (see :func:`encode_rendition`)."""
    mime_type, data = encode_rendition(image, max_side)
    return Rendition(image.width, image.height, mime_type, base64.b64encode(data).decode("ascii"))
