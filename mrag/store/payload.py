"""Turning embedded chunks and images into store points with langchain-qdrant payloads.

Every point's payload is ``{"page_content": str, "metadata": {...}}``. Metadata always holds
``modality`` ("text" or "image"), ``element`` (what the point shows: "text", "table", "figure"
or "page"; see :data:`mrag.extract.document.ELEMENTS`), ``source``, ``page`` (first page, or
None), ``pages`` and ``content_hash`` (sha256 of the source file, or of the content for points
added directly).
Image points also carry ``mime_type`` and ``image_base64``: a rendition of the picture capped at
:data:`~mrag.images.rendition.RENDITION_MAX_SIDE` pixels (:mod:`mrag.images.rendition`), so any
client of the store can show the image without the original file.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

from PIL import Image

from mrag.images.rendition import RENDITION_MAX_SIDE, Rendition, rendition_of
from mrag.store.types import Point, point_id


def text_payload(text: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """A text point's payload; ``element`` is "text" unless ``metadata`` says otherwise."""
    return {"page_content": text, "metadata": {"modality": "text", "element": "text", **metadata}}


def image_payload(
    context: str, image: Image.Image, metadata: dict[str, Any], max_side: int = RENDITION_MAX_SIDE
) -> dict[str, Any]:
    """An image point's payload; ``element`` is "figure" unless ``metadata`` says otherwise."""
    return rendition_payload(context, rendition_of(image, max_side), metadata)


def rendition_payload(
    context: str, rendition: Rendition, metadata: dict[str, Any]
) -> dict[str, Any]:
    """An image point's payload from a rendition made beforehand (see :func:`image_payload`)."""
    return {
        "page_content": context,
        "metadata": {
            "modality": "image",
            "element": "figure",
            **metadata,
            "width": rendition.width,
            "height": rendition.height,
            "mime_type": rendition.mime_type,
            "image_base64": rendition.data_base64,
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
