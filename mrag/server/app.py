"""The FastAPI application, assembled from one router per area.

Endpoints:

- ``GET /``: the search page (see :mod:`mrag.server.page`);
- ``POST /v1/embeddings``: OpenAI's embeddings API, with images as ``{"image": ...}`` items;
- ``GET /v1/models`` and ``GET /v1/models/{id}``: the names the served model answers to;
- ``POST /v1/search``: mixed text and image retrieval over the mrag store, by text or image;
  ``GET /v1/images/{id}``: the stored picture of an image hit;
- ``POST /v1/documents``, ``GET /v1/documents``, ``DELETE /v1/documents/{source}``,
  ``GET /v1/jobs/{id}``: uploads ingested in the background, the stored sources, deletion;
- ``/mcp``: the MCP server (streamable HTTP), when the ``mcp`` package is installed;
- ``GET /healthz``: liveness plus batching counters (never behind the API key).

Every error is answered in OpenAI's shape (see :mod:`mrag.server.errors`); the API key and the
body size are checked first (see :mod:`mrag.server.middleware`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from mrag.model import JinaClipModel
from mrag.server.batching import MicroBatcher
from mrag.server.config import MODEL_FAMILY_NAME, ServerConfig, default_model_names
from mrag.server.documents import describe_store, documents_router
from mrag.server.embeddings import embeddings_router, truncate
from mrag.server.errors import error_response, install_error_handlers
from mrag.server.jobs import JobRunner
from mrag.server.middleware import OPEN_PATHS, GuardMiddleware
from mrag.server.models import ServedModel, models_router
from mrag.server.page import page_router
from mrag.server.search import search_router
from mrag.server.shared import SharedStore
from mrag.server.uploads import UploadFolder

__all__ = [
    "MODEL_FAMILY_NAME",
    "OPEN_PATHS",
    "ServerConfig",
    "create_app",
    "default_model_names",
    "error_response",
    "truncate",
]


def _uploads(
    config: ServerConfig, shared: SharedStore, model: JinaClipModel
) -> tuple[UploadFolder | None, JobRunner | None]:
    """The upload folder and job runner, when the store lives in a folder."""
    if config.store is None or not config.store.path:
        return None, None
    root = Path(config.store.path)
    folder = UploadFolder(root / "uploads")
    return folder, JobRunner(shared, model, root / "uploads" / ".jobs")


def _mcp(
    config: ServerConfig, shared: SharedStore, served: ServedModel, jobs: JobRunner | None
) -> tuple[Any, list[Any]]:
    """The MCP server and its ``/mcp`` route; none when the ``mcp`` package is missing."""
    try:
        from mrag.server.mcp_server import MCPBackend, build_mcp, http_routes
    except ModuleNotFoundError:
        return None, []
    backend = MCPBackend(shared, jobs, list(config.allow_ingest))
    server = build_mcp(backend, lambda: describe_store(shared, served))
    return server, http_routes(server, config.host)


def create_app(model: JinaClipModel, config: ServerConfig | None = None) -> FastAPI:
    """Build the application serving ``model``; the micro-batcher runs while the app is up."""
    config = config or ServerConfig()
    served = ServedModel(model, config.model_names)
    limits = config.limits
    batcher = MicroBatcher(
        model,
        max_batch_size=config.max_batch_size,
        max_wait=config.max_wait,
        max_queued_inputs=limits.max_queued_inputs,
        max_text_tokens=limits.max_text_tokens,
    )
    shared = SharedStore(config.store, model)
    folder, jobs = _uploads(config, shared, model)
    mcp, mcp_routes = _mcp(config, shared, served, jobs)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        if jobs is not None and folder is not None:
            folder.clean()
            jobs.start()
        try:
            async with contextlib.AsyncExitStack() as stack:
                if mcp is not None:
                    await stack.enter_async_context(mcp.session_manager.run())
                yield
        finally:
            if jobs is not None:
                jobs.close()
            batcher.close()
            shared.close()

    app = FastAPI(
        title="mrag",
        summary="OpenAI-compatible jina-clip-v1 embeddings, multimodal search and ingestion",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.config = config
    app.state.jobs = jobs
    install_error_handlers(app)
    app.include_router(models_router(served, batcher))
    app.include_router(embeddings_router(served, batcher, limits))
    app.include_router(search_router(served, batcher, shared, limits))
    app.include_router(documents_router(served, shared, folder, jobs, config.uploads))
    app.include_router(page_router())
    app.router.routes.extend(mcp_routes)
    app.add_middleware(
        GuardMiddleware,
        api_key=config.api_key,
        max_body_bytes=limits.max_body_bytes,
        streamed={"/v1/documents": config.uploads.max_body_bytes},
    )
    return app
