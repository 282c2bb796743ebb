"""Turning the ``input`` of an embeddings request into texts and decoded images, within limits.

Everything here is blocking (tokenising, base64 decoding, image decoding, URL downloads) and runs
in a worker thread, so that one large request never stalls the event loop serving the others.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import os
import re
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageOps

from mrag.images import ImageError, decode_image_bytes, to_rgb
from mrag.images.urls import URLError, fetch_public_url
from mrag.model import JinaClipModel
from mrag.model.crop import tower_square
from mrag.server.limits import ServerLimits, invalid, too_large

_WHITESPACE = re.compile(rb"\s+")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]{0,15}:")
#: Images decoded at full size at the same time, across all requests.
_DECODE_SLOTS = threading.BoundedSemaphore(max(2, min(8, os.cpu_count() or 2)))


@dataclass
class PreparedInput:
    """An embeddings request's inputs, split by modality, with their positions in ``input``."""

    texts: list[str] = field(default_factory=list)
    text_positions: list[int] = field(default_factory=list)
    images: list[Image.Image] = field(default_factory=list)
    image_positions: list[int] = field(default_factory=list)
    prompt_tokens: int = 0

    @property
    def count(self) -> int:
        return len(self.text_positions) + len(self.image_positions)


def parse_items(value: Any, limits: ServerLimits) -> list[tuple[str, str]]:
    """Validate the shape of ``input``: a list of ``("text" | "image", value)`` pairs.

    Accepted: a string; a list of strings; a list of ``{"text": str}`` / ``{"image": str}`` items
    (strings and items may be mixed). Token-id arrays, which OpenAI also accepts, mean nothing to
    this model's tokenizer and are refused with a hint.
    """
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise invalid(
            "'input' must be a string, a list of strings, or a list of {\"text\": ...} / "
            '{"image": ...} items',
            param="input",
        )
    if not value:
        raise invalid("'input' must not be empty", param="input")
    if len(value) > limits.max_inputs:
        raise invalid(
            f"'input' holds {len(value)} items; at most {limits.max_inputs} are allowed "
            "per request",
            param="input",
            code="too_many_inputs",
        )
    items: list[tuple[str, str]] = []
    for index, item in enumerate(value):
        param = f"input[{index}]"
        if isinstance(item, str):
            items.append(("text", item))
        elif isinstance(item, dict):
            keys = set(item) - {"type"}  # {"type": "image", "image": ...} is tolerated
            if keys == {"text"} and isinstance(item["text"], str):
                items.append(("text", item["text"]))
            elif keys == {"image"} and isinstance(item["image"], str):
                items.append(("image", item["image"]))
            else:
                raise invalid(
                    f'{param} must be {{"text": string}} or {{"image": string}} '
                    "(a data URI, base64 or an http(s) URL)",
                    param=param,
                )
        elif isinstance(item, (int, list)) and not isinstance(item, bool):
            raise invalid(
                "token-id arrays are not supported: this server tokenises text itself, so send "
                "strings (with LangChain's OpenAIEmbeddings, pass "
                "check_embedding_ctx_length=False)",
                param="input",
                code="token_arrays_not_supported",
            )
        else:
            raise invalid(f"{param} must be a string or an object", param=param)
        if items[-1][1] == "":
            raise invalid(f"{param} is empty", param=param)
    return items


def prepare_input(value: Any, model: JinaClipModel, limits: ServerLimits) -> PreparedInput:
    """Parse and check ``input``, tokenise the texts and decode the images (blocking)."""
    items = parse_items(value, limits)
    prepared = PreparedInput()
    for position, (kind, content) in enumerate(items):
        if kind == "text":
            prepared.texts.append(content)
            prepared.text_positions.append(position)
        else:
            prepared.images.append(
                decode_image_input(
                    content, limits, f"input[{position}]", model.config.preprocess.image_size
                )
            )
            prepared.image_positions.append(position)
    if prepared.texts:
        # Tokenise without truncation to see each text's real length; the limit is a refusal,
        # not a silent cut, so that callers learn their chunks are too long.
        lengths = [len(ids) for ids in model.tokenize(prepared.texts, max_length=2**31 - 1)]
        for position, length in zip(prepared.text_positions, lengths, strict=True):
            if length > limits.max_text_tokens:
                raise invalid(
                    f"input[{position}] is {length} tokens long; this server accepts at most "
                    f"{limits.max_text_tokens} tokens per text",
                    param=f"input[{position}]",
                    code="context_length_exceeded",
                )
        prepared.prompt_tokens += sum(lengths)
    prepared.prompt_tokens += len(prepared.images) * image_tokens(model)
    return prepared


