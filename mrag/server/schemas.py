"""Request bodies, and the strict JSON parsing every JSON endpoint shares."""

from __future__ import annotations

import json
import re
from typing import Any, Literal, TypeVar

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from mrag.server.errors import validation_error
from mrag.server.limits import invalid

BodyModel = TypeVar("BodyModel", bound=BaseModel)
#: Bodies and responses up to this size are (de)serialised on the event loop, larger ones not.
INLINE_JSON = 256 * 1024


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
        description='metadata conditions, e.g. {"modality": "image", "source": "a.pdf"} or '
        '{"element": "table"} (text, table, figure, page); a list matches any of its values',
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


async def parse_body(request: Request, model: type[BodyModel]) -> BodyModel:
    """The JSON body as ``model``, whatever the Content-Type (curl -d sends a form type)."""
    raw = await request.body()
    if not raw.strip():
        raise invalid("the request needs a JSON body")
    try:
        # Parsing megabytes of JSON takes long enough to stall every other request.
        if len(raw) < INLINE_JSON:
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
        raise validation_error(exc) from None


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


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI extra for a route whose body is parsed by hand (see :func:`parse_body`)."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
