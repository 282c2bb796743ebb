"""What every store backend offers, in mrag's own types: points, filters, searches, the ledger.

A backend implements a handful of primitives (create, upsert, delete, scroll, retrieve, count,
search, and a key-value ledger); the rules that make ingestion safe to re-run live here, once,
on top of them:

- point ids are uuid5 of (source, modality, position), so writing a source again overwrites its
  points instead of adding copies;
- a source counts as done only when its ledger entry is written, after all of its points are.
  A run killed half-way leaves no entry, so the next run redoes that source and removes whatever
  the killed run had left behind.

Layout 2, the same on every backend: named dense vectors ``text`` and ``image`` (a point carries
the one of its modality), a sparse ``bm25`` vector on text points (computed here, client-side, so
every backend scores keywords the same way; the engine applies the IDF), payload indexes on every
filtered field, and a layout record in the ledger: layout version, model id, revision, dimension.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_COLLECTION = "mrag"
DEFAULT_QDRANT_PATH = Path(".mrag") / "qdrant"
#: Namespace of mrag point ids (uuid5), fixed forever so ids stay stable across versions.
POINT_NAMESPACE = uuid.UUID("5b0e7a3c-2f4d-5e8a-9c71-6d2b1f0a4e93")
#: The store layout this version writes (see the module docstring); 1 was one unnamed vector.
LAYOUT_VERSION = 2
#: Named vectors of layout 2.
TEXT_VECTOR, IMAGE_VECTOR, BM25_VECTOR = "text", "image", "bm25"
MODALITY_VECTORS: dict[str, str] = {"text": TEXT_VECTOR, "image": IMAGE_VECTOR}
#: Payload fields that filters use, with their index type; both backends index each one.
INDEXED_FIELDS: dict[str, str] = {
    "metadata.modality": "keyword",
    "metadata.source": "keyword",
    "metadata.file_name": "keyword",
    "metadata.page": "integer",
    "metadata.content_hash": "keyword",
    "metadata.kind": "keyword",
}
#: Points per write request: large enough to amortise a call, small enough for a server's limits.
UPSERT_BATCH = 256
#: Candidates a dense HNSW search keeps (Qdrant's ``hnsw_ef``). Qdrant's own default (the
#: index's ``ef_construct``, 100) lets recall fall as a store grows: on the store benchmark's
#: clustered vectors recall@10 was 0.999 at 100k points, 0.92 at 300k and 0.41 at 1M.
#: Exact searches (small stores, segments not yet indexed) ignore it.
SEARCH_EF = 256
_LAYOUT_KEY = "mrag_layout"
_FINGERPRINT_BYTES = 1 << 20


class StoreError(RuntimeError):
    """The store cannot be opened or used."""


class StoreInUseError(StoreError):
    """Another process holds the embedded store."""


class OldLayoutError(StoreError):
    """The store was written in an older layout; ``mrag migrate`` re-indexes it."""


class ModelMismatchError(StoreError):
    """The store was built with another model than the one in use."""


def point_id(source: str, modality: str, position: str | int) -> str:
    """The deterministic id of one point: uuid5 of source, modality and position."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{source}\x1f{modality}\x1f{position}"))


# -- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreSettings:
    """Where the store lives: an embedded folder (default, Qdrant Edge) or a Qdrant server URL."""

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


# -- records -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceRecord:
    """The ledger entry of a source whose points are all written.

    ``extraction`` is what shaped the source's extraction (see
    :mod:`mrag.ingestion.signature`); records written before it existed read as empty.
    """

    source: str
    content_hash: str
    points: int
    chunks: int
    images: int
    pages: int
    ingested_at: str
    extraction: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> SourceRecord:
        # Fields added later have defaults: a ledger written by an older mrag still reads.
        return cls(**{name: payload[name] for name in cls.__dataclass_fields__ if name in payload})


def weights_fingerprint(folder: Path) -> str | None:
    """A short digest of a checkpoint's weights file (size, first and last MiB): the same
    weights under any folder name give the same digest, other weights another one."""
    weights = folder / "model.safetensors"
    try:
        size = weights.stat().st_size
        digest = hashlib.sha256(str(size).encode())
        with weights.open("rb") as handle:
            digest.update(handle.read(_FINGERPRINT_BYTES))
            handle.seek(max(size - _FINGERPRINT_BYTES, 0))
            digest.update(handle.read(_FINGERPRINT_BYTES))
    except OSError:
        return None
    return digest.hexdigest()[:16]


def _local_checkpoint(name: str, revision: str | None) -> Path | None:
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                name,
                revision=revision or "main",
                allow_patterns=["model.safetensors"],
                local_files_only=True,
            )
        )
    except Exception:  # not in the cache, or not a Hub id at all
        return None


