"""Decoding image bytes safely, and flattening pictures to RGB.

The decoded size is checked from the header *before* any pixel is decoded, so a decompression
bomb costs a few bytes of reading, not gigabytes of memory.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import urllib.parse
import warnings

from PIL import Image

#: Largest image (in pixels) that mrag decodes: 8192 x 8192. Anything bigger is refused unread.
DEFAULT_MAX_PIXELS = 8192 * 8192


_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>")


def error_words(exc: BaseException) -> str:
    """``exc`` as "Type: message" for a person: Python object reprs ("<_io.BytesIO object at
    0x7f...>", which Pillow puts in its messages) become "the image data", space is squeezed
    and the message is cut at 300 characters."""
    message = " ".join(_OBJECT_REPR.sub("the image data", str(exc)).split())[:300]
    return f"{type(exc).__name__}: {message}"


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


def check_pixels(image: Image.Image, max_pixels: int, name: str) -> None:
    """:class:`ImageError` naming ``name`` when the image is over ``max_pixels``."""
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
            check_pixels(image, max_pixels, name)
            if frame:
                image.seek(frame)
                check_pixels(image, max_pixels, name)  # each frame has its own size
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


def from_data_uri(uri: str, *, max_pixels: int) -> Image.Image:
    """Decode a ``data:`` URI (base64 or percent-encoded) holding an image."""
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
