"""Moving points between stores without embedding anything again: export and migrate.

Both copy every point with its vectors into a target :class:`~mrag.store.Store` in
batches, in id order, then the finished-source ledger, and write the target's layout record
last. Until that record exists the target refuses normal use (it reads as unfinished), so a copy
killed half-way can never pass for a complete store; running the same copy again resumes from
the last batch written (its position is kept in the target's ledger).

- :func:`export_store` copies a layout-2 store (the embedded one, typically) to another (a
  Qdrant server or cluster, typically);
- :func:`migrate_legacy` re-indexes a layout-1 store (one unnamed vector, as qdrant-client's
  local mode held it in earlier versions of mrag) into layout 2: named vectors, BM25, indexes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mrag.model.identity import ModelRecord
from mrag.store.errors import StoreError
from mrag.store.interface import Store
from mrag.store.records import LAYOUT_ID, LAYOUT_VERSION, Layout, SourceRecord
from mrag.store.types import IMAGE_VECTOR, TEXT_VECTOR, UPSERT_BATCH, Point, point_id

#: Ledger key of an unfinished copy's position.
PROGRESS_ID = point_id("", "transfer", 0)

#: ``progress(points copied so far, points in the source)``.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TransferReport:
    points: int
    sources: int
    resumed_from: int


class PointSource:
    """What a copy reads: pages of points in id order, the ledger, the model."""

    def total(self) -> int:
        raise NotImplementedError

    def page(self, offset: Any, limit: int) -> tuple[list[Point], Any]:
        raise NotImplementedError

    def sources(self) -> list[SourceRecord]:
        raise NotImplementedError

    def dimension(self) -> int:
        raise NotImplementedError


class StoreSource(PointSource):
    """A layout-2 store."""

    def __init__(self, store: Store) -> None:
        if store.layout() is None:
            raise StoreError(f"{store.describe()}: nothing to copy, the store is empty")
        self.store = store

    def total(self) -> int:
        return self.store.count()

    def page(self, offset: Any, limit: int) -> tuple[list[Point], Any]:
        found, next_offset = self.store.scroll(offset=offset, limit=limit, with_vectors=True)
        points = []
        for item in found:
            for name in (TEXT_VECTOR, IMAGE_VECTOR):
                if name in item.vectors:
                    points.append(Point(item.id, name, item.vectors[name], item.payload))
                    break
        return points, next_offset

    def sources(self) -> list[SourceRecord]:
        return self.store.sources()

    def dimension(self) -> int:
        return int(self.store.dimension or 0)


def _copy(
    source: PointSource,
    target: Store,
    model: ModelRecord,
    *,
    batch: int = UPSERT_BATCH,
    progress: Progress | None = None,
) -> TransferReport:
    if model.dimension != source.dimension():
        raise StoreError(
            f"the source holds {source.dimension()}-d vectors, but {model.describe()} was named "
            "as their model"
        )
    finished = target.exists() and target._ledger_get(PROGRESS_ID) is None
    if finished and target._ledger_get(LAYOUT_ID) is not None:
        target.check_model(model)  # copying into a complete store: it must be the same model
    if not target.exists():
        target._create(model.dimension)
    state = target._ledger_get(PROGRESS_ID) or {}
    offset, copied = state.get("offset"), int(state.get("copied", 0))
    resumed_from = copied
    total = source.total()
    if not state.get("done"):
        while True:
            points, next_offset = source.page(offset, batch)
            target.upsert(points)
            copied += len(points)
            offset = next_offset
            # Where to resume: after what is written, never before.
            target._ledger_put(
                PROGRESS_ID,
                {
                    "offset": None if offset is None else str(offset),
                    "copied": copied,
                    "done": offset is None,
                },
            )
            if progress is not None:
                progress(copied, total)
            if offset is None:
                break
    records = source.sources()
    for record in records:
        target.put_source_record(record)
    layout = Layout(LAYOUT_VERSION, model)
    target._ledger_put(LAYOUT_ID, layout.to_payload())
    target._ledger_delete(PROGRESS_ID)
    target._layout = layout
    return TransferReport(points=copied, sources=len(records), resumed_from=resumed_from)


def export_store(
    source: Store, target: Store, *, progress: Progress | None = None
) -> TransferReport:
    """Copy every point (vectors included) and source of ``source`` into ``target``."""
    model = source.model
    assert model is not None  # StoreSource refuses an empty store
    return _copy(StoreSource(source), target, model, progress=progress)


def migrate_legacy(
    legacy: PointSource,
    target: Store,
    model: ModelRecord,
    *,
    progress: Progress | None = None,
) -> TransferReport:
    """Re-index a layout-1 store into ``target`` (layout 2), recording ``model`` as its model."""
    return _copy(legacy, target, model, progress=progress)
