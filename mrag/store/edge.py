"""The embedded default: Qdrant Edge, the Qdrant engine in this process, on a local folder.

A store is two shards under ``<path>/edge/<collection>/``: ``points`` (layout 2: named vectors,
BM25, payload indexes) and ``sources`` (the ledger and the layout record). Each shard holds a
write-ahead log, so a write that returned survives ``kill -9``; a second process opening the same
shard is refused, which :class:`~mrag.store.StoreInUseError` reports.

Search is exact until :meth:`EdgeStore.optimize` builds HNSW graphs; that is a blocking job (a
couple of minutes per 100k points on two cores), so ingestion runs it once at the end of a run
when the store has grown past :data:`OPTIMIZE_THRESHOLD` points, never per file.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as edge

from mrag.store import bm25, vectors
from mrag.store.errors import OldLayoutError, StoreError, StoreInUseError
from mrag.store.filters import Filter, HasVector, Match, Range, lower_filter
from mrag.store.interface import Store
from mrag.store.types import (
    BM25_VECTOR,
    IMAGE_VECTOR,
    INDEXED_FIELDS,
    TEXT_VECTOR,
    Found,
    Leg,
    Point,
    SparseVector,
)
from mrag.store.vectors import named_vectors, search_ef

#: Segments smaller than this (kilobytes of vectors) are searched exactly (Qdrant's default).
_FULL_SCAN_KB = 10_000
#: Above this many points exact search slows past a few milliseconds: build HNSW graphs.
OPTIMIZE_THRESHOLD = 20_000
#: Ledger entries carry no vectors, but a shard must declare one; an unused sparse one is free.
_LEDGER_CONFIG = edge.EdgeConfig(sparse_vectors={"unused": edge.EdgeSparseVectorParams()})
#: Filters pick few points (a source, a page): the planner serves them from the payload index
#: and scores exactly, so no per-value HNSW links are built (they would multiply optimise time).
_SCHEMAS = {
    "keyword": edge.KeywordIndexParams(enable_hnsw=False),
    "integer": edge.IntegerIndexParams(lookup=True, range=True, enable_hnsw=False),
}


def _open_error(path: Path, exc: Exception) -> StoreError:
    text = str(exc)
    if "WouldBlock" in text or "lock" in text.lower():
        return StoreInUseError(
            f"{path}: the embedded store is in use by another process; wait for it to finish, "
            "or run a Qdrant server and use --qdrant-url for concurrent writers"
        )
    return StoreError(f"{path}: cannot open the embedded store ({text})")


def _legacy_collection(root: Path, collection: str) -> bool:
    """Whether ``root`` holds ``collection`` in qdrant-client's local-mode format (layout 1)."""
    meta = root / "meta.json"
    if not meta.is_file():
        return False
    try:
        collections = json.loads(meta.read_text(encoding="utf-8")).get("collections") or {}
    except (OSError, ValueError):
        return False
    return collection in collections


def _condition(condition: Match | Range | HasVector) -> Any:
    if isinstance(condition, Match):
        value = condition.value
        if isinstance(value, (list, tuple, set, frozenset)):
            return edge.FieldCondition(condition.key, match=edge.MatchAny(list(value)))
        return edge.FieldCondition(condition.key, match=edge.MatchValue(value))
    if isinstance(condition, Range):
        bounds = {
            "gte": condition.gte,
            "lte": condition.lte,
            "gt": condition.gt,
            "lt": condition.lt,
        }
        return edge.FieldCondition(condition.key, range=edge.RangeFloat(**bounds))
    if isinstance(condition, HasVector):
        return edge.HasVectorCondition(condition.name)
    raise TypeError(f"unsupported filter condition {condition!r}")


def to_filter(given: Filter | None) -> edge.Filter | None:
    """The Edge filter of an mrag :class:`~mrag.store.Filter`."""
    return lower_filter(given, _condition, edge.Filter)


def _vector(vector: np.ndarray | list[float] | SparseVector) -> Any:
    if isinstance(vector, SparseVector):
        return edge.SparseVector(vector.indices, vector.values)
    return vector  # a NumPy array goes through the binding without a list of floats


def edge_point(point: Point) -> edge.Point:
    """The Edge point of ``point`` (see :func:`~mrag.store.named_vectors`)."""
    vectors = {name: _vector(v) for name, v in named_vectors(point).items()}
    return edge.Point(point.id, vectors, point.payload)