@dataclass(frozen=True)
class ModelRecord:
    """Which model made a store's vectors: its name (Hub id or folder), revision, dimension and
    a fingerprint of its weights."""

    name: str | None
    revision: str | None
    dimension: int
    fingerprint: str | None = None

    @classmethod
    def of(
        cls,
        name_or_path: str | os.PathLike[str] | None,
        revision: str | None,
        dimension: int,
        *,
        folder: Path | None = None,
    ) -> ModelRecord:
        """The record of a model as the user names it (a Hub id or a checkpoint folder).

        The weights are fingerprinted from ``folder``, the folder named, or the Hugging Face
        cache (never the network); a model found nowhere is compared by dimension only.
        """
        if name_or_path is None:
            return cls(None, revision, dimension)
        from mrag.model.hub import DEFAULT_REVISION, HUB_MODEL_ID

        name = str(name_or_path)
        if revision is None and name == HUB_MODEL_ID:
            revision = DEFAULT_REVISION
        if folder is None:
            folder = _local_checkpoint(name, revision)
        fingerprint = weights_fingerprint(folder) if folder is not None else None
        return cls(name, revision, dimension, fingerprint)

    @classmethod
    def of_checkpoint(
        cls, name_or_path: str | os.PathLike[str], revision: str | None
    ) -> ModelRecord:
        """The record of a checkpoint, read from its files without loading the model (a Hub id
        is fetched into the cache first, as loading it would)."""
        from mrag.model.config import JinaClipConfig
        from mrag.model.hub import resolve_checkpoint

        folder = resolve_checkpoint(name_or_path, revision=revision)
        dimension = JinaClipConfig.from_folder(folder).embedding_dim
        return cls.of(name_or_path, revision, dimension, folder=folder)

    def describe(self) -> str:
        name = self.name or "an unnamed model"
        revision = f"@{self.revision[:12]}" if self.revision else ""
        return f"{name}{revision} ({self.dimension}-d)"

    def conflicts_with(self, other: ModelRecord) -> bool:
        """True when vectors of ``other`` cannot be compared with vectors of this model."""
        if self.dimension != other.dimension:
            return True
        return bool(
            self.fingerprint and other.fingerprint and self.fingerprint != other.fingerprint
        )


@dataclass(frozen=True)
class Layout:
    """The layout record of a store."""

    version: int
    model: ModelRecord
    created_at: str = ""

    def to_payload(self) -> dict[str, Any]:
        return {
            _LAYOUT_KEY: self.version,
            "model": self.model.name,
            "revision": self.model.revision,
            "dimension": self.model.dimension,
            "fingerprint": self.model.fingerprint,
            "created_at": self.created_at,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Layout:
        model = ModelRecord(
            payload.get("model"),
            payload.get("revision"),
            int(payload["dimension"]),
            payload.get("fingerprint"),
        )
        return cls(int(payload[_LAYOUT_KEY]), model, str(payload.get("created_at") or ""))


LAYOUT_ID = point_id("", "layout", 0)


# -- points, filters, searches -------------------------------------------------------------------


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


@dataclass
class Point:
    """One point to write: its modality picks the named vector; text points also get BM25."""

    id: str
    modality: str
    vector: Sequence[float]
    payload: dict[str, Any]


def search_ef(leg: Leg) -> int:
    """The HNSW search width for a dense leg: :data:`SEARCH_EF`, or the leg's limit if larger."""
    return max(SEARCH_EF, leg.limit)


def named_vectors(point: Point) -> dict[str, np.ndarray | SparseVector]:
    """The vectors layout 2 stores for ``point``: its modality's (float32), plus BM25 for text."""
    from mrag.store import bm25

    name = MODALITY_VECTORS.get(point.modality)
    if name is None:
        raise ValueError(f"unknown modality {point.modality!r}; use 'text' or 'image'")
    vectors: dict[str, np.ndarray | SparseVector] = {
        name: np.asarray(point.vector, dtype=np.float32)
    }
    if name == TEXT_VECTOR:
        vectors[BM25_VECTOR] = bm25.document_vector(str(point.payload.get("page_content") or ""))
    return vectors


@dataclass
class Found:
    """A point read back: from a search (with its score), a scroll or a lookup."""

    id: str
    payload: dict[str, Any]
    score: float = 0.0
    #: Dense vectors, when asked for.
    vectors: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: Any) -> Found:
        """From a backend's scored point or record (``id``, ``payload``, ``vector``, ``score``)."""
        vectors = record.vector if isinstance(record.vector, dict) else {}
        return cls(
            id=str(record.id),
            payload=dict(record.payload or {}),
            score=float(getattr(record, "score", 0.0) or 0.0),
            vectors={name: list(v) for name, v in vectors.items() if isinstance(v, list)},
        )


@dataclass(frozen=True)
class Match:
    """``key`` (a payload path such as ``metadata.source``) equals ``value``, or any of a list."""

    key: str
    value: Any


@dataclass(frozen=True)
class Range:
    key: str
    gte: float | None = None
    lte: float | None = None
    gt: float | None = None
    lt: float | None = None

    def bounds(self) -> dict[str, float | None]:
        return {"gte": self.gte, "lte": self.lte, "gt": self.gt, "lt": self.lt}


