"""The store: one collection of text and image points, plus a ledger of finished sources.

One interface, :class:`Store` (:mod:`mrag.store.interface`), and two backends, the way
qdrant-client splits its own local and remote clients:

- :class:`~mrag.store.edge.EdgeStore`, the embedded default: Qdrant Edge on a local folder;
- :class:`~mrag.store.server.ServerStore`: a Qdrant server or cluster through qdrant-client, or
  any open ``QdrantClient`` (local mode and ``":memory:"`` included).

Only these backends speak Qdrant's API; everything else in mrag uses :class:`Store`, opened by
:mod:`mrag.store.factory` (``Store.open``, ``Store.from_client``, ``Store.memory``). Payloads
follow langchain-qdrant's layout (``page_content`` and ``metadata``), so a ``QdrantVectorStore``
opened on a server collection with ``vector_name="text"`` reads mrag's passages as documents.

The modules, one concept each: :mod:`~mrag.store.errors`, :mod:`~mrag.store.settings` (where a
store lives), :mod:`~mrag.store.types` (ids, points, searches, hits), :mod:`~mrag.store.filters`,
:mod:`~mrag.store.source_names` (what a source is called), :mod:`~mrag.store.records` (the
layout record and the ledger), :mod:`~mrag.store.interface`, :mod:`~mrag.store.factory`,
:mod:`~mrag.store.payload` (point payloads), :mod:`~mrag.store.vectors` and
:mod:`~mrag.store.bm25` (what backends write), the backends, and :mod:`~mrag.store.transfer`
(export and migrate).
"""

from __future__ import annotations

from mrag.model.identity import ModelRecord
from mrag.store.errors import ModelMismatchError, OldLayoutError, StoreError, StoreInUseError
from mrag.store.factory import as_filter, as_store, memory_store, open_store, store_from_client
from mrag.store.filters import Filter, HasVector, Match, Range, metadata_filter
from mrag.store.interface import Store
from mrag.store.records import LAYOUT_VERSION, Layout, SourceRecord
from mrag.store.settings import DEFAULT_COLLECTION, DEFAULT_QDRANT_PATH, StoreSettings
from mrag.store.types import INDEXED_FIELDS, POINT_NAMESPACE, Found, Leg, Point, point_id

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
    "as_store",
    "memory_store",
    "metadata_filter",
    "open_store",
    "point_id",
    "store_from_client",
]