def image_tokens(model: JinaClipModel) -> int:
    """Tokens an image counts for in ``usage``: the vision tower's patches plus its CLS token."""
    grid = model.config.vision.grid_size
    return grid * grid + 1


def _b64decode(payload: bytes, limits: ServerLimits, param: str) -> bytes:
    payload = _WHITESPACE.sub(b"", payload)
    # Refuse by the encoded length before decoding: 4 characters carry 3 bytes.
    if len(payload) // 4 * 3 > limits.max_image_bytes + 3:
        raise too_large(
            f"{param}: the image is over the {limits.max_image_bytes:,} byte limit",
            param=param,
            code="image_too_large",
        )
    altchars = b"-_" if (b"-" in payload or b"_" in payload) else None
    try:
        return base64.b64decode(payload, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(
            f"{param}: the image is not valid base64", param=param, code="invalid_base64"
        ) from None


def _image_bytes(value: str, limits: ServerLimits, param: str) -> bytes:
    text = value.strip()
    if text[:5].lower() == "data:":
        header, sep, payload = text.partition(",")
        if not sep:
            raise invalid(
                f"{param}: malformed data URI (no ',')", param=param, code="invalid_image"
            )
        if not header.lower().endswith(";base64"):
            raise invalid(
                f"{param}: only base64 data URIs are accepted", param=param, code="invalid_image"
            )
        return _b64decode(payload.encode("ascii", "replace"), limits, param)
    if text[:8].lower().startswith(("http://", "https://")):
        if not limits.allow_urls:
            raise invalid(
                f"{param}: image URLs are not accepted by this server; send the image as a data "
                "URI or base64 (or start the server with --allow-urls)",
                param=param,
                code="urls_not_allowed",
            )
        try:
            fetched = fetch_public_url(
                text, max_bytes=limits.max_image_bytes, timeout=limits.url_timeout
            )
        except URLError as exc:
            raise invalid(f"{param}: {exc}", param=param, code="invalid_image_url") from None
        return fetched.data
    if _SCHEME.match(text):  # ":" is not in the base64 alphabet: some other kind of URI
        raise invalid(
            f"{param}: only data URIs, base64 and http(s) URLs are accepted",
            param=param,
            code="invalid_image",
        )
    return _b64decode(text.encode("ascii", "replace"), limits, param)


def decode_image_input(
    value: str, limits: ServerLimits, param: str, image_size: int | None = None
) -> Image.Image:
    """One image item to an RGB PIL image, checking bytes and pixels before decoding.

    With ``image_size`` the image is cut down at once to the model's input (shortest side
    resized to ``image_size``, centre crop): exactly the first steps of the model's own
    preprocessing, which then leaves it untouched, so the embedding is the same while a queued
    image holds ~150 kB instead of up to ``max_pixels`` x 3 bytes.
    """
    data = _image_bytes(value, limits, param)
    if len(data) > limits.max_image_bytes:
        raise too_large(
            f"{param}: the image is {len(data):,} bytes, over the {limits.max_image_bytes:,} "
            "byte limit",
            param=param,
            code="image_too_large",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            width, height = Image.open(io.BytesIO(data)).size  # header only, no pixels yet
    except Image.DecompressionBombError:
        width, height = 2**31, 1  # Pillow's own ceiling is far above ours
    except Exception:
        raise invalid(
            f"{param}: cannot decode the image (not a supported image format)",
            param=param,
            code="invalid_image",
        ) from None
    if width * height > limits.max_pixels:
        raise too_large(
            f"{param}: the image is {width}x{height} pixels, over the limit of "
            f"{limits.max_pixels:,} pixels",
            param=param,
            code="image_too_large",
        )
    # Full-size decodes are the memory peak of a request; bound how many run at once.
    with _DECODE_SLOTS:
        try:
            image = decode_image_bytes(data, name=param, max_pixels=limits.max_pixels)
        except ImageError as exc:
            raise invalid(str(exc), param=param, code="invalid_image") from None
        with contextlib.suppress(Exception):  # a broken EXIF block must not cost the picture
            image = ImageOps.exif_transpose(image) or image
        try:
            image = to_rgb(image)
            if image_size is not None:
                image = tower_square(image, image_size)
        except Exception as exc:
            raise invalid(
                f"{param}: cannot convert the image ({exc})", param=param, code="invalid_image"
            ) from None
    return image
