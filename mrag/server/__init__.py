"""``mrag serve``: an OpenAI-compatible embeddings and multimodal search server.

The application is assembled in :mod:`mrag.server.app` (it needs the ``serve`` extra: FastAPI,
uvicorn, python-multipart, mcp) from one router per area: :mod:`~mrag.server.models`,
:mod:`~mrag.server.embeddings`, :mod:`~mrag.server.search`, :mod:`~mrag.server.documents` (uploads
run as :mod:`~mrag.server.jobs` on the one :mod:`~mrag.server.shared` store), the page
(:mod:`~mrag.server.page`) and the MCP tools (:mod:`~mrag.server.mcp_server`).
:mod:`~mrag.server.middleware` checks the API key and body sizes, :mod:`~mrag.server.errors`
shapes every error as OpenAI does, :mod:`~mrag.server.batching` gathers concurrent requests into
model batches, :mod:`~mrag.server.limits` and :mod:`~mrag.server.uploads` hold the limits and
image URLs are fetched through the one SSRF-guarded fetcher, :mod:`mrag.images.urls`.
"""

from mrag.server.limits import APIError, ServerLimits

__all__ = ["APIError", "ServerLimits"]
