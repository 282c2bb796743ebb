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
    "JinaClipEmbeddings": "mrag.model.embeddings",
    "ImageError": "mrag.images",
    "Store": "mrag.store",
    "StoreError": "mrag.store",
    "StoreSettings": "mrag.store",
    "Pipeline": "mrag.ingestion.pipeline",
    "PipelineError": "mrag.ingestion.pipeline",
    "ingest": "mrag.ingestion.run",
    "IngestReport": "mrag.ingestion.run",
    "ingest_on_ray": "mrag.ingestion.ray",
    "MultimodalRetriever": "mrag.retrieval.retriever",
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
    from mrag.images import ImageError
    from mrag.ingestion.pipeline import Pipeline, PipelineError
    from mrag.ingestion.ray import ingest_on_ray
    from mrag.ingestion.run import IngestReport, ingest
    from mrag.model import CheckpointError, ConfigError, JinaClipModel
    from mrag.model.embeddings import JinaClipEmbeddings
    from mrag.retrieval.retriever import MultimodalRetriever
    from mrag.store import Store, StoreError, StoreSettings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mrag' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
