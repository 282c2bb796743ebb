"""What every store backend offers, in mrag's own types: points, filters, searches, the ledger.

A backend implements a handful of primitives (create, upsert, delete, scroll, retrieve, count,
search, and a key-value ledger); the rules that make ingestion safe to re-run live here, once,
on top of them:

- point ids are uuid5 of (source, modality, position), so writing a source again overwrites its
  points instead of adding copies;
- a source counts as done only when its ledger entry is written, after all of its points are.
  A run killed half-way leaves no entry, so the next run redoes that source and removes whatever
  the killed run had left behind.

This module imports no backend: :mod:`mrag.store.factory` opens one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any, ClassVar

from mrag.model.identity import ModelRecord
from mrag.store.errors import ModelMismatchError, OldLayoutError, StoreError
from mrag.store.filters import Filter, HasVector, Match, source_condition
from mrag.store.records import LAYOUT_ID, LAYOUT_KEY, LAYOUT_VERSION, Layout, SourceRecord
from mrag.store.settings import StoreSettings
from mrag.store.types import MODALITY_VECTORS, UPSERT_BATCH, Found, Leg, Point, point_id


class Store(ABC):
    """mrag's view of one collection: points in, points out, sources tracked.

    Open one with :meth:`open` (settings: a folder gives the embedded Qdrant Edge store, a URL a
    Qdrant server) or :meth:`from_client` (any ``QdrantClient``, including its local mode).
    """

    #: Where the store lives, for messages: a folder or a URL.
    location: str
    collection: str

    def __init__(self, collection: str, location: str) -> None:
        self.collection = collection
        self.location = location
        self._layout: Layout | None = None

    # -- opening ---------------------------------------------------------------------------------

    #: Constructors, given to the interface by :mod:`mrag.store.factory` (which knows the
    #: backends; the interface does not): ``Store.open(settings)``, ``Store.from_client(client,
    #: collection)`` and ``Store.memory(collection)``.
    open: ClassVar[Callable[[StoreSettings], Store]]
    from_client: ClassVar[Callable[..., Store]]
    memory: ClassVar[Callable[..., Store]]

    def close(self) -> None:  # noqa: B027 - a backend without resources has nothing to close
        """Release the store (files, locks, connections)."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        """The store for messages: its collection and where it lives."""
        return f"{self.collection} @ {self.location}"

    # -- layout ----------------------------------------------------------------------------------

    @abstractmethod
    def exists(self) -> bool:
        """Whether the collection has been created."""

    @abstractmethod
    def _create(self, dimension: int) -> None:
        """Create the points collection (layout 2) and the ledger."""

    def layout(self) -> Layout | None:
        """The layout record, or None for a store not created yet."""
        if self._layout is None and self.exists():
            payload = self._ledger_get(LAYOUT_ID)
            if payload is None or LAYOUT_KEY not in payload:
                raise OldLayoutError(
                    f"{self.describe()}: the collection has no layout record: an `mrag migrate` "
                    "or `mrag export` into it did not finish (run it again to resume), or it "
                    "was not written by mrag (ingest into another --collection)"
                )
            self._layout = Layout.from_payload(payload)
        return self._layout

    @property
    def dimension(self) -> int | None:
        """The vector size of the store, or None for a store not created yet."""
        layout = self.layout()
        return layout.model.dimension if layout else None

    @property
    def model(self) -> ModelRecord | None:
        """The model the store's vectors were made with, or None for a store not created yet."""
        layout = self.layout()
        return layout.model if layout else None

    def check_model(self, model: ModelRecord | int) -> None:
        """Raise :class:`ModelMismatchError` if the store was built with another model."""
        if isinstance(model, int):
            model = ModelRecord(None, None, model)
        stored = self.model
        if stored is not None and stored.conflicts_with(model):
            used = model.describe()
            if used == stored.describe():  # same name and size, other weights
                used += f" with other weights (fingerprint {model.fingerprint})"
            raise ModelMismatchError(
                f"{self.describe()} was built with {stored.describe()}, but this run uses "
                f"{used}; use the same model (--model/MRAG_MODEL), or another --collection "
                "for this one"
            )

    def ensure_collection(self, model: ModelRecord | int | None = None) -> None:
        """Create the collection for ``model`` if missing; check the model if not."""
        if isinstance(model, int):
            model = ModelRecord(None, None, model)
        if self.exists():
            if model is not None:
                self.check_model(model)
            return
        if model is None:
            raise StoreError(f"collection {self.collection!r} does not exist")
        self._create(model.dimension)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        layout = Layout(LAYOUT_VERSION, model, created)
        self._ledger_put(LAYOUT_ID, layout.to_payload())
        self._layout = layout

    # -- points ----------------------------------------------------------------------------------

    @abstractmethod
    def _upsert(self, points: Sequence[Point]) -> None:
        """Write one batch of points (BM25 vectors computed by the backend's converter)."""

    def upsert(self, points: Sequence[Point]) -> None:
        """Write points (overwriting any with the same id), in batches."""
        for start in range(0, len(points), UPSERT_BATCH):
            self._upsert(points[start : start + UPSERT_BATCH])

    @abstractmethod
    def delete_points(self, ids: Sequence[str]) -> None:
        """Delete points by id (missing ids are ignored)."""

    @abstractmethod
    def scroll(
        self,
        filter: Filter | None = None,
        *,
        limit: int = 1024,
        offset: Any = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> tuple[list[Found], Any]:
        """One page of points in id order and the offset of the next (None at the end)."""

    def iter_points(
        self, filter: Filter | None = None, *, with_payload: bool = True, with_vectors: bool = False
    ) -> Iterator[Found]:
        """Every point matching ``filter``, page by page (see :meth:`scroll`)."""
        offset = None
        while True:
            page, offset = self.scroll(
                filter, offset=offset, with_payload=with_payload, with_vectors=with_vectors
            )
            yield from page
            if offset is None:
                return

    @abstractmethod
    def retrieve(
        self, ids: Sequence[str], *, with_payload: bool = True, with_vectors: bool = False
    ) -> list[Found]:
        """The points of ``ids`` that exist (in no particular order)."""

    @abstractmethod
    def count_points(self, filter: Filter | None = None) -> int:
        """How many points match ``filter`` (exactly)."""

    def count(self, modality: str | None = None) -> int:
        """Points in the store, or of one modality (a point is text or image by its vector)."""
        if not self.exists():
            return 0
        if modality is None:
            return self.count_points()
        return self.count_points(Filter(must=(HasVector(MODALITY_VECTORS[modality]),)))

    def count_named(self, source: str) -> int:
        """How many points belong to the source(s) a user names (see :func:`source_condition`)."""
        if not self.exists():
            return 0
        return self.count_points(Filter(must=(source_condition(source),)))

    def point_ids_of(self, source: str) -> set[str]:
        """Ids of every point that belongs to ``source``."""
        condition = Filter(must=(Match("metadata.source", source),))
        return {found.id for found in self.iter_points(condition, with_payload=False)}

    @abstractmethod
    def search(self, legs: Sequence[Leg]) -> list[list[Found]]:
        """Run ranked searches together (one round trip where the backend allows); each list is
        best first, with payloads."""

    def optimize(self) -> bool:
        """Build search indexes now (HNSW); True if anything was done (servers index by
        themselves)."""
        return False

    def needs_optimize(self) -> bool:
        """Whether :meth:`optimize` would speed searches up (a server indexes on its own)."""
        return False

    # -- the ledger ------------------------------------------------------------------------------

    @abstractmethod
    def _ledger_get(self, key: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def _ledger_put(self, key: str, payload: dict[str, Any]) -> None: ...

    @abstractmethod
    def _ledger_delete(self, key: str) -> None: ...

    @abstractmethod
    def _ledger_items(self) -> Iterator[dict[str, Any]]: ...

    def source_record(self, source: str) -> SourceRecord | None:
        """The ledger entry of ``source``, or None if it never finished ingesting."""
        payload = self._ledger_get(point_id(source, "source", 0)) if self.exists() else None
        return SourceRecord.from_payload(payload) if payload and "source" in payload else None

    def sources(self) -> list[SourceRecord]:
        """Every finished source, sorted by name."""
        if not self.exists():
            return []
        found = [SourceRecord.from_payload(p) for p in self._ledger_items() if "source" in p]
        return sorted(found, key=lambda record: record.source)

    def put_source_record(self, record: SourceRecord) -> None:
        """Mark ``record.source`` done (after all its points are written)."""
        self._ledger_put(point_id(record.source, "source", 0), asdict(record))

    def replace_source(self, record: SourceRecord, points: Sequence[Point]) -> None:
        """Make ``points`` the whole content of ``record.source``, then mark the source done.

        Order matters for crash safety: forget the source, write the new points, remove points
        of the source that the new version no longer has, and only then record it as done.
        """
        self.forget_source(record.source)
        self.upsert(points)
        keep = {point.id for point in points}
        self.delete_points(sorted(self.point_ids_of(record.source) - keep))
        self.put_source_record(record)

    def forget_source(self, source: str) -> None:
        """Drop the ledger entry of ``source`` (its points stay until replaced or deleted)."""
        if self.exists():
            self._ledger_delete(point_id(source, "source", 0))

    def delete_all(self) -> None:
        """Remove every point and every source (the layout record stays)."""
        for record in self.sources():
            self.forget_source(record.source)
        while True:
            page, _ = self.scroll(limit=1024, with_payload=False)
            if not page:
                return
            self.delete_points([found.id for found in page])

    def delete_source(self, source: str) -> int:
        """Remove ``source`` and all its points; returns how many points were removed."""
        if not self.exists():
            return 0
        self.forget_source(source)
        ids = sorted(self.point_ids_of(source))
        self.delete_points(ids)
        return len(ids)
