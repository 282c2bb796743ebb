"""mrag: turn a folder of documents into one searchable space of text passages and figures.

Public surface::

    from mrag import JinaClipModel, JinaClipEmbeddings, MultimodalRetriever, ingest

Names are imported on first use, so ``import mrag`` (and the CLI's start-up, and the parser worker
processes) do not pay for torch until a model is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "JinaClipModel": "mrag.model",
    "CheckpointError": "mrag.model",
    "ConfigError": "mrag.model",
    "JinaClipEmbeddings": "mrag.embeddings",
    "ImageError": "mrag.images",
    "Store": "mrag.store",
    "StoreError": "mrag.store",
    "StoreSettings": "mrag.store",
    "Pipeline": "mrag.pipeline",
    "PipelineError": "mrag.pipeline",
    "ingest": "mrag.ingest",
    "IngestReport": "mrag.ingest",
    "ingest_on_ray": "mrag.distributed",
    "MultimodalRetriever": "mrag.retriever",
}

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ImageError",
    "IngestReport",
    "JinaClipEmbeddings",
    "JinaClipModel",
    "MultimodalRetriever",
    "Pipeline",
    "PipelineError",
    "Store",
    "StoreError",
    "StoreSettings",
    "__version__",
    "ingest",
    "ingest_on_ray",
]

if TYPE_CHECKING:
    from .distributed import ingest_on_ray
    from .embeddings import JinaClipEmbeddings
    from .images import ImageError
    from .ingest import IngestReport, ingest
    from .model import CheckpointError, ConfigError, JinaClipModel
    from .pipeline import Pipeline, PipelineError
    from .retriever import MultimodalRetriever
    from .store import Store, StoreError, StoreSettings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mrag' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
