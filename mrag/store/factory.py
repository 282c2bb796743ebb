"""Opening a store: the one place that knows which backend serves which settings.

- a folder gives :class:`~mrag.store.edge.EdgeStore` (Qdrant Edge, embedded);
- a URL, or any open ``QdrantClient``, gives :class:`~mrag.store.server.ServerStore`.

The interface (:mod:`mrag.store.interface`) imports no backend; this module hands it its
constructors (``Store.open``, ``Store.from_client``, ``Store.memory``). Backends are imported
when first used, so naming a store costs no Qdrant import.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mrag.store.filters import Filter, metadata_filter
from mrag.store.interface import Store
from mrag.store.settings import DEFAULT_COLLECTION, DEFAULT_QDRANT_PATH, StoreSettings


def open_store(settings: StoreSettings) -> Store:
    """Open the store described by ``settings``: a server for a URL, else the embedded one."""
    if settings.url:
        from mrag.store.server import ServerStore

        return ServerStore.connect(settings)
    from mrag.store.edge import EdgeStore

    return EdgeStore(Path(settings.path or DEFAULT_QDRANT_PATH), settings.collection)


def store_from_client(client: Any, collection: str = DEFAULT_COLLECTION) -> Store:
    """A store on a collection of an open ``QdrantClient`` (server, local mode, memory)."""
    from mrag.store.server import ServerStore

    return ServerStore(client, collection)


def memory_store(collection: str = DEFAULT_COLLECTION) -> Store:
    """A throwaway store in memory (qdrant-client's ``":memory:"``), for tests and demos."""
    from mrag.store.server import memory_client

    return store_from_client(memory_client(), collection)


def as_store(given: Any, collection: str = DEFAULT_COLLECTION) -> Store:
    """``given`` if it is a :class:`Store`, else a store on it as a ``QdrantClient``."""
    return given if isinstance(given, Store) else store_from_client(given, collection)


def as_filter(given: Any) -> Filter | None:
    """A :class:`Filter` from what callers pass: None, a Filter, ``{metadata key: value}``, or a
    ready ``qdrant_client.models.Filter`` (translated, so it works on every backend)."""
    if given is None or isinstance(given, Filter):
        return given
    if isinstance(given, Mapping):
        return metadata_filter(given)
    from mrag.store.server import filter_from_qdrant

    return filter_from_qdrant(given)


Store.open = staticmethod(open_store)
Store.from_client = staticmethod(store_from_client)
Store.memory = staticmethod(memory_store)
