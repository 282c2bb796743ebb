"""The server backend: a Qdrant server or cluster through qdrant-client.

Also takes any open ``QdrantClient``, so qdrant-client's local mode (``path=...``) and
``":memory:"`` work too; local mode accepts payload indexes and ignores them, so none are made
there. The ledger is a second collection, ``<collection>__sources``, of vector-less points.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from mrag.store import bm25, vectors
from mrag.store.errors import OldLayoutError, StoreError
from mrag.store.filters import Condition, Filter, HasVector, Match, Range, lower_filter
from mrag.store.interface import Store
from mrag.store.records import SourceRecord
from mrag.store.settings import StoreSettings
from mrag.store.transfer import PointSource
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

#: Seconds a read of the collection's size serves the search width (see ``ServerStore._size``).
_SIZE_TTL = 30.0
#: As in the embedded store: selective filters need no per-value HNSW links.
_SCHEMAS = {
    "keyword": models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, enable_hnsw=False),
    "integer": models.IntegerIndexParams(
        type=models.IntegerIndexType.INTEGER, lookup=True, range=True, enable_hnsw=False
    ),
}


def is_local_mode(client: QdrantClient) -> bool:
    """Whether ``client`` runs qdrant-client's own in-process engine (path or ``:memory:``)."""
    return type(getattr(client, "_client", None)).__name__ == "QdrantLocal"


def memory_client() -> QdrantClient:
    """An empty qdrant-client engine in this process's memory (``":memory:"``)."""
    return QdrantClient(location=":memory:")


# -- filters -------------------------------------------------------------------------------------


def _condition(condition: Match | Range | HasVector) -> Any:
    if isinstance(condition, Match):
        value = condition.value
        if isinstance(value, (list, tuple, set, frozenset)):
            return models.FieldCondition(key=condition.key, match=models.MatchAny(any=list(value)))
        return models.FieldCondition(key=condition.key, match=models.MatchValue(value=value))
    if isinstance(condition, Range):
        bounds = {
            "gte": condition.gte,
            "lte": condition.lte,
            "gt": condition.gt,
            "lt": condition.lt,
        }
        return models.FieldCondition(key=condition.key, range=models.Range(**bounds))
    if isinstance(condition, HasVector):
        return models.HasVectorCondition(has_vector=condition.name)
    raise TypeError(f"unsupported filter condition {condition!r}")


def to_filter(given: Filter | None) -> models.Filter | None:
    """The qdrant-client filter of an mrag :class:`~mrag.store.Filter`."""
    return lower_filter(given, _condition, models.Filter)


def _from_condition(condition: Any) -> Condition:
    if isinstance(condition, models.Filter):
        return filter_from_qdrant(condition)
    if isinstance(condition, models.HasVectorCondition):
        return HasVector(condition.has_vector)
    if isinstance(condition, models.FieldCondition):
        match, bounds = condition.match, condition.range
        if isinstance(match, models.MatchValue):
            return Match(condition.key, match.value)
        if isinstance(match, models.MatchAny):
            return Match(condition.key, tuple(match.any))
        if isinstance(match, models.MatchExcept):
            return Filter(must_not=(Match(condition.key, tuple(match.except_)),))
        if match is None and isinstance(bounds, models.Range):
            return Range(condition.key, gte=bounds.gte, lte=bounds.lte, gt=bounds.gt, lt=bounds.lt)
    raise ValueError(
        f"unsupported Qdrant filter condition {condition!r}: use match (value, any, except), "
        "range or has_vector conditions, or a {metadata key: value} mapping"
    )


def filter_from_qdrant(given: models.Filter) -> Filter:
    """An mrag :class:`Filter` from a ``qdrant_client.models.Filter``, for any backend."""
    if not isinstance(given, models.Filter):
        raise TypeError(f"a filter is a mapping or a qdrant_client Filter, not {type(given)}")

    def many(conditions: Any) -> tuple[Condition, ...]:
        if conditions is None:
            return ()
        items = conditions if isinstance(conditions, list) else [conditions]
        return tuple(_from_condition(item) for item in items)

    return Filter(many(given.must), many(given.should), many(given.must_not))


# -- points --------------------------------------------------------------------------------------


def _vector(vector: np.ndarray | list[float] | SparseVector) -> Any:
    if isinstance(vector, SparseVector):
        return models.SparseVector(indices=vector.indices, values=vector.values)
    return vector.tolist() if isinstance(vector, np.ndarray) else vector


def server_point(point: Point) -> models.PointStruct:
    """The qdrant-client point of ``point`` (see :func:`~mrag.store.named_vectors`)."""
    vectors = {name: _vector(v) for name, v in named_vectors(point).items()}
    return models.PointStruct(id=point.id, vector=vectors, payload=point.payload)


