"""Request limits of the server and the OpenAI-shaped errors raised when one is crossed.

Every limit has a conservative default so that a server started with no options cannot be made to
use unbounded memory or time by a single request; all of them are options of ``mrag serve``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Inputs (texts and images together) in one embeddings request.
DEFAULT_MAX_INPUTS = 256
#: Longest text, in tokens including ``[CLS]``/``[SEP]``: what jina-clip-v1 was trained on.
DEFAULT_MAX_TEXT_TOKENS = 512
#: Largest encoded image (after base64 decoding or download).
DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
#: Largest decoded image: 4096 x 4096 pixels (about 50 MB as RGB).
DEFAULT_MAX_PIXELS = 4096 * 4096
#: Largest request body, checked before any of it is parsed.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
#: Time allowed for fetching one image URL, connection and download together.
DEFAULT_URL_TIMEOUT = 10.0
#: Most results one search returns.
DEFAULT_MAX_SEARCH_K = 100
#: Inputs waiting for the model before new requests are turned away with 503.
DEFAULT_MAX_QUEUED_INPUTS = 4096


@dataclass(frozen=True)
class ServerLimits:
    """The limits one server enforces on each request.

    Attributes:
        max_inputs: texts and images in one ``/v1/embeddings`` request.
        max_text_tokens: tokens of one text (``[CLS]`` and ``[SEP]`` included); longer texts are
            refused with 400, as OpenAI does, rather than silently truncated.
        max_image_bytes: encoded size of one image, base64-decoded or downloaded.
        max_pixels: width x height of one decoded image, checked from the header before decoding.
        max_body_bytes: size of a whole request body, enforced before the body is parsed.
        allow_urls: whether image inputs may be http(s) URLs that the server downloads.
        url_timeout: seconds for one URL download, start to end.
        max_search_k: largest ``k`` of ``/v1/search``.
        max_queued_inputs: inputs waiting for the model; past it requests get 503.
    """

    max_inputs: int = DEFAULT_MAX_INPUTS
    max_text_tokens: int = DEFAULT_MAX_TEXT_TOKENS
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    allow_urls: bool = False
    url_timeout: float = DEFAULT_URL_TIMEOUT
    max_search_k: int = DEFAULT_MAX_SEARCH_K
    max_queued_inputs: int = DEFAULT_MAX_QUEUED_INPUTS

    def __post_init__(self) -> None:
        for name in (
            "max_inputs",
            "max_image_bytes",
            "max_pixels",
            "max_body_bytes",
            "max_search_k",
            "max_queued_inputs",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        # [CLS] and [SEP] alone take two tokens; a limit below three admits no text at all.
        if self.max_text_tokens < 3:
            raise ValueError("max_text_tokens must be at least 3")
        if self.url_timeout <= 0:
            raise ValueError("url_timeout must be positive")


class APIError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {message, type, param, code}}``.

    Raised anywhere while handling a request; the application turns it into a JSON response with
    ``status`` as the HTTP status code.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # OpenAI's field name
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    """A 400 ``invalid_request_error``."""
    return APIError(400, message, param=param, code=code)


def too_large(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    """A 413 ``invalid_request_error``: the request or a part of it is over a size limit."""
    return APIError(413, message, param=param, code=code)
