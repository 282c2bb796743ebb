"""The names the served model answers to, ``/v1/models`` and ``/healthz``."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from mrag.model import JinaClipModel
from mrag.server.batching import MicroBatcher
from mrag.server.limits import APIError


class ServedModel:
    """The loaded model and the names it answers to; the first name is the one reported."""

    def __init__(self, model: JinaClipModel, names: list[str]) -> None:
        if not names:
            raise ValueError("the server needs at least one model name")
        self.model = model
        self.names = list(names)
        self.name = names[0]
        self.created = int(time.time())

    def check(self, name: str | None, *, required: bool) -> None:
        """404 unless ``name`` is one of the served names (None passes when not required)."""
        if name is None and not required:
            return
        if name not in self.names:
            raise APIError(
                404,
                f"The model `{name}` does not exist; this server serves {self.name!r}.",
                param="model",
                code="model_not_found",
            )

    def card(self, name: str) -> dict[str, Any]:
        """OpenAI's four fields, plus how this server computes (clients ignore extra fields)."""
        precision = self.model.dtype_choice
        return {
            "id": name,
            "object": "model",
            "created": self.created,
            "owned_by": "mrag",
            "dtype": precision.dtype,
            "dtype_reason": precision.reason,
            "device": str(self.model.device),
        }


def models_router(served: ServedModel, batcher: MicroBatcher) -> APIRouter:
    """``/healthz``, ``/v1/models`` and ``/v1/models/{name}``."""
    router = APIRouter()

    @router.get("/healthz", summary="Liveness and batching counters")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": served.name,
            "dimensions": served.model.embedding_dim,
            "queued_inputs": batcher.queued_inputs,
            **batcher.stats.as_dict(),
        }

    @router.get("/v1/models", summary="The names the served model answers to")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [served.card(name) for name in served.names]}

    @router.get("/v1/models/{name:path}", summary="One model")
    async def get_model(name: str) -> dict[str, Any]:
        served.check(name, required=True)
        return served.card(name)

    return router