@dataclass(frozen=True)
class HasVector:
    """The point carries the named vector ``name``."""

    name: str


@dataclass(frozen=True)
class Filter:
    """All of ``must``, at least one of ``should`` (when given), none of ``must_not``."""

    must: tuple[Condition, ...] = ()
    should: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()

    def __and__(self, other: Filter | None) -> Filter:
        if other is None or other == Filter():
            return self
        if self == Filter():
            return other
        return Filter(must=(self, other))


Condition = Match | Range | HasVector | Filter


def lower_filter(given: Filter | None, leaf: Any, make: Any) -> Any:
    """A backend's filter from ``given``: ``leaf`` converts each condition that is not a
    filter, ``make(must=..., should=..., must_not=...)`` builds the backend's filter."""
    if given is None:
        return None

    def convert(conditions: tuple[Condition, ...]) -> list[Any] | None:
        items = [
            lower_filter(c, leaf, make) if isinstance(c, Filter) else leaf(c) for c in conditions
        ]
        return items or None

    return make(
        must=convert(given.must), should=convert(given.should), must_not=convert(given.must_not)
    )


def source_condition(value: str | Sequence[str]) -> Filter:
    """Points of the sources a user names: by path as typed (resolved or not), or by file name.

    See :func:`mrag.ingestion.sources.source_candidates`; a bare name also matches
    ``metadata.file_name``.
    """
    from mrag.ingestion.sources import is_bare_name, portable_name, source_candidates

    given = [value] if isinstance(value, str) else [str(item) for item in value]
    sources = [candidate for item in given for candidate in source_candidates(item)]
    names = [portable_name(item) for item in given if is_bare_name(item)]
    should: list[Condition] = [Match("metadata.source", sources)]
    if names:
        should.append(Match("metadata.file_name", names))
    return Filter(should=tuple(should))


def metadata_filter(conditions: Mapping[str, Any] | None, **extra: Any) -> Filter | None:
    """A filter from ``{"key": value}`` pairs on the metadata (``None`` values ignored; a list
    value matches any of its items). A ``source`` is a path as the user types it or a bare file
    name (:func:`source_condition`)."""
    merged = {**(conditions or {}), **extra}
    must = tuple(
        source_condition(value) if key == "source" else Match(f"metadata.{key}", value)
        for key, value in merged.items()
        if value is not None
    )
    return Filter(must=must) if must else None


def as_filter(given: Any) -> Filter | None:
    """A :class:`Filter` from what callers pass: None, a Filter, ``{metadata key: value}``, or a
    ready ``qdrant_client.models.Filter`` (translated, so it works on every backend)."""
    if given is None or isinstance(given, Filter):
        return given
    if isinstance(given, Mapping):
        return metadata_filter(given)
    from mrag.store.server import filter_from_qdrant

    return filter_from_qdrant(given)


@dataclass(frozen=True)
class Leg:
    """One ranked search: a dense query on ``text``/``image``, or a keyword query on ``bm25``."""

    using: str
    query: Sequence[float] | str
    limit: int
    filter: Filter | None = None
    score_threshold: float | None = None
    #: Named vectors to return with each hit (e.g. ``("text",)`` to score BM25 hits by cosine).
    with_vectors: tuple[str, ...] = ()


# -- the interface -------------------------------------------------------------------------------


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

    @staticmethod
    def open(settings: StoreSettings) -> Store:
        """Open the store described by ``settings``."""
        if settings.url:
            from mrag.store.server import ServerStore

            return ServerStore.connect(settings)
        from mrag.store.edge import EdgeStore

        return EdgeStore(Path(settings.path or DEFAULT_QDRANT_PATH), settings.collection)

    @staticmethod
    def from_client(client: Any, collection: str = DEFAULT_COLLECTION) -> Store:
        """A store on a collection of an open ``QdrantClient`` (server, local mode, memory)."""
        from mrag.store.server import ServerStore

        return ServerStore(client, collection)

    @staticmethod
    def memory(collection: str = DEFAULT_COLLECTION) -> Store:
        """A throwaway store in memory (qdrant-client's ``":memory:"``), for tests and demos."""
        from qdrant_client import QdrantClient

        return Store.from_client(QdrantClient(location=":memory:"), collection)

    def close(self) -> None:  # noqa: B027 - a backend without resources has nothing to close
        """Release the store (files, locks, connections)."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
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
            if payload is None or _LAYOUT_KEY not in payload:
                raise OldLayoutError(
                    f"{self.describe()}: the collection has no layout record: an `mrag migrate` "
                    "or `mrag export` into it did not finish (run it again to resume), or it "
                    "was not written by mrag (ingest into another --collection)"
                )
            self._layout = Layout.from_payload(payload)
        return self._layout

    @property
    def dimension(self) -> int | None:
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
