"""Images in mrag: decoding bytes safely (:mod:`.decode`), fetching URLs without reaching private
networks (:mod:`.urls`), and :func:`load_image`, the one way an image enters (:mod:`.load`)."""

from mrag.images.decode import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    decode_image_bytes,
    pixel_problem,
    to_rgb,
)
from mrag.images.load import (
    DEFAULT_MAX_URL_BYTES,
    DEFAULT_URL_TIMEOUT,
    ImageInput,
    fetch_url,
    load_image,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_URL_BYTES",
    "DEFAULT_URL_TIMEOUT",
    "ImageError",
    "ImageInput",
    "decode_image_bytes",
    "fetch_url",
    "load_image",
    "pixel_problem",
    "to_rgb",
]
