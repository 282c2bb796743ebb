"""mrag: turn a folder of documents into one searchable space of text passages and figures.

Public surface::

    from mrag import JinaClipModel, JinaClipEmbeddings
"""

from .embeddings import JinaClipEmbeddings
from .images import ImageError
from .model import CheckpointError, ConfigError, JinaClipModel
from .store import Store, StoreError, StoreSettings

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ImageError",
    "JinaClipEmbeddings",
    "JinaClipModel",
    "Store",
    "StoreError",
    "StoreSettings",
    "__version__",
]
