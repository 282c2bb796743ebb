"""The server's one open store, shared by searches, uploads and the MCP tools.

The embedded store belongs to one process at a time, so the server opens it once and lends it to
everything that needs it: searches go through the retriever, ingestion jobs through a
:class:`LockedStore` view. Every call into the store holds the same lock (embedded Qdrant is not
made for concurrent callers); embedding, the slow part, happens outside it, so searches keep
answering while a job ingests.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from mrag.model import JinaClipModel
from mrag.server.limits import APIError
from mrag.store import Store, StoreError, StoreSettings


class LockedStore:
    """A view of a store whose every attribute access and call holds ``lock``.

    Handed to :func:`mrag.ingest` so that a background job's writes take turns with searches.
    Closing it does nothing: the server owns the store.
    """

    def __init__(self, store: Store, lock: threading.RLock) -> None:
        self._store = store
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        with self._lock:
            value = getattr(self._store, name)
        if not callable(value):
            return value

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return value(*args, **kwargs)

        return locked

    def close(self) -> None:
        """The server closes the store at shutdown, not the borrower."""

    def __enter__(self) -> LockedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SharedStore:
    """The retriever behind search and the store behind it, opened on first use."""

    def __init__(self, settings: StoreSettings | None, model: JinaClipModel) -> None:
        self.settings = settings
        self.model = model
        self._retriever: Any = None
        self._open_lock = threading.Lock()
        #: Held by every call into the store (searches, writes, listings).
        self.lock = threading.RLock()

    def retriever(self) -> Any:
        """The shared retriever; 503 when no store is configured or it cannot be opened."""
        if self.settings is None:
            raise APIError(
                503,
                "search is not configured on this server",
                type="server_error",
                code="search_unavailable",
            )
        with self._open_lock:
            if self._retriever is None:
                try:
                    self._retriever = self._open(self.settings)
                except StoreError as exc:
                    raise APIError(
                        503,
                        f"the store cannot be opened: {exc}",
                        type="server_error",
                        code="store_unavailable",
                    ) from None
            return self._retriever

    def _open(self, settings: StoreSettings) -> Any:
        # Imported here: the server starts, and embeds, without the retrieval stack.
        from mrag.model.embeddings import JinaClipEmbeddings
        from mrag.retrieval.retriever import MultimodalRetriever

        retriever = MultimodalRetriever.from_settings(
            settings, JinaClipEmbeddings(model=self.model)
        )
        if retriever.store.exists():
            try:
                retriever.check_model()
            except StoreError:
                retriever.store.close()
                raise
        return retriever

    def store(self) -> LockedStore:
        """The open store, every call of it under :attr:`lock`."""
        return LockedStore(self.retriever().store, self.lock)

    def close(self) -> None:
        """Close the store (at shutdown)."""
        with self._open_lock:
            if self._retriever is not None:
                with contextlib.suppress(Exception):
                    self._retriever.store.close()
                self._retriever = None
