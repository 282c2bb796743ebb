"""The FastAPI application: OpenAI-compatible embeddings, model listing, health and search.

Endpoints:

- ``POST /v1/embeddings``: OpenAI's embeddings API, with images as ``{"image": ...}`` items;
- ``GET /v1/models`` and ``GET /v1/models/{id}``: the names the served model answers to;
- ``POST /v1/search``: mixed text and image retrieval over the mrag store, by text or image;
- ``GET /healthz``: liveness plus batching counters (never behind the API key).

Every error, including a malformed body or an unknown route, is answered in OpenAI's shape,
``{"error": {"message", "type", "param", "code"}}``, so OpenAI clients raise their usual
exceptions. Handlers turn anything unexpected into a 500 for that request only.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mrag.model import JinaClipModel
from mrag.server.batching import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_WAIT, MicroBatcher, QueueFull
from mrag.server.inputs import decode_image_input, image_tokens, prepare_input
from mrag.server.limits import APIError, ServerLimits, invalid, too_large
from mrag.store import StoreError, StoreSettings

logger = logging.getLogger("mrag.server")

#: The name every jina-clip-v1 server answers to, whatever folder its weights came from.
MODEL_FAMILY_NAME = "jina-clip-v1"
#: Paths reachable without the API key, for load balancers and probes.
OPEN_PATHS = frozenset({"/healthz"})


def default_model_names(name_or_path: str, extra: Sequence[str] = ()) -> list[str]:
    """Names a served model answers to: ``extra`` first, then ``jina-clip-v1``, then the Hub id,
    or for a local folder its base name (not the full path, which would show clients the
    server's file system). The first name is the one responses report."""
    path = Path(name_or_path)
    own = path.resolve().name if path.is_dir() else str(name_or_path)
    names = [*extra, MODEL_FAMILY_NAME, own]
    return [name for name in dict.fromkeys(names) if name]


@dataclass
class ServerConfig:
    """Everything the application needs besides the model.

    Attributes:
        model_names: accepted ``model`` values; the first one is reported in responses.
        limits: per-request limits (see :class:`~mrag.server.limits.ServerLimits`).
        api_key: when set, every endpoint but ``/healthz`` needs ``Authorization: Bearer <key>``.
        max_batch_size, max_wait: the micro-batcher's bounds (inputs, seconds).
        store: where ``/v1/search`` looks; None disables search (503).
    """

    model_names: list[str] = field(default_factory=lambda: [MODEL_FAMILY_NAME])
    limits: ServerLimits = field(default_factory=ServerLimits)
    api_key: str | None = None
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_wait: float = DEFAULT_MAX_WAIT
    store: StoreSettings | None = None


# -- request bodies --------------------------------------------------------------------------------


class EmbeddingsRequest(BaseModel):
    """Body of ``POST /v1/embeddings`` (OpenAI's fields; unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    input: Any = Field(
        description='a string, a list of strings, or a list of {"text": ...} / {"image": ...} '
        "items; an image is a data URI, base64, or an http(s) URL when the server allows URLs"
    )
    model: str
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


class SearchRequest(BaseModel):
    """Body of ``POST /v1/search``."""

    model_config = ConfigDict(extra="forbid")

    query: str | dict[str, str] = Field(
        description='the query: a string, {"text": ...} or {"image": data URI | base64 | URL}'
    )
    k: int = Field(default=8, ge=1)
    filter: dict[str, str | int | bool | list[str | int | bool]] | None = Field(
        default=None,
        description='metadata conditions, e.g. {"modality": "image", "source": "a.pdf"}; '
        "a list matches any of its values",
    )
    fusion: Literal["rrf", "quota", "score"] | None = None
    text_k: int | None = Field(default=None, ge=0)
    image_k: int | None = Field(default=None, ge=0)
    hybrid: bool | None = Field(
        default=None, description="run the BM25 keyword leg for a text query (default true)"
    )
    leg_weights: dict[Literal["bm25", "text", "image"], float] | None = Field(
        default=None, description='RRF weight per leg, e.g. {"bm25": 2.0}'
    )
    model: str | None = None
    include_images: bool = Field(
        default=True, description="return each image hit's picture as base64 in its metadata"
    )


# -- errors ------------------------------------------------------------------------------------


def error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _validation_error(exc: RequestValidationError | ValidationError) -> APIError:
    errors = exc.errors()
    if not errors:
        return invalid("invalid request body")
    first = errors[0]
    if first.get("type") == "json_invalid":
        return invalid(
            "We could not parse the JSON body of your request: it is not valid JSON.",
            code="invalid_json",
        )
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(location) or None
    message = first.get("msg", "invalid value")
    if param is None and first.get("type") == "missing":
        return invalid("the request needs a JSON body")
    if param:
        message = f"Invalid value for '{param}': {message}"
    return invalid(message, param=param)


def _http_error(request: Request, exc: StarletteHTTPException) -> APIError:
    if exc.status_code == 404:
        return APIError(404, f"Invalid URL ({request.method} {request.url.path})")
    if exc.status_code == 405:
        return APIError(405, f"Method {request.method} is not allowed on {request.url.path}")
    return APIError(exc.status_code, str(exc.detail))


async def _send_error(send: Send, error: APIError) -> None:
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    for name, value in (error.headers or {}).items():
        headers.append((name.lower().encode(), value.encode()))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """Checks the API key and the body size before anything reads or parses the request.

    The key is compared in constant time. The body is read here, at most ``max_body_bytes`` of
    it, and replayed to the application: a request that declares a larger ``Content-Length`` is
    refused unread, and a chunked one is cut off as soon as it passes the limit, so an oversized
    body costs the server no more than the limit in memory.
    """

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self._key = hashlib.sha256(api_key.encode("utf-8")).digest() if api_key else None
        self.max_body_bytes = max_body_bytes

    def _authorised(self, headers: Headers) -> bool:
        assert self._key is not None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        # compare_digest takes the same time wherever the inputs differ; comparing digests
        # keeps the key's length out of the timing as well.
        supplied = hashlib.sha256(token.strip().encode("utf-8")).digest()
        return hmac.compare_digest(supplied, self._key) and scheme.lower() == "bearer"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if (
            self._key is not None
            and scope["path"] not in OPEN_PATHS
            and not self._authorised(headers)
        ):
            missing = "authorization" not in headers
            message = (
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
                if missing
                else "Incorrect API key provided."
            )
            await _send_error(
                send,
                APIError(
                    401,
                    message,
                    code="invalid_api_key",
                    headers={"WWW-Authenticate": "Bearer"},
                ),
            )
            return
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                await _send_error(send, invalid("malformed Content-Length header"))
                return
            if int(length) > self.max_body_bytes:
                await _send_error(send, self._too_large())
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_body_bytes:
                await _send_error(send, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls wait for the disconnect, as usual

        await self.app(scope, replay, send)

    def _too_large(self) -> APIError:
        return too_large(
            f"the request body is over the {self.max_body_bytes:,} byte limit",
            code="request_too_large",
        )


# -- the application ---------------------------------------------------------------------------

BodyModel = TypeVar("BodyModel", bound=BaseModel)
#: Bodies and responses up to this size are (de)serialised on the event loop, larger ones not.
_INLINE_JSON = 256 * 1024
#: Text inputs up to this many characters are tokenised on the event loop (faster than a thread
#: hop for the common one-short-text request); anything larger, and every image, is not.
_INLINE_TEXT_CHARS = 8192


async def parse_body(request: Request, model: type[BodyModel]) -> BodyModel:
    """The JSON body as ``model``, whatever the Content-Type (curl -d sends a form type)."""
    raw = await request.body()
    if not raw.strip():
        raise invalid("the request needs a JSON body")
    try:
        # Parsing megabytes of JSON takes long enough to stall every other request.
        if len(raw) < _INLINE_JSON:
            data = json.loads(raw)
        else:
            data = await run_in_threadpool(json.loads, raw)
    except (ValueError, RecursionError):
        raise invalid(
            "We could not parse the JSON body of your request: it is not valid JSON.",
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise invalid("the JSON body must be an object")
    where = _lone_surrogate(data)
    if where is not None:
        # JSON's \uD800 escapes can spell half a character; no text holds one, and the
        # tokenizer (and any JSON encoder echoing it back) rejects it.
        raise invalid(
            f"'{where}' holds a lone UTF-16 surrogate (an escape like \\ud800 without its pair); "
            "send valid Unicode text",
            param=where,
            code="invalid_unicode",
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc) from None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(value: Any, where: str = "") -> str | None:
    """The JSON path of the first string (or key) holding a lone surrogate, or None."""
    if isinstance(value, str):
        return (where or "body") if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            if _SURROGATE.search(key):
                return _SURROGATE.sub("?", path)
            found = _lone_surrogate(item, path)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _lone_surrogate(item, f"{where}[{index}]")
            if found is not None:
                return found
    return None


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    # Bodies are parsed by hand (see parse_body); this keeps them in the OpenAPI document.
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class _SearchBackend:
    """The retriever behind ``/v1/search``, opened on first use and shared by all requests."""

    def __init__(self, settings: StoreSettings | None, model: JinaClipModel) -> None:
        self.settings = settings
        self.model = model
        self._retriever: Any = None
        self._open_lock = threading.Lock()
        # Embedded Qdrant is not made for concurrent callers; one search at a time is cheap
        # next to the embedding that precedes it.
        self.search_lock = threading.Lock()

    def retriever(self) -> Any:
        if self.settings is None:
            raise APIError(
                503,
                "search is not configured on this server",
                type="server_error",
                code="search_unavailable",
            )
        with self._open_lock:
            if self._retriever is None:
                # Imported here: the server starts, and embeds, without the retrieval stack.
                from mrag.model.embeddings import JinaClipEmbeddings
                from mrag.retrieval.retriever import MultimodalRetriever

                try:
                    retriever = MultimodalRetriever.from_settings(
                        self.settings, JinaClipEmbeddings(model=self.model)
                    )
                    if retriever.store.exists():
                        try:
                            retriever.check_model()
                        except StoreError:
                            retriever.store.close()
                            raise
                    self._retriever = retriever
                except StoreError as exc:
                    raise APIError(
                        503,
                        f"the store cannot be opened: {exc}",
                        type="server_error",
                        code="store_unavailable",
                    ) from None
            return self._retriever

    def close(self) -> None:
        with self._open_lock:
            if self._retriever is not None:
                with contextlib.suppress(Exception):
                    self._retriever.store.close()
                self._retriever = None


def create_app(model: JinaClipModel, config: ServerConfig | None = None) -> FastAPI:
    """Build the application serving ``model``; the micro-batcher runs while the app is up."""
    config = config or ServerConfig()
    if not config.model_names:
        raise ValueError("the server needs at least one model name")
    limits = config.limits
    batcher = MicroBatcher(
        model,
        max_batch_size=config.max_batch_size,
        max_wait=config.max_wait,
        max_queued_inputs=limits.max_queued_inputs,
        max_text_tokens=limits.max_text_tokens,
    )
    search = _SearchBackend(config.store, model)
    created = int(time.time())
    served_name = config.model_names[0]
    accepted = set(config.model_names)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            batcher.close()
            search.close()

    app = FastAPI(
        title="mrag",
        summary="OpenAI-compatible jina-clip-v1 embeddings and multimodal search",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.config = config

    # -- error handlers ----------------------------------------------------------------------

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(_validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(_http_error(request, exc))

    @app.exception_handler(QueueFull)
    async def _busy(_: Request, exc: QueueFull) -> JSONResponse:
        return error_response(
            APIError(
                503, str(exc), type="server_error", code="overloaded", headers={"Retry-After": "1"}
            )
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error in %s %s", request.method, request.url.path)
        return error_response(
            APIError(
                500, "The server had an error while processing your request.", type="server_error"
            )
        )

    def check_model(name: str | None, *, required: bool) -> None:
        if name is None and not required:
            return
        if name not in accepted:
            raise APIError(
                404,
                f"The model `{name}` does not exist; this server serves {served_name!r}.",
                param="model",
                code="model_not_found",
            )

    precision = model.dtype_choice

    def model_card(name: str) -> dict[str, Any]:
        # OpenAI's four fields, plus how this server computes (clients ignore extra fields).
        return {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "mrag",
            "dtype": precision.dtype,
            "dtype_reason": precision.reason,
            "device": str(model.device),
        }

    # -- endpoints ---------------------------------------------------------------------------

    @app.get("/healthz", summary="Liveness and batching counters")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": served_name,
            "dimensions": model.embedding_dim,
            "queued_inputs": batcher.queued_inputs,
            **batcher.stats.as_dict(),
        }

    @app.get("/v1/models", summary="The names the served model answers to")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card(name) for name in config.model_names]}

    @app.get("/v1/models/{name:path}", summary="One model")
    async def get_model(name: str) -> dict[str, Any]:
        check_model(name, required=True)
        return model_card(name)

    @app.post(
        "/v1/embeddings",
        summary="Embed texts and images (OpenAI-compatible)",
        openapi_extra=_body_schema(EmbeddingsRequest),
    )
    async def embeddings(request: Request) -> JSONResponse:
        body = await parse_body(request, EmbeddingsRequest)
        check_model(body.model, required=True)
        dimensions = _check_dimensions(body.dimensions, model.embedding_dim)
        with batcher.preparing():
            if _small_text_input(body.input):
                prepared = prepare_input(body.input, model, limits)
            else:
                prepared = await run_in_threadpool(prepare_input, body.input, model, limits)
            text_future = batcher.submit_texts(prepared.texts)
            image_future = batcher.submit_images(prepared.images)
        vectors = np.empty((prepared.count, model.embedding_dim), dtype=np.float32)
        vectors[prepared.text_positions] = await text_future
        vectors[prepared.image_positions] = await image_future
        usage = {"prompt_tokens": prepared.prompt_tokens, "total_tokens": prepared.prompt_tokens}

        def render() -> JSONResponse:
            rows = truncate(vectors, dimensions)
            data = [
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": _encode(row, body.encoding_format),
                }
                for index, row in enumerate(rows)
            ]
            return JSONResponse(
                {"object": "list", "data": data, "model": served_name, "usage": usage}
            )

        # A few vectors render in microseconds; hundreds would hold up the event loop.
        if vectors.size * 12 < _INLINE_JSON:
            return render()
        return await run_in_threadpool(render)

    @app.post(
        "/v1/search",
        summary="Mixed text and image search over the mrag store",
        openapi_extra=_body_schema(SearchRequest),
    )
    async def search_endpoint(request: Request) -> JSONResponse:
        body = await parse_body(request, SearchRequest)
        check_model(body.model, required=False)
        if body.k > limits.max_search_k:
            raise invalid(f"'k' may be at most {limits.max_search_k}", param="k")
        kind, content = _query_item(body.query)
        retriever = await run_in_threadpool(search.retriever)
        with batcher.preparing():
            if kind == "text":
                tokens = await run_in_threadpool(_count_query_tokens, model, content, limits)
                future = batcher.submit_texts([content])
            else:
                image = await run_in_threadpool(
                    decode_image_input,
                    content,
                    limits,
                    "query",
                    model.config.preprocess.image_size,
                )
                tokens = image_tokens(model)
                future = batcher.submit_images([image])
        vector = (await future)[0]
        options: dict[str, Any] = {"k": body.k, "filter": body.filter}
        for name in ("fusion", "text_k", "image_k", "hybrid", "leg_weights"):
            if getattr(body, name) is not None:
                options[name] = getattr(body, name)

        def run_search() -> list[Any]:
            with search.search_lock:
                text = content if kind == "text" else None
                found = retriever.search_by_vector(vector.tolist(), text=text, **options)
                if not found:
                    _check_sources_exist(retriever, body.filter)
                return found

        try:
            documents = await run_in_threadpool(run_search)
        except StoreError as exc:
            raise APIError(404, str(exc), code="collection_not_found") from None
        except ValueError as exc:  # an unknown modality in the filter, for instance
            raise invalid(str(exc), param="filter") from None
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}

        def render() -> JSONResponse:
            data = [_search_result(doc, body.include_images) for doc in documents]
            return JSONResponse(
                {"object": "list", "data": data, "model": served_name, "usage": usage}
            )

        # Image hits carry their pictures: the body can run to megabytes.
        return await run_in_threadpool(render)

    app.add_middleware(
        GuardMiddleware, api_key=config.api_key, max_body_bytes=limits.max_body_bytes
    )
    return app


# -- helpers -----------------------------------------------------------------------------------


def _check_sources_exist(retriever: Any, conditions: dict[str, Any] | None) -> None:
    """A 404 naming the filter's source when no stored source has that path or file name."""
    given = (conditions or {}).get("source")
    if given is None:
        return
    for value in [given] if not isinstance(given, list) else given:
        if isinstance(value, str) and not retriever.store.count_named(value):
            raise APIError(
                404,
                f"no stored source has the path or file name {value!r} (filter.source)",
                param="filter",
                code="source_not_found",
            )


def _check_dimensions(dimensions: int | None, full: int) -> int | None:
    if dimensions is None or dimensions == full:
        return None
    if not 1 <= dimensions <= full:
        raise invalid(f"'dimensions' must be between 1 and {full}", param="dimensions")
    return dimensions


def truncate(vectors: np.ndarray, dimensions: int | None) -> np.ndarray:
    """Keep the first ``dimensions`` components of each row and L2-normalise it again.

    jina-clip-v1 was not trained for truncation (Matryoshka), so shorter vectors lose quality;
    the option exists because OpenAI clients send it.
    """
    if dimensions is None:
        return vectors
    cut = vectors[:, :dimensions]
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return (cut / np.maximum(norms, 1e-12)).astype(np.float32)


def _encode(row: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        # OpenAI's format: the raw little-endian float32 bytes, base64-encoded.
        return base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
    return row.tolist()


def _query_item(query: str | dict[str, str]) -> tuple[str, str]:
    if isinstance(query, str):
        kind, content = "text", query
    elif len(query) == 1 and next(iter(query)) in ("text", "image"):
        kind, content = next(iter(query.items()))
    else:
        raise invalid('\'query\' must be a string, {"text": ...} or {"image": ...}', param="query")
    if not content:
        raise invalid("'query' is empty", param="query")
    return kind, content


def _count_query_tokens(model: JinaClipModel, text: str, limits: ServerLimits) -> int:
    length = len(model.tokenize([text], max_length=2**31 - 1)[0])
    if length > limits.max_text_tokens:
        raise invalid(
            f"the query is {length} tokens long; at most {limits.max_text_tokens} are accepted",
            param="query",
            code="context_length_exceeded",
        )
    return length


def _search_result(document: Any, include_images: bool) -> dict[str, Any]:
    metadata = dict(document.metadata)
    if not include_images:
        metadata.pop("image_base64", None)
    return {
        "object": "search_result",
        "id": document.id,
        "rank": metadata.get("rank"),
        "score": metadata.get("score"),
        "modality": metadata.get("modality"),
        "page_content": document.page_content,
        "metadata": metadata,
    }


def _small_text_input(value: Any) -> bool:
    """Whether ``input`` is a few short strings, cheaper to tokenise here than in a thread."""
    if isinstance(value, str):
        return len(value) <= _INLINE_TEXT_CHARS
    return (
        isinstance(value, list)
        and len(value) <= 32
        and all(isinstance(item, str) for item in value)
        and sum(len(item) for item in value) <= _INLINE_TEXT_CHARS
    )
