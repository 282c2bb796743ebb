"""Opening one image from any of the shapes users hand us: the single way images enter mrag.

:func:`load_image` takes a path, raw bytes, a PIL image, a ``data:`` URI or an http(s) URL. URLs
are fetched only through the guarded fetcher (:mod:`mrag.images.urls`): public addresses only,
with a size cap and a deadline, so a URL in a query cannot reach a private network.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageOps

from mrag.images.decode import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    check_pixels,
    decode_image_bytes,
    from_data_uri,
    to_rgb,
)
from mrag.images.urls import IPAddress, URLError, fetch_public_url, is_public_address

ImageInput = str | Path | bytes | bytearray | Image.Image

#: Largest download accepted for an image URL.
DEFAULT_MAX_URL_BYTES = 32 * 1024 * 1024
DEFAULT_URL_TIMEOUT = 10.0


def fetch_url(
    url: str,
    *,
    timeout: float = DEFAULT_URL_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_URL_BYTES,
    address_allowed: Callable[[IPAddress], bool] = is_public_address,
) -> bytes:
    """Download ``url`` (http or https, public addresses only) with a deadline and a size cap."""
    try:
        return fetch_public_url(
            url, max_bytes=max_bytes, timeout=timeout, address_allowed=address_allowed
        ).data
    except URLError as exc:
        raise ImageError(f"{url}: {exc}") from None


def load_image(
    source: ImageInput,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allow_urls: bool = True,
    url_timeout: float = DEFAULT_URL_TIMEOUT,
    max_url_bytes: int = DEFAULT_MAX_URL_BYTES,
    address_allowed: Callable[[IPAddress], bool] = is_public_address,
) -> Image.Image:
    """Open one image from a path, bytes, a PIL image, a ``data:`` URI or an http(s) URL.

    The result is an RGB PIL image with its EXIF orientation applied. Raises :class:`ImageError`
    with the source named in the message when the image cannot be read or is too large. URLs are
    fetched from public addresses only unless ``address_allowed`` admits others.
    """
    if isinstance(source, Image.Image):
        check_pixels(source, max_pixels, "PIL image")
        image = source
    elif isinstance(source, (bytes, bytearray, memoryview)):
        image = decode_image_bytes(bytes(source), max_pixels=max_pixels)
    elif isinstance(source, str) and source.startswith("data:"):
        image = from_data_uri(source, max_pixels=max_pixels)
    elif isinstance(source, str) and source.lower().startswith(("http://", "https://")):
        if not allow_urls:
            raise ImageError(f"{source}: URLs are not allowed here")
        data = fetch_url(
            source, timeout=url_timeout, max_bytes=max_url_bytes, address_allowed=address_allowed
        )
        image = decode_image_bytes(data, name=source, max_pixels=max_pixels)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
        image = decode_image_bytes(data, name=str(path), max_pixels=max_pixels)
    else:
        raise TypeError(f"cannot open an image from {type(source).__name__}")
    with contextlib.suppress(Exception):  # a broken EXIF block must not cost the picture
        image = ImageOps.exif_transpose(image) or image
    return to_rgb(image)
