"""The search page at ``/``: static HTML, CSS and JavaScript shipped in the package.

No CDN and no build step: the files in ``mrag/server/static/`` are served as they are. The page
itself and its assets need no API key (they hold no data); every call they make to ``/v1/...``
sends the key the user typed, kept in the tab's session storage.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from mrag.server.limits import APIError

STATIC = Path(__file__).parent / "static"
_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
}
#: The page's own files: nothing else in the folder (or outside it) is ever served.
_ASSETS = frozenset({"app.css", "app.js"})
#: The page runs only its own scripts and talks only to this server.
_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'"
)


def page_router() -> APIRouter:
    """``GET /`` and ``GET /static/{name}``."""
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def index() -> Response:
        return _file("index.html")

    @router.get("/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in _ASSETS:
            raise APIError(404, f"Invalid URL (GET /static/{name})")
        return _file(name)

    return router


def _file(name: str) -> Response:
    path = STATIC / name
    return FileResponse(
        path,
        media_type=_TYPES[path.suffix],
        headers={"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff"},
    )