class EdgeStore(Store):
    """A store in a local folder, searched by the embedded Qdrant engine.

    ``migrating`` opens a folder that still holds a layout-1 collection of the same name, to
    re-index it (see :mod:`mrag.store.transfer`).
    """

    def __init__(self, root: Path, collection: str, *, migrating: bool = False) -> None:
        super().__init__(collection, str(root))
        self.root = root
        self.folder = root / "edge" / collection
        self._points: edge.EdgeShard | None = None
        self._ledger: edge.EdgeShard | None = None
        # Updates to a shard are applied one at a time; searches run concurrently.
        self._write_lock = threading.Lock()
        if (self.folder / "points").is_dir():
            self._load()
        elif not migrating and _legacy_collection(root, collection):
            raise OldLayoutError(
                f"{root}: collection {collection!r} is in the old layout (qdrant-client local "
                f"mode, one unnamed vector); run `mrag migrate --qdrant-path {root}` to re-index "
                "it without re-embedding, or delete the folder and ingest again"
            )

    def _load(self) -> None:
        try:
            self._ledger = edge.EdgeShard.load(str(self.folder / "sources"))
            self._points = edge.EdgeShard.load(str(self.folder / "points"))
        except Exception as exc:
            self.close()
            raise _open_error(self.folder, exc) from None

    def close(self) -> None:
        for shard in (self._points, self._ledger):
            if shard is not None:
                try:
                    shard.flush()
                finally:
                    shard.close()
        self._points = self._ledger = None

    # -- layout ----------------------------------------------------------------------------------

    def exists(self) -> bool:
        return self._points is not None

    def _create(self, dimension: int) -> None:
        graph = edge.HnswIndexConfig(
            m=vectors.HNSW_M,
            ef_construct=vectors.HNSW_EF_CONSTRUCT,
            full_scan_threshold=_FULL_SCAN_KB,
        )
        dense = edge.EdgeVectorParams(
            size=dimension, distance=edge.Distance.Cosine, hnsw_config=graph
        )
        config = edge.EdgeConfig(
            vectors={TEXT_VECTOR: dense, IMAGE_VECTOR: dense},
            sparse_vectors={BM25_VECTOR: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)},
        )
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # The ledger first: a folder with points but no ledger would look half-created.
            # A run killed right after creating it left it behind; it holds nothing yet.
            ledger = self.folder / "sources"
            if ledger.is_dir():
                self._ledger = edge.EdgeShard.load(str(ledger))
            else:
                self._ledger = edge.EdgeShard.create(str(ledger), _LEDGER_CONFIG)
            self._points = edge.EdgeShard.create(str(self.folder / "points"), config)
        except Exception as exc:
            self.close()
            raise _open_error(self.folder, exc) from None
        for key, schema in INDEXED_FIELDS.items():
            self._points.update(edge.UpdateOperation.create_field_index(key, _SCHEMAS[schema]))

    def _shard(self) -> edge.EdgeShard:
        if self._points is None:
            raise StoreError(f"collection {self.collection!r} does not exist")
        return self._points

    # -- points ----------------------------------------------------------------------------------

    def _upsert(self, points: Sequence[Point]) -> None:
        if not points:
            return
        converted = [edge_point(point) for point in points]
        with self._write_lock:
            self._shard().update(edge.UpdateOperation.upsert_points(converted))

    def delete_points(self, ids: Sequence[str]) -> None:
        if ids and self._points is not None:
            with self._write_lock:
                self._points.update(edge.UpdateOperation.delete_points(list(ids)))

    def scroll(
        self,
        filter: Filter | None = None,
        *,
        limit: int = 1024,
        offset: Any = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> tuple[list[Found], Any]:
        records, next_offset = self._shard().scroll(
            edge.ScrollRequest(
                offset=offset,
                limit=limit,
                filter=to_filter(filter),
                with_payload=with_payload,
                with_vector=with_vectors,
            )
        )
        return [Found.from_record(record) for record in records], next_offset

    def retrieve(
        self, ids: Sequence[str], *, with_payload: bool = True, with_vectors: bool = False
    ) -> list[Found]:
        if not ids:
            return []
        records = self._shard().retrieve(list(ids), with_payload, with_vectors)
        return [Found.from_record(record) for record in records]

    def count_points(self, filter: Filter | None = None) -> int:
        return self._shard().count(edge.CountRequest(exact=True, filter=to_filter(filter)))

    def _request(self, leg: Leg, points: int) -> edge.QueryRequest:
        query = leg.query
        vector = _vector(bm25.query_vector(query) if isinstance(query, str) else list(query))
        return edge.QueryRequest(
            limit=leg.limit,
            query=edge.Query.Nearest(vector, using=leg.using),
            filter=to_filter(leg.filter),
            score_threshold=leg.score_threshold,
            with_payload=True,
            with_vector=list(leg.with_vectors) or False,
            params=None
            if leg.using == BM25_VECTOR
            else edge.SearchParams(hnsw_ef=search_ef(leg, points)),
        )

    def search(self, legs: Sequence[Leg]) -> list[list[Found]]:
        if not legs:
            return []
        points = self._shard().info().points_count  # a few microseconds: read per search
        batch = edge.QueryBatchRequest([self._request(leg, points) for leg in legs])
        return [
            [Found.from_record(point) for point in hits]
            for hits in self._shard().query_batch(batch)
        ]

    def optimize(self) -> bool:
        with self._write_lock:
            return bool(self._shard().optimize())

    def needs_optimize(self) -> bool:
        """True when the store is past :data:`OPTIMIZE_THRESHOLD` points and holds vectors no
        HNSW graph covers yet (searched exactly, so slower than they need to be)."""
        if self._points is None:
            return False
        info = self._points.info()
        return info.points_count > OPTIMIZE_THRESHOLD and info.indexed_vectors_count < (
            info.points_count
        )

    # -- the ledger ------------------------------------------------------------------------------

    def _ledger_shard(self) -> edge.EdgeShard:
        if self._ledger is None:
            raise StoreError(f"collection {self.collection!r} does not exist")
        return self._ledger

    def _ledger_get(self, key: str) -> dict[str, Any] | None:
        records = self._ledger_shard().retrieve([key], True, False)
        return dict(records[0].payload or {}) if records else None

    def _ledger_put(self, key: str, payload: dict[str, Any]) -> None:
        with self._write_lock:
            self._ledger_shard().update(
                edge.UpdateOperation.upsert_points([edge.Point(key, {}, payload)])
            )

    def _ledger_delete(self, key: str) -> None:
        with self._write_lock:
            self._ledger_shard().update(edge.UpdateOperation.delete_points([key]))

    def _ledger_items(self) -> Iterator[dict[str, Any]]:
        offset = None
        while True:
            records, offset = self._ledger_shard().scroll(
                edge.ScrollRequest(offset=offset, limit=1024, with_payload=True, with_vector=False)
            )
            for record in records:
                yield dict(record.payload or {})
            if offset is None:
                return
