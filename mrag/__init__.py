"""mrag: turn a folder of documents into one searchable space of text passages and figures.

Public surface (``__all__``)::

    from mrag import JinaClipModel, JinaClipEmbeddings, Pipeline, ingest, ingest_on_ray
    from mrag import MultimodalRetriever, MragVectorStore, rag_prompt, build_messages
    from mrag import StoreError, WorkerError, ...  # the errors the calls above may raise

Names are imported on first use, so ``import mrag`` (and the CLI's start-up, and the parser worker
processes) do not pay for torch until a model is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it; imported on first use (see ``__getattr__``).
_EXPORTS = {
    "JinaClipModel": "mrag.model",
    "CheckpointError": "mrag.model",
    "ConfigError": "mrag.model",
    "JinaClipEmbeddings": "mrag.model.embeddings",
    "ImageError": "mrag.images",
    "ExtractionError": "mrag.extract.document",
    "WorkerError": "mrag.extract.worker",
    "Pipeline": "mrag.ingestion.pipeline",
    "PipelineError": "mrag.ingestion.pipeline",
    "ingest": "mrag.ingestion.run",
    "IngestReport": "mrag.ingestion.report",
    "ingest_on_ray": "mrag.ingestion.ray",
    "Store": "mrag.store",
    "StoreError": "mrag.store",
    "StoreInUseError": "mrag.store",
    "ModelMismatchError": "mrag.store",
    "StoreSettings": "mrag.store",
    "MultimodalRetriever": "mrag.retrieval.retriever",
    "MragVectorStore": "mrag.retrieval.vectorstore",
    "build_messages": "mrag.retrieval.messages",
    "rag_prompt": "mrag.retrieval.messages",
}

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ExtractionError",
    "ImageError",
    "IngestReport",
    "JinaClipEmbeddings",
    "JinaClipModel",
    "ModelMismatchError",
    "MragVectorStore",
    "MultimodalRetriever",
    "Pipeline",
    "PipelineError",
    "Store",
    "StoreError",
    "StoreInUseError",
    "StoreSettings",
    "WorkerError",
    "__version__",
    "build_messages",
    "ingest",
    "ingest_on_ray",
    "rag_prompt",
]

if TYPE_CHECKING:
    from mrag.extract.document import ExtractionError
    from mrag.extract.worker import WorkerError
    from mrag.images import ImageError
    from mrag.ingestion.pipeline import Pipeline, PipelineError
    from mrag.ingestion.ray import ingest_on_ray
    from mrag.ingestion.report import IngestReport
    from mrag.ingestion.run import ingest
    from mrag.model import CheckpointError, ConfigError, JinaClipModel
    from mrag.model.embeddings import JinaClipEmbeddings
    from mrag.retrieval.messages import build_messages, rag_prompt
    from mrag.retrieval.retriever import MultimodalRetriever
    from mrag.retrieval.vectorstore import MragVectorStore
    from mrag.store import ModelMismatchError, Store, StoreError, StoreInUseError, StoreSettings


def __getattr__(name: str) -> Any:
    """Import a public name on first use; later uses find it in the module's globals."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mrag' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
