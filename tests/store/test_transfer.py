"""Moving points without re-embedding: export to a server, migrate the old layout, resume both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli
from qdrant_client import QdrantClient, models

from mrag.store import (
    Leg,
    ModelRecord,
    OldLayoutError,
    SourceRecord,
    Store,
    StoreSettings,
    point_id,
)
from mrag.store.payload import make_point, text_payload
from mrag.store.transfer import export_store

MODEL = ModelRecord("some/model", "abc", 8, "f00d")
WORDS = ["pump", "valve", "wiring", "pressure", "filter", "motor", "sensor", "relay"]


def _fill(store: Store, count: int) -> None:
    rng = np.random.default_rng(0)
    store.ensure_collection(MODEL)
    points = []
    for i in range(count):
        source = f"doc{i % 5}.pdf"
        text = f"{WORDS[i % 8]} {WORDS[(i * 3) % 8]} number {i}"
        vector = rng.standard_normal(8).astype(np.float32)
        points.append(make_point(source, "text", i, vector, text_payload(text, {"source": source})))
    store.upsert(points)
    for n in range(5):
        store.put_source_record(SourceRecord(f"doc{n}.pdf", f"h{n}", 0, 0, 0, 1, "2026"))


def _same_points(a: Store, b: Store) -> None:
    left = {found.id: found for found in a.iter_points(with_vectors=True)}
    right = {found.id: found for found in b.iter_points(with_vectors=True)}
    assert left.keys() == right.keys()
    for key, found in left.items():
        assert found.payload == right[key].payload
        np.testing.assert_allclose(found.vectors["text"], right[key].vectors["text"], atol=1e-6)


def test_export_to_a_server_keeps_vectors_and_resumes(tmp_path: Path) -> None:
    source = Store.open(StoreSettings(path=str(tmp_path / "edge")))
    _fill(source, 700)
    target = Store.from_client(QdrantClient(":memory:"), "mrag")

    class Interrupted(Exception):
        pass

    def stop_after_first_batch(copied: int, total: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        export_store(source, target, progress=stop_after_first_batch)
    # Half-copied: the target says so instead of passing for a store.
    with pytest.raises(OldLayoutError, match="did not finish"):
        target.layout()
    seen: list[int] = []
    report = export_store(source, target, progress=lambda copied, total: seen.append(copied))
    assert report.resumed_from == 256 and report.points == 700 and seen[-1] == 700
    assert target.model == MODEL and target.count() == 700
    assert [r.source for r in target.sources()] == [r.source for r in source.sources()]
    _same_points(source, target)
    # BM25 is the same on both backends: the same keyword query scores the same.
    legs = [Leg("bm25", "pump wiring", 10), Leg("bm25", "relay number 611", 3)]
    here, there = source.search(legs), target.search(legs)
    for mine, theirs in zip(here, there, strict=True):
        assert [round(f.score, 4) for f in mine] == [round(f.score, 4) for f in theirs]
    assert here[1][0].id == there[1][0].id == point_id("doc1.pdf", "text", 611)
    source.close()


def _legacy_store(path: Path, count: int) -> dict[str, list[float]]:
    """A store as earlier mrag versions wrote it: local mode, one unnamed vector, a ledger."""
    rng = np.random.default_rng(1)
    client = QdrantClient(path=str(path))
    client.create_collection(
        "mrag", vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE)
    )
    client.create_collection("mrag__sources", vectors_config={})
    vectors = {}
    points = []
    for i in range(count):
        modality = "image" if i % 4 == 0 else "text"
        pid = point_id("old.pdf", modality, i)
        vector = rng.standard_normal(8)
        vectors[pid] = (vector / np.linalg.norm(vector)).tolist()
        payload = {
            "page_content": f"{WORDS[i % 8]} part {i}",
            "metadata": {"modality": modality, "source": "old.pdf", "page": i},
        }
        points.append(models.PointStruct(id=pid, vector=vector.tolist(), payload=payload))
    client.upsert("mrag", points)
    record = SourceRecord("old.pdf", "h", count, count, 0, 1, "2025-01-01T00:00:00+00:00")
    client.upsert(
        "mrag__sources",
        [
            models.PointStruct(
                id=point_id("old.pdf", "source", 0), vector={}, payload=record.__dict__
            )
        ],
    )
    client.close()
    return vectors


def test_migrate_re_indexes_the_old_layout_in_place(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    vectors = _legacy_store(folder, 40)
    with pytest.raises(OldLayoutError):
        Store.open(StoreSettings(path=str(folder)))
    result = run_cli("migrate", "--qdrant-path", str(folder), "--model", "x/y")
    assert result.returncode == 0, result.stderr
    assert "migrated 40 points and 1 sources" in result.stdout
    with Store.open(StoreSettings(path=str(folder))) as store:
        assert store.count() == 40 and store.count("image") == 10
        assert store.model == ModelRecord("x/y", None, 8)
        assert store.source_record("old.pdf").points == 40
        for found in store.iter_points(with_vectors=True):
            [vector] = found.vectors.values()
            np.testing.assert_allclose(vector, vectors[found.id], atol=1e-5)
        # The passages gained their keyword vectors.
        [hits] = store.search([Leg("bm25", "wiring", 5)])
        assert hits and all("wiring" in hit.payload["page_content"] for hit in hits)
