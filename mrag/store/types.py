"""The data a store moves, in mrag's own terms: point ids, points, searches, hits.

Layout 2, the same on every backend: named dense vectors ``text`` and ``image`` (a point carries
the one of its modality), a sparse ``bm25`` vector on text points, and payload indexes on every
filtered field (:data:`INDEXED_FIELDS`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mrag.store.filters import Filter

#: Namespace of mrag point ids (uuid5), fixed forever so ids stay stable across versions.
POINT_NAMESPACE = uuid.UUID("5b0e7a3c-2f4d-5e8a-9c71-6d2b1f0a4e93")
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
    "metadata.element": "keyword",
}
#: Points per write request: large enough to amortise a call, small enough for a server's limits.
UPSERT_BATCH = 256


def point_id(source: str, modality: str, position: str | int) -> str:
    """The deterministic id of one point: uuid5 of source, modality and position."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{source}\x1f{modality}\x1f{position}"))


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector (BM25 term weights): term ids and their weights."""

    indices: list[int]
    values: list[float]


@dataclass
class Point:
    """One point to write: its modality picks the named vector; text points also get BM25."""

    id: str
    modality: str
    vector: Sequence[float]
    payload: dict[str, Any]


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
class Leg:
    """One ranked search: a dense query on ``text``/``image``, or a keyword query on ``bm25``."""

    using: str
    query: Sequence[float] | str
    limit: int
    filter: Filter | None = None
    score_threshold: float | None = None
    #: Named vectors to return with each hit (e.g. ``("text",)`` to score BM25 hits by cosine).
    with_vectors: tuple[str, ...] = ()
