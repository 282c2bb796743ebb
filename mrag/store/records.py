"""What a store writes about itself in its ledger: the layout record and one entry per source.

The layout record (layout version, and the :class:`~mrag.model.identity.ModelRecord` of the
model that made the vectors) is written when the collection is created; a source's entry only
after all of its points are written, so a run killed half-way leaves no entry and the next run
redoes that source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mrag.model.identity import ModelRecord
from mrag.store.types import point_id

#: The store layout this version writes (see :mod:`mrag.store.types`); 1 was one unnamed vector.
LAYOUT_VERSION = 2
#: The payload field that marks the layout record.
LAYOUT_KEY = "mrag_layout"
#: Ledger key of the layout record.
LAYOUT_ID = point_id("", "layout", 0)

__all__ = ["LAYOUT_ID", "LAYOUT_KEY", "LAYOUT_VERSION", "Layout", "ModelRecord", "SourceRecord"]


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
        """The record of a ledger payload (extra fields are ignored; fields added later have
        defaults, so a ledger written by an older mrag still reads)."""
        return cls(**{name: payload[name] for name in cls.__dataclass_fields__ if name in payload})


@dataclass(frozen=True)
class Layout:
    """The layout record of a store."""

    version: int
    model: ModelRecord
    created_at: str = ""

    def to_payload(self) -> dict[str, Any]:
        """The ledger payload of this record."""
        return {
            LAYOUT_KEY: self.version,
            "model": self.model.name,
            "revision": self.model.revision,
            "dimension": self.model.dimension,
            "fingerprint": self.model.fingerprint,
            "created_at": self.created_at,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Layout:
        """The record of a ledger payload."""
        model = ModelRecord(
            payload.get("model"),
            payload.get("revision"),
            int(payload["dimension"]),
            payload.get("fingerprint"),
        )
        return cls(int(payload[LAYOUT_KEY]), model, str(payload.get("created_at") or ""))
