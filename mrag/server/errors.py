"""Every error in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``.

A malformed body, an unknown route, a full queue or a crash: each is answered in that shape, so
OpenAI clients raise their usual exceptions, and a crash fails only its own request.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from mrag.server.batching import QueueFull
from mrag.server.limits import APIError, invalid

logger = logging.getLogger("mrag.server")


def error_response(error: APIError) -> JSONResponse:
    """``error`` as a JSON response with its status and headers."""
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def validation_error(exc: RequestValidationError | ValidationError) -> APIError:
    """The first problem pydantic found, as a 400 naming the parameter."""
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


async def send_error(send: Send, error: APIError) -> None:
    """Answer with ``error`` at the ASGI level (for middleware, before any route runs)."""
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    for name, value in (error.headers or {}).items():
        headers.append((name.lower().encode(), value.encode()))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception a handler can raise to an OpenAI-shaped answer."""

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc))

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