class ServerStore(Store):
    """A store on a collection reached through a ``QdrantClient``."""

    def __init__(self, client: QdrantClient, collection: str, *, location: str = "") -> None:
        self.client = client
        self._local = is_local_mode(client)
        where = location or ("qdrant-client local mode" if self._local else "a Qdrant server")
        super().__init__(collection, where)
        self.ledger = f"{collection}__sources"
        self._exists = False
        self._size_read: tuple[float, int] | None = None  # (when, points)
        self._check_layout()

    @classmethod
    def connect(cls, settings: StoreSettings) -> ServerStore:
        """Connect to the server at ``settings.url``."""
        try:
            client = QdrantClient(url=settings.url, api_key=settings.api_key)
        except Exception as exc:
            raise StoreError(f"{settings.url}: cannot connect to Qdrant ({exc})") from None
        return cls(client, settings.collection, location=str(settings.url))

    def _check_layout(self) -> None:
        try:
            self._exists = self.client.collection_exists(self.collection)
            if not self._exists:
                return
            vectors = self.client.get_collection(self.collection).config.params.vectors
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"{self.describe()}: cannot read the collection ({exc})") from None
        if not isinstance(vectors, dict) or TEXT_VECTOR not in vectors:
            raise OldLayoutError(
                f"{self.describe()}: the collection is in the old layout (one unnamed vector); "
                "run `mrag migrate` to re-index it without re-embedding, or ingest again into "
                "another --collection"
            )

    def close(self) -> None:
        self.client.close()

    # -- layout ----------------------------------------------------------------------------------

    def exists(self) -> bool:
        if not self._exists:
            self._exists = self.client.collection_exists(self.collection)
        return self._exists

    def _create(self, dimension: int) -> None:
        graph = models.HnswConfigDiff(m=vectors.HNSW_M, ef_construct=vectors.HNSW_EF_CONSTRUCT)
        dense = models.VectorParams(
            size=dimension, distance=models.Distance.COSINE, hnsw_config=graph
        )
        if not self.client.collection_exists(self.ledger):
            self.client.create_collection(self.ledger, vectors_config={})
        self.client.create_collection(
            self.collection,
            vectors_config={TEXT_VECTOR: dense, IMAGE_VECTOR: dense},
            sparse_vectors_config={
                BM25_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)
            },
        )
        if not self._local:  # local mode accepts and ignores payload indexes
            for key, schema in INDEXED_FIELDS.items():
                self.client.create_payload_index(
                    self.collection, key, field_schema=_SCHEMAS[schema]
                )
        self._exists = True

    # -- points ----------------------------------------------------------------------------------

    def _upsert(self, points: Sequence[Point]) -> None:
        if not points:
            return
        converted = [server_point(point) for point in points]
        with warnings.catch_warnings():
            # Local mode warns past 20k points; the README explains when to move on.
            warnings.filterwarnings("ignore", message=".*Local mode is not recommended.*")
            self.client.upsert(self.collection, converted, wait=True)

    def delete_points(self, ids: Sequence[str]) -> None:
        if ids and self.exists():
            self.client.delete(self.collection, models.PointIdsList(points=list(ids)), wait=True)

    def scroll(
        self,
        filter: Filter | None = None,
        *,
        limit: int = 1024,
        offset: Any = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> tuple[list[Found], Any]:
        records, next_offset = self.client.scroll(
            self.collection,
            scroll_filter=to_filter(filter),
            limit=limit,
            offset=offset,
            with_payload=with_payload,
            with_vectors=with_vectors,
        )
        return [Found.from_record(record) for record in records], next_offset

    def retrieve(
        self, ids: Sequence[str], *, with_payload: bool = True, with_vectors: bool = False
    ) -> list[Found]:
        if not ids:
            return []
        records = self.client.retrieve(
            self.collection, list(ids), with_payload=with_payload, with_vectors=with_vectors
        )
        return [Found.from_record(record) for record in records]

    def count_points(self, filter: Filter | None = None) -> int:
        return self.client.count(self.collection, count_filter=to_filter(filter), exact=True).count

    def _size(self) -> int:
        """The collection's point count for the search width, read again at most once every
        :data:`_SIZE_TTL` seconds: a round trip per search would cost more than the search."""
        now = time.monotonic()
        if self._size_read is None or now - self._size_read[0] > _SIZE_TTL:
            info = self.client.get_collection(self.collection)
            self._size_read = (now, int(info.points_count or 0))
        return self._size_read[1]

    def _request(self, leg: Leg, points: int) -> models.QueryRequest:
        query = leg.query
        vector = _vector(bm25.query_vector(query) if isinstance(query, str) else list(query))
        return models.QueryRequest(
            query=vector,
            using=leg.using,
            filter=to_filter(leg.filter),
            limit=leg.limit,
            score_threshold=leg.score_threshold,
            with_payload=True,
            with_vector=list(leg.with_vectors) or False,
            params=None
            if leg.using == BM25_VECTOR
            else models.SearchParams(hnsw_ef=search_ef(leg, points)),
        )

    def search(self, legs: Sequence[Leg]) -> list[list[Found]]:
        if not legs:
            return []
        points = self._size()
        with warnings.catch_warnings():
            # Local mode searches exactly and says the width has no effect; the requests are
            # the ones a server gets.
            warnings.filterwarnings("ignore", message=".*search_params. has no effect.*")
            responses = self.client.query_batch_points(
                self.collection, requests=[self._request(leg, points) for leg in legs]
            )
        return [[Found.from_record(point) for point in response.points] for response in responses]

    # -- the ledger ------------------------------------------------------------------------------

    def _ledger_get(self, key: str) -> dict[str, Any] | None:
        if not self.client.collection_exists(self.ledger):
            return None
        records = self.client.retrieve(self.ledger, [key])
        return dict(records[0].payload or {}) if records else None

    def _ledger_put(self, key: str, payload: dict[str, Any]) -> None:
        if not self.client.collection_exists(self.ledger):
            self.client.create_collection(self.ledger, vectors_config={})
        point = models.PointStruct(id=key, vector={}, payload=payload)
        self.client.upsert(self.ledger, [point], wait=True)

    def _ledger_delete(self, key: str) -> None:
        if self.client.collection_exists(self.ledger):
            self.client.delete(self.ledger, models.PointIdsList(points=[key]), wait=True)

    def _ledger_items(self) -> Iterator[dict[str, Any]]:
        if not self.client.collection_exists(self.ledger):
            return
        offset = None
        while True:
            records, offset = self.client.scroll(self.ledger, limit=1024, offset=offset)
            for record in records:
                yield dict(record.payload or {})
            if offset is None:
                return


class LegacySource(PointSource):
    """A layout-1 collection (one unnamed vector), as earlier versions of mrag wrote it, read
    through qdrant-client: a local-mode folder or a server collection."""

    def __init__(self, client: QdrantClient, collection: str) -> None:
        if not client.collection_exists(collection):
            raise StoreError(f"collection {collection!r} does not exist in the old store")
        vectors = client.get_collection(collection).config.params.vectors
        if not isinstance(vectors, models.VectorParams):
            raise StoreError(f"collection {collection!r} is not in the old layout")
        self.client = client
        self.collection = collection
        self._dimension = vectors.size

    @classmethod
    def connect(cls, settings: StoreSettings) -> LegacySource:
        """The old store of ``settings``: a local-mode folder (``path``) or a server (``url``)."""
        try:
            if settings.url:
                client = QdrantClient(url=settings.url, api_key=settings.api_key)
            else:
                client = QdrantClient(path=str(settings.path))
        except RuntimeError as exc:  # local mode: the folder is held by another process
            raise StoreError(f"{settings.path}: cannot open the old store ({exc})") from None
        try:
            return cls(client, settings.collection)
        except StoreError:
            client.close()
            raise
        except Exception as exc:  # a server that does not answer, a folder that is not a store
            client.close()
            where = settings.url or settings.path
            raise StoreError(f"{where}: cannot read the old store ({exc})") from None
        except BaseException:
            client.close()
            raise

    def drop(self) -> None:
        """Delete the old collection and its ledger (once migrated)."""
        for name in (self.collection, f"{self.collection}__sources"):
            if self.client.collection_exists(name):
                self.client.delete_collection(name)

    def close(self) -> None:
        self.client.close()

    def total(self) -> int:
        return self.client.count(self.collection, exact=True).count

    def page(self, offset: Any, limit: int) -> tuple[list[Point], Any]:
        records, next_offset = self.client.scroll(
            self.collection, limit=limit, offset=offset, with_payload=True, with_vectors=True
        )
        points = []
        for record in records:
            payload = dict(record.payload or {})
            modality = (payload.get("metadata") or {}).get("modality")
            vector = record.vector
            if isinstance(vector, list):
                points.append(
                    Point(
                        str(record.id), "image" if modality == "image" else "text", vector, payload
                    )
                )
        return points, next_offset

    def sources(self) -> list[SourceRecord]:
        ledger = f"{self.collection}__sources"
        if not self.client.collection_exists(ledger):
            return []
        found, offset = [], None
        while True:
            records, offset = self.client.scroll(ledger, limit=1024, offset=offset)
            found += [SourceRecord.from_payload(r.payload) for r in records if r.payload]
            if offset is None:
                return found

    def dimension(self) -> int:
        return int(self._dimension)
