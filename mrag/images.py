"""Opening images from the many shapes users hand us, safely.

Every image that enters mrag passes through :func:`load_image`: a path, raw bytes, a PIL image, a
``data:`` URI or an http(s) URL. The decoded size is checked from the header *before* any pixel is
decoded, so a decompression bomb costs a few bytes of reading, not gigabytes of memory.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

from PIL import Image, ImageOps

ImageInput = str | Path | bytes | bytearray | Image.Image

#: Largest image (in pixels) that mrag decodes: 8192 x 8192. Anything bigger is refused unread.
DEFAULT_MAX_PIXELS = 8192 * 8192
#: Largest download accepted for an image URL.
DEFAULT_MAX_URL_BYTES = 32 * 1024 * 1024
DEFAULT_URL_TIMEOUT = 10.0


class ImageError(ValueError):
    """An image could not be opened: unreadable, unsupported, or over a size limit."""


def pixel_problem(width: int, height: int, max_pixels: int) -> str | None:
    """Why an image of this size is refused before decoding, or None when it is fine."""
    if width <= 0 or height <= 0:
        return f"image has an empty size {width}x{height}"
    if width * height > max_pixels:
        return (
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (possible decompression bomb)"
        )
    return None


def _check_pixels(image: Image.Image, max_pixels: int, name: str) -> None:
    problem = pixel_problem(*image.size, max_pixels)
    if problem:
        raise ImageError(f"{name}: {problem}")


def decode_image_bytes(
    data: bytes,
    *,
    name: str = "<bytes>",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    frame: int = 0,
) -> Image.Image:
    """Decode image bytes (PNG, JPEG, ...) into a loaded PIL image, checking its size first."""
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb warning fires below our limit for some sizes; ours is the check.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_pixels(image, max_pixels, name)
            if frame:
                image.seek(frame)
                _check_pixels(image, max_pixels, name)  # each frame has its own size
            image.load()
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow refuses sizes past twice its own limit while still reading the header.
        raise ImageError(
            f"{name}: image is over the limit of {max_pixels:,} pixels "
            f"(possible decompression bomb: {exc})"
        ) from None
    except Exception as exc:  # Pillow raises many types for corrupt data
        raise ImageError(f"{name}: cannot decode image ({type(exc).__name__}: {exc})") from None
    return image


def to_rgb(
    image: Image.Image, *, background: tuple[int, int, int] = (255, 255, 255)
) -> Image.Image:
    """Return an RGB copy of ``image``, compositing any transparency onto ``background``.

    Transparent pixels usually hold black; flattening onto white keeps a figure on a transparent
    background looking the way a reader sees it.
    """
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grey: scale to 8 bits rather than letting convert() clip to white.
        import numpy as np

        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        grey = ((array - low) * scale).clip(0, 255).astype("uint8")
        return Image.fromarray(grey, mode="L").convert("RGB")
    return image.convert("RGB")


def _from_data_uri(uri: str, *, max_pixels: int) -> Image.Image:
    header, sep, payload = uri.partition(",")
    if not sep or not header.startswith("data:"):
        raise ImageError("data URI: missing ',' after the header")
    if ";base64" in header:
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ImageError("data URI: payload is not valid base64") from None
    else:
        data = urllib.parse.unquote_to_bytes(payload)
    return decode_image_bytes(data, name="data URI", max_pixels=max_pixels)


def fetch_url(
    url: str, *, timeout: float = DEFAULT_URL_TIMEOUT, max_bytes: int = DEFAULT_MAX_URL_BYTES
) -> bytes:
    """Download ``url`` (http or https only) with a timeout and a size cap."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ImageError(f"{url}: only http and https URLs are fetched")
    request = urllib.request.Request(url, headers={"User-Agent": "mrag"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise ImageError(
                    f"{url}: {int(length):,} bytes is over the {max_bytes:,} byte limit"
                )
            data = response.read(max_bytes + 1)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{url}: download failed ({exc})") from None
    if len(data) > max_bytes:
        raise ImageError(f"{url}: response is over the {max_bytes:,} byte limit")
    return data


def load_image(
    source: ImageInput,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allow_urls: bool = True,
    url_timeout: float = DEFAULT_URL_TIMEOUT,
    max_url_bytes: int = DEFAULT_MAX_URL_BYTES,
) -> Image.Image:
    """Open one image from a path, bytes, a PIL image, a ``data:`` URI or an http(s) URL.

    The result is an RGB PIL image with its EXIF orientation applied. Raises :class:`ImageError`
    with the source named in the message when the image cannot be read or is too large.
    """
    if isinstance(source, Image.Image):
        _check_pixels(source, max_pixels, "PIL image")
        image = source
    elif isinstance(source, (bytes, bytearray, memoryview)):
        image = decode_image_bytes(bytes(source), max_pixels=max_pixels)
    elif isinstance(source, str) and source.startswith("data:"):
        image = _from_data_uri(source, max_pixels=max_pixels)
    elif isinstance(source, str) and source.lower().startswith(("http://", "https://")):
        if not allow_urls:
            raise ImageError(f"{source}: URLs are not allowed here")
        data = fetch_url(source, timeout=url_timeout, max_bytes=max_url_bytes)
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
