"""Turning embedded chunks and images into store points with langchain-qdrant payloads.

Every point's payload is ``{"page_content": str, "metadata": {...}}``. Metadata always holds
``modality`` ("text" or "image"), ``element`` (what the point shows: "text", "table", "figure"
or "page"; see :data:`mrag.extract.document.ELEMENTS`), ``source``, ``page`` (first page, or
None), ``pages`` and ``content_hash`` (sha256 of the source file, or of the content for points
added directly).
Image points also carry ``mime_type`` and ``image_base64``: a rendition of the picture capped at
:data:`RENDITION_MAX_SIDE` pixels, so any client of the store can show the image without the
original file.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

from PIL import Image

from mrag.images import to_rgb
from mrag.store.types import Point, point_id

#: Longest side of the image rendition stored in each image point.
RENDITION_MAX_SIDE = 1024
_JPEG_QUALITY = 88
#: Images with at most this many distinct colours are stored as PNG.
_LINE_ART_COLOURS = 256


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
        image.save(buffer, format="PNG", optimize=True)
        return "image/png", buffer.getvalue()
    image.save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    return "image/jpeg", buffer.getvalue()


def text_payload(text: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """A text point's payload; ``element`` is "text" unless ``metadata`` says otherwise."""
    return {"page_content": text, "metadata": {"modality": "text", "element": "text", **metadata}}


def image_payload(
    context: str, image: Image.Image, metadata: dict[str, Any], max_side: int = RENDITION_MAX_SIDE
) -> dict[str, Any]:
    """An image point's payload; ``element`` is "figure" unless ``metadata`` says otherwise."""
    mime_type, data = encode_rendition(image, max_side)
    return {
        "page_content": context,
        "metadata": {
            "modality": "image",
            "element": "figure",
            **metadata,
            "width": image.width,
            "height": image.height,
            "mime_type": mime_type,
            "image_base64": base64.b64encode(data).decode("ascii"),
        },
    }


def make_point(
    source: str,
    modality: str,
    position: str | int,
    vector: Sequence[float],
    payload: dict[str, Any],
) -> Point:
    return Point(point_id(source, modality, position), modality, vector, payload)


def decode_rendition(metadata: dict[str, Any]) -> Image.Image:
    """The stored image of an image point's metadata, as a PIL image."""
    return Image.open(io.BytesIO(base64.b64decode(metadata["image_base64"]))).convert("RGB")
