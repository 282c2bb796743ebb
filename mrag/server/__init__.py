"""``mrag serve``: an OpenAI-compatible embeddings and multimodal search server.

The application lives in :mod:`mrag.server.app` (it needs the ``serve`` extra: FastAPI and
uvicorn); :mod:`mrag.server.batching` gathers concurrent requests into model batches,
:mod:`mrag.server.limits` holds the request limits and :mod:`mrag.server.urls` the SSRF-guarded
image download.
"""

from mrag.server.limits import APIError, ServerLimits

__all__ = ["APIError", "ServerLimits"]
