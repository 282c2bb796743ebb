"""The store: one collection of text and image points, plus a ledger of finished sources.

One interface, :class:`Store`, and two backends, the way qdrant-client splits its own local and
remote clients:

- :class:`~mrag.store.edge.EdgeStore`, the embedded default: Qdrant Edge on a local folder;
- :class:`~mrag.store.server.ServerStore`: a Qdrant server or cluster through qdrant-client, or
  any open ``QdrantClient`` (local mode and ``":memory:"`` included).

Only these backends speak Qdrant's API; everything else in mrag uses :class:`Store`. Payloads
follow langchain-qdrant's layout (``page_content`` and ``metadata``), so a ``QdrantVectorStore``
opened on a server collection with ``vector_name="text"`` reads mrag's passages as documents.
See :mod:`mrag.store.base` for the layout and the rules that make re-runs safe.
"""

from __future__ import annotations

from mrag.store.base import (
    DEFAULT_COLLECTION,
    DEFAULT_QDRANT_PATH,
    INDEXED_FIELDS,
    LAYOUT_VERSION,
    POINT_NAMESPACE,
    Filter,
    Found,
    HasVector,
    Layout,
    Leg,
    Match,
    ModelMismatchError,
    ModelRecord,
    OldLayoutError,
    Point,
    Range,
    SourceRecord,
    Store,
    StoreError,
    StoreInUseError,
    StoreSettings,
    as_filter,
    metadata_filter,
    point_id,
)

__all__ = [
    "DEFAULT_COLLECTION",
    "DEFAULT_QDRANT_PATH",
    "INDEXED_FIELDS",
    "LAYOUT_VERSION",
    "POINT_NAMESPACE",
    "Filter",
    "Found",
    "HasVector",
    "Layout",
    "Leg",
    "Match",
    "ModelMismatchError",
    "ModelRecord",
    "OldLayoutError",
    "Point",
    "Range",
    "SourceRecord",
    "Store",
    "StoreError",
    "StoreInUseError",
    "StoreSettings",
    "as_filter",
    "metadata_filter",
    "point_id",
]
