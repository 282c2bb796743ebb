"""The gate in front of every route: the API key, then the size of the body.

Both are checked before anything reads or parses the request, so neither a stranger nor an
oversized body costs the server more than the limit.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mrag.server.errors import send_error
from mrag.server.limits import APIError, invalid, too_large

#: Paths reachable without the API key: probes, and the page that asks for the key.
OPEN_PATHS = frozenset({"/healthz", "/"})
#: Path prefixes reachable without the API key (the page's own scripts and styles).
OPEN_PREFIXES = ("/static/",)


class _BodyTooLarge(Exception):
    """A streamed body passed its limit; raised into the route that reads it."""


def is_open(path: str) -> bool:
    """Whether ``path`` is served without the API key."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class GuardMiddleware:
    """Checks the API key and the body size before anything reads or parses the request.

    The key is compared in constant time. A body is read here, at most ``max_body_bytes`` of it,
    and replayed to the application: a request that declares a larger ``Content-Length`` is
    refused unread, and a chunked one is cut off as soon as it passes the limit, so an oversized
    body costs the server no more than the limit in memory. Paths in ``streamed`` (uploads) have
    their own, larger limit and are passed through as they arrive, never held in memory here.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        max_body_bytes: int,
        streamed: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self._key = hashlib.sha256(api_key.encode("utf-8")).digest() if api_key else None
        self.max_body_bytes = max_body_bytes
        self.streamed = dict(streamed or {})

    def _authorised(self, headers: Headers) -> bool:
        assert self._key is not None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        # compare_digest takes the same time wherever the inputs differ; comparing digests
        # keeps the key's length out of the timing as well.
        supplied = hashlib.sha256(token.strip().encode("utf-8")).digest()
        return hmac.compare_digest(supplied, self._key) and scheme.lower() == "bearer"

    def _refusal(self, scope: Scope, headers: Headers, limit: int) -> APIError | None:
        if self._key is not None and not is_open(scope["path"]) and not self._authorised(headers):
            message = (
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
                if "authorization" not in headers
                else "Incorrect API key provided."
            )
            return APIError(
                401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
            )
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                return invalid("malformed Content-Length header")
            if int(length) > limit:
                return self._too_large(limit)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        streamed = self.streamed.get(scope["path"]) if scope["method"] == "POST" else None
        limit = streamed if streamed is not None else self.max_body_bytes
        refusal = self._refusal(scope, headers, limit)
        if refusal is not None:
            await send_error(send, refusal)
            return
        if streamed is not None:
            await self._pass_through(scope, receive, send, limit)
            return
        body = await self._read(receive, limit)
        if body is None:
            await send_error(send, self._too_large(limit))
            return
        if body is _DISCONNECTED:
            return
        assert isinstance(body, bytes)
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive, limit: int) -> bytes | object | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return _DISCONNECTED
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _pass_through(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        total = 0
        started = False

        async def counted() -> Message:
            nonlocal total
            message = await receive()
            total += len(message.get("body", b""))
            if total > limit:
                raise _BodyTooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _BodyTooLarge:
            if not started:
                await send_error(send, self._too_large(limit))

    def _too_large(self, limit: int) -> APIError:
        return too_large(
            f"the request body is over the {limit:,} byte limit", code="request_too_large"
        )


#: What :meth:`GuardMiddleware._read` returns when the client went away mid-body.
_DISCONNECTED = object()


def _replay(body: bytes, receive: Receive) -> Receive:
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the disconnect, as usual

    return replay
