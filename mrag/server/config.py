"""What the application is told at start: the model's names, limits, the API key, the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mrag.server.batching import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_WAIT
from mrag.server.limits import ServerLimits
from mrag.server.uploads import UploadLimits
from mrag.store import StoreSettings

#: The name every jina-clip-v1 server answers to, whatever folder its weights came from.
MODEL_FAMILY_NAME = "jina-clip-v1"


def default_model_names(name_or_path: str, extra: Sequence[str] = ()) -> list[str]:
    """Names a served model answers to: ``extra`` first, then ``jina-clip-v1``, then the Hub id,
    or for a local folder its base name (not the full path, which would show clients the
    server's file system). The first name is the one responses report."""
    path = Path(name_or_path)
    own = path.resolve().name if path.is_dir() else str(name_or_path)
    names = [*extra, MODEL_FAMILY_NAME, own]
    return [name for name in dict.fromkeys(names) if name]


@dataclass
class ServerConfig:
    """Everything the application needs besides the model.

    Attributes:
        model_names: accepted ``model`` values; the first one is reported in responses.
        limits: per-request limits (see :class:`~mrag.server.limits.ServerLimits`).
        api_key: when set, every endpoint but ``/healthz`` needs ``Authorization: Bearer <key>``.
        max_batch_size, max_wait: the micro-batcher's bounds (inputs, seconds).
        store: where ``/v1/search`` looks and uploads go; None disables both (503).
        uploads: limits on ``POST /v1/documents``.
        allow_ingest: folders the MCP ``ingest`` tool may read; empty turns the tool off.
        host: the address served on (a loopback one turns on DNS-rebinding checks at /mcp).
    """

    model_names: list[str] = field(default_factory=lambda: [MODEL_FAMILY_NAME])
    limits: ServerLimits = field(default_factory=ServerLimits)
    api_key: str | None = None
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_wait: float = DEFAULT_MAX_WAIT
    store: StoreSettings | None = None
    uploads: UploadLimits = field(default_factory=lambda: UploadLimits())
    allow_ingest: list[Path] = field(default_factory=list)
    host: str = "127.0.0.1"
