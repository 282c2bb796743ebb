"""``POST /v1/search`` (mixed text and image retrieval, by text or image) and
``GET /v1/images/{id}`` (the stored picture of an image hit, for pages that show thumbnails)."""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from mrag.model import JinaClipModel
from mrag.server.batching import MicroBatcher
from mrag.server.inputs import decode_image_input, image_tokens
from mrag.server.limits import APIError, ServerLimits, invalid
from mrag.server.models import ServedModel
from mrag.server.schemas import SearchRequest, body_schema, parse_body
from mrag.server.shared import SharedStore
from mrag.store import StoreError

#: Options of a search request passed on to the retriever when given.
_OPTIONS = ("fusion", "text_k", "image_k", "hybrid", "leg_weights")


def search_router(
    served: ServedModel, batcher: MicroBatcher, shared: SharedStore, limits: ServerLimits
) -> APIRouter:
    """The search endpoint and the image endpoint its results link to."""
    router = APIRouter()
    model = served.model

    async def embed_query(kind: str, content: str) -> tuple[Any, int]:
        with batcher.preparing():
            if kind == "text":
                tokens = await run_in_threadpool(count_query_tokens, model, content, limits)
                future = batcher.submit_texts([content])
            else:
                image = await run_in_threadpool(
                    decode_image_input, content, limits, "query", model.config.preprocess.image_size
                )
                tokens = image_tokens(model)
                future = batcher.submit_images([image])
        return (await future)[0], tokens

    @router.post(
        "/v1/search",
        summary="Mixed text and image search over the mrag store",
        openapi_extra=body_schema(SearchRequest),
    )
    async def search_endpoint(request: Request) -> JSONResponse:
        body = await parse_body(request, SearchRequest)
        served.check(body.model, required=False)
        if body.k > limits.max_search_k:
            raise invalid(f"'k' may be at most {limits.max_search_k}", param="k")
        kind, content = query_item(body.query)
        retriever = await run_in_threadpool(shared.retriever)
        vector, tokens = await embed_query(kind, content)
        options: dict[str, Any] = {"k": body.k, "filter": body.filter}
        options.update({n: getattr(body, n) for n in _OPTIONS if getattr(body, n) is not None})

        def run_search() -> list[Any]:
            with shared.lock:
                text = content if kind == "text" else None
                found = retriever.search_by_vector(vector.tolist(), text=text, **options)
                if not found:
                    check_sources_exist(retriever, body.filter)
                return found

        try:
            documents = await run_in_threadpool(run_search)
        except StoreError as exc:
            raise APIError(404, str(exc), code="collection_not_found") from None
        except ValueError as exc:  # an unknown modality in the filter, for instance
            raise invalid(str(exc), param="filter") from None
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}

        def render() -> JSONResponse:
            data = [search_result(doc, body.include_images) for doc in documents]
            return JSONResponse(
                {"object": "list", "data": data, "model": served.name, "usage": usage}
            )

        # Image hits carry their pictures: the body can run to megabytes.
        return await run_in_threadpool(render)

    @router.get("/v1/images/{point_id}", summary="The stored picture of an image point")
    async def image(point_id: str) -> Response:
        mime_type, data = await run_in_threadpool(stored_image, shared, point_id)
        return Response(
            data, media_type=mime_type, headers={"Cache-Control": "private, max-age=300"}
        )

    return router


def stored_image(shared: SharedStore, point_id: str) -> tuple[str, bytes]:
    """The rendition stored in image point ``point_id``; 404 when there is none."""
    try:
        # Ids are UUIDs; anything else names no point (and the store would refuse it).
        point_id = str(uuid.UUID(point_id))
    except ValueError:
        raise APIError(
            404, f"no stored image has the id {point_id!r}", code="image_not_found"
        ) from None
    found = shared.store().retrieve([point_id])
    metadata = (found[0].payload.get("metadata") or {}) if found else {}
    encoded = metadata.get("image_base64")
    mime_type = metadata.get("mime_type")
    if not encoded or mime_type not in ("image/png", "image/jpeg"):
        raise APIError(404, f"no stored image has the id {point_id!r}", code="image_not_found")
    try:
        return mime_type, base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(
            404, f"the stored image {point_id!r} is damaged", code="image_damaged"
        ) from None


def check_sources_exist(retriever: Any, conditions: dict[str, Any] | None) -> None:
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


def query_item(query: str | dict[str, str]) -> tuple[str, str]:
    """``("text" | "image", content)`` of a search query."""
    if isinstance(query, str):
        kind, content = "text", query
    elif len(query) == 1 and next(iter(query)) in ("text", "image"):
        kind, content = next(iter(query.items()))
    else:
        raise invalid('\'query\' must be a string, {"text": ...} or {"image": ...}', param="query")
    if not content:
        raise invalid("'query' is empty", param="query")
    return kind, content


def count_query_tokens(model: JinaClipModel, text: str, limits: ServerLimits) -> int:
    """Tokens of a text query; 400 when it is over the limit."""
    length = len(model.tokenize([text], max_length=2**31 - 1)[0])
    if length > limits.max_text_tokens:
        raise invalid(
            f"the query is {length} tokens long; at most {limits.max_text_tokens} are accepted",
            param="query",
            code="context_length_exceeded",
        )
    return length


def search_result(document: Any, include_images: bool) -> dict[str, Any]:
    """One hit as a JSON object."""
    metadata = dict(document.metadata)
    if not include_images:
        metadata.pop("image_base64", None)
    return {
        "object": "search_result",
        "id": document.id,
        "rank": metadata.get("rank"),
        "score": metadata.get("score"),
        "modality": metadata.get("modality"),
        # text, table, figure or page; points stored before elements existed derive it.
        "element": metadata.get("element")
        or ("figure" if metadata.get("modality") == "image" else "text"),
        "page_content": document.page_content,
        "metadata": metadata,
    }
