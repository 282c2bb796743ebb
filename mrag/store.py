"""The Qdrant store: one collection of text and image points, plus a ledger of finished sources.

Payloads follow langchain-qdrant's layout (``page_content`` and ``metadata``), so a
``QdrantVectorStore`` opened on the same collection reads mrag's points as LangChain documents.

Re-running ingestion is safe because of two rules:
- point ids are uuid5 of (source, modality, position), so writing a source again overwrites
  its points instead of adding copies;
- a source counts as done only when its entry in the ledger collection (``<name>__sources``) is
  written, and that happens after all of its points are. A run killed half-way leaves no entry,
  so the next run redoes that source and removes whatever the killed run had left behind.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

DEFAULT_COLLECTION = "mrag"
DEFAULT_QDRANT_PATH = Path(".mrag") / "qdrant"
#: Namespace of mrag point ids (uuid5), fixed forever so ids stay stable across versions.
POINT_NAMESPACE = uuid.UUID("5b0e7a3c-2f4d-5e8a-9c71-6d2b1f0a4e93")
#: Payload fields that filters use; a Qdrant server gets an index on each.
INDEXED_FIELDS: dict[str, models.PayloadSchemaType] = {
    "metadata.modality": models.PayloadSchemaType.KEYWORD,
    "metadata.source": models.PayloadSchemaType.KEYWORD,
    "metadata.page": models.PayloadSchemaType.INTEGER,
    "metadata.content_hash": models.PayloadSchemaType.KEYWORD,
}
_UPSERT_BATCH = 64


class StoreError(RuntimeError):
    """The Qdrant store cannot be opened or used."""


def point_id(source: str, modality: str, position: str | int) -> str:
    """The deterministic id of one point: uuid5 of source, modality and position."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{source}\x1f{modality}\x1f{position}"))


@dataclass(frozen=True)
class StoreSettings:
    """Where the store lives: an embedded folder (default) or a Qdrant server URL."""

    path: str | None = None
    url: str | None = None
    api_key: str | None = None
    collection: str = DEFAULT_COLLECTION

    @classmethod
    def from_env(
        cls,
        *,
        path: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        collection: str | None = None,
    ) -> StoreSettings:
        """Explicit values first, then ``MRAG_QDRANT_PATH``, ``QDRANT_URL``, ``QDRANT_API_KEY``,
        ``MRAG_COLLECTION``; with neither a path nor a URL, the embedded store in ``./.mrag``."""
        if path and url:
            raise StoreError("give either a Qdrant path or a Qdrant URL, not both")
        if not path and not url:
            url = os.environ.get("QDRANT_URL") or None
            if not url:
                path = os.environ.get("MRAG_QDRANT_PATH") or str(DEFAULT_QDRANT_PATH)
        return cls(
            path=path,
            url=url,
            api_key=api_key or os.environ.get("QDRANT_API_KEY") or None,
            collection=collection or os.environ.get("MRAG_COLLECTION") or DEFAULT_COLLECTION,
        )

    def describe(self) -> str:
        return f"{self.url or self.path} (collection {self.collection!r})"


def open_client(settings: StoreSettings) -> QdrantClient:
    """Open a Qdrant client: embedded (local mode) for a path, remote for a URL."""
    if settings.url:
        return QdrantClient(url=settings.url, api_key=settings.api_key)
    path = Path(settings.path or DEFAULT_QDRANT_PATH)
    try:
        path.mkdir(parents=True, exist_ok=True)
        return QdrantClient(path=str(path))
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise StoreError(
                f"{path}: the embedded Qdrant store is in use by another process; wait for it to "
                "finish, or run a Qdrant server and use --qdrant-url for concurrent writers"
            ) from None
        raise StoreError(f"{path}: cannot open the embedded Qdrant store ({exc})") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot open the embedded Qdrant store ({exc})") from None


@dataclass(frozen=True)
class SourceRecord:
    """The ledger entry of a source whose points are all written."""

    source: str
    content_hash: str
    points: int
    chunks: int
    images: int
    pages: int
    ingested_at: str


