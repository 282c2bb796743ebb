"""``POST /v1/embeddings``: OpenAI's embeddings API, with images as ``{"image": ...}`` items."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mrag.server.batching import MicroBatcher
from mrag.server.inputs import prepare_input
from mrag.server.limits import ServerLimits, invalid
from mrag.server.models import ServedModel
from mrag.server.schemas import INLINE_JSON, EmbeddingsRequest, body_schema, parse_body

#: Text inputs up to this many characters are tokenised on the event loop (faster than a thread
#: hop for the common one-short-text request); anything larger, and every image, is not.
_INLINE_TEXT_CHARS = 8192


def embeddings_router(
    served: ServedModel, batcher: MicroBatcher, limits: ServerLimits
) -> APIRouter:
    """The embeddings endpoint, its inputs batched with every other request's."""
    router = APIRouter()
    model = served.model

    @router.post(
        "/v1/embeddings",
        summary="Embed texts and images (OpenAI-compatible)",
        openapi_extra=body_schema(EmbeddingsRequest),
    )
    async def embeddings(request: Request) -> JSONResponse:
        body = await parse_body(request, EmbeddingsRequest)
        served.check(body.model, required=True)
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
                {"object": "list", "data": data, "model": served.name, "usage": usage}
            )

        # A few vectors render in microseconds; hundreds would hold up the event loop.
        if vectors.size * 12 < INLINE_JSON:
            return render()
        return await run_in_threadpool(render)

    return router


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