class Store:
    """mrag's view of a Qdrant collection: points in, points out, sources tracked.

    Args:
        client: an open ``QdrantClient`` (see :func:`open_client`).
        collection: name of the points collection; the ledger is ``<collection>__sources``.
        dimension: vector size; needed only to create the collection.
    """

    def __init__(
        self,
        client: QdrantClient,
        collection: str = DEFAULT_COLLECTION,
        dimension: int | None = None,
        *,
        location: str = "",
    ) -> None:
        self.client = client
        #: Where the store lives, for messages: a folder or a URL.
        self.location = location
        self.collection = collection
        self.ledger = f"{collection}__sources"
        self.dimension = dimension
        self._is_local = type(getattr(client, "_client", None)).__name__ == "QdrantLocal"

    @classmethod
    def open(cls, settings: StoreSettings, dimension: int | None = None) -> Store:
        """Open the store described by ``settings``."""
        location = settings.url or str(settings.path or DEFAULT_QDRANT_PATH)
        return cls(open_client(settings), settings.collection, dimension, location=location)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- collections -----------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.client.collection_exists(self.collection)

    def ensure_collection(self, dimension: int | None = None) -> None:
        """Create the points and ledger collections if missing; check the vector size if not."""
        dimension = dimension or self.dimension
        if self.exists():
            info = self.client.get_collection(self.collection)
            vectors = info.config.params.vectors
            size = getattr(vectors, "size", None)
            if dimension is not None and size is not None and size != dimension:
                raise StoreError(
                    f"collection {self.collection!r} holds {size}-d vectors but the model makes "
                    f"{dimension}-d ones; use another --collection"
                )
            self.dimension = size or dimension
        else:
            if dimension is None:
                raise StoreError(f"collection {self.collection!r} does not exist")
            self.client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
            )
            self.dimension = dimension
            if not self._is_local:  # local mode accepts and ignores payload indexes
                for field, schema in INDEXED_FIELDS.items():
                    self.client.create_payload_index(self.collection, field, field_schema=schema)
        if not self.client.collection_exists(self.ledger):
            self.client.create_collection(self.ledger, vectors_config={})

    # -- points ----------------------------------------------------------------------------------

    def upsert(self, points: Sequence[models.PointStruct]) -> None:
        """Write points (overwriting any with the same id), in batches."""
        with warnings.catch_warnings():
            # Local mode warns past 20k points; `mrag stats` explains the limit instead.
            warnings.filterwarnings("ignore", message=".*Local mode is not recommended.*")
            for start in range(0, len(points), _UPSERT_BATCH):
                self.client.upsert(
                    self.collection, list(points[start : start + _UPSERT_BATCH]), wait=True
                )

    def delete_points(self, ids: Sequence[str]) -> None:
        if ids:
            self.client.delete(self.collection, models.PointIdsList(points=list(ids)), wait=True)

    def point_ids_of(self, source: str) -> set[str]:
        """Ids of every point that belongs to ``source``."""
        ids: set[str] = set()
        offset = None
        condition = models.Filter(must=[field_match("source", source)])
        while True:
            records, offset = self.client.scroll(
                self.collection,
                scroll_filter=condition,
                limit=1024,
                offset=offset,
                with_payload=False,
                with_vectors=False,
            )
            ids.update(str(record.id) for record in records)
            if offset is None:
                return ids

    def count(self, modality: str | None = None) -> int:
        if not self.exists():
            return 0
        condition = models.Filter(must=[field_match("modality", modality)]) if modality else None
        return self.client.count(self.collection, count_filter=condition, exact=True).count

    # -- sources ---------------------------------------------------------------------------------

    def source_record(self, source: str) -> SourceRecord | None:
        """The ledger entry of ``source``, or None if it never finished ingesting."""
        if not self.client.collection_exists(self.ledger):
            return None
        records = self.client.retrieve(self.ledger, [point_id(source, "source", 0)])
        if not records or not records[0].payload:
            return None
        return SourceRecord(**records[0].payload)

    def sources(self) -> list[SourceRecord]:
        """Every finished source, sorted by name."""
        if not self.client.collection_exists(self.ledger):
            return []
        found: list[SourceRecord] = []
        offset = None
        while True:
            records, offset = self.client.scroll(self.ledger, limit=1024, offset=offset)
            found.extend(SourceRecord(**r.payload) for r in records if r.payload)
            if offset is None:
                return sorted(found, key=lambda record: record.source)

    def replace_source(self, record: SourceRecord, points: Sequence[models.PointStruct]) -> None:
        """Make ``points`` the whole content of ``record.source``, then mark the source done.

        Order matters for crash safety: forget the source, write the new points, remove points
        of the source that the new version no longer has, and only then record it as done.
        """
        self.forget_source(record.source)
        self.upsert(points)
        keep = {str(point.id) for point in points}
        self.delete_points(sorted(self.point_ids_of(record.source) - keep))
        self.client.upsert(
            self.ledger,
            [
                models.PointStruct(
                    id=point_id(record.source, "source", 0), vector={}, payload=record.__dict__
                )
            ],
            wait=True,
        )

    def forget_source(self, source: str) -> None:
        """Drop the ledger entry of ``source`` (its points stay until replaced or deleted)."""
        if self.client.collection_exists(self.ledger):
            self.client.delete(
                self.ledger, models.PointIdsList(points=[point_id(source, "source", 0)]), wait=True
            )

    def delete_source(self, source: str) -> int:
        """Remove ``source`` and all its points; returns how many points were removed."""
        self.forget_source(source)
        if not self.exists():
            return 0
        ids = sorted(self.point_ids_of(source))
        self.delete_points(ids)
        return len(ids)


def field_match(key: str, value: Any) -> models.FieldCondition:
    """A condition on ``metadata.<key>``; a list value matches any of its items."""
    if isinstance(value, (list, tuple, set)):
        return models.FieldCondition(key=f"metadata.{key}", match=models.MatchAny(any=list(value)))
    return models.FieldCondition(key=f"metadata.{key}", match=models.MatchValue(value=value))


def metadata_filter(conditions: dict[str, Any] | None, **extra: Any) -> models.Filter | None:
    """A Qdrant filter from ``{"key": value}`` pairs on the metadata (``None`` values ignored)."""
    merged = {**(conditions or {}), **extra}
    must = [field_match(key, value) for key, value in merged.items() if value is not None]
    return models.Filter(must=must) if must else None
