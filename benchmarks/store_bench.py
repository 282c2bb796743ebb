"""The store alone: the embedded default (Qdrant Edge) beside qdrant-client's local mode.

Both are filled through :meth:`mrag.store.Store.upsert` with the same points: half passages
(with BM25 vectors of synthetic text), half images, 768-d vectors with real structure (a mixture
of clusters on the unit sphere, so nearest neighbours are meaningful and HNSW recall can be
judged), and the payload layout ingestion writes. Per store size and backend:

- fill time and rate, disk used and resident memory added, per 100k points;
- search latency p50/p95 of one dense leg (``text``, k=10) and of the retriever's three-leg
  batch (BM25, text, image), through the ``Store`` interface;
- recall@10 of the default search against an exact NumPy scan of the same vectors;
- for Edge, the HNSW build (``optimize``) time, and the same searches after it.

Local mode searches by brute force in Python; above :data:`LOCAL_MODE_MAX` points it is not run
(its search time grows linearly, the measured rate gives the projection).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .common import Settings, load_average, percentile, rss_mb

#: Largest store qdrant-client's local mode is filled to (a 1M-point local store takes hours).
LOCAL_MODE_MAX = 100_000
_WORDS = [
    "pump",
    "valve",
    "motor",
    "sensor",
    "relay",
    "filter",
    "pressure",
    "wiring",
    "circuit",
    "fuse",
    "switch",
    "cable",
    "housing",
    "bearing",
    "seal",
    "gasket",
    "nozzle",
    "impeller",
    "shaft",
    "coupling",
    "flange",
    "torque",
    "voltage",
    "current",
    "signal",
    "display",
    "panel",
    "button",
    "alarm",
    "error",
    "reset",
    "manual",
    "service",
    "warranty",
    "install",
    "remove",
    "replace",
]
_BATCH = 1024
_LOCAL_QUERIES = 20


def store_sizes(settings: Settings) -> tuple[int, ...]:
    if settings.extra.get("store_points"):
        return tuple(settings.extra["store_points"])
    if settings.tiny:
        return (2000,)
    return (10_000,) if settings.quick else (10_000, 100_000, 1_000_000)


class ClusteredVectors:
    """Unit vectors drawn around ``count / 100`` random centres: a stand-in for embeddings of
    real documents (similar passages close together), generated batch by batch.

    ``spread`` is the mean cosine of a vector to its centre, whatever the dimension: 0.8 keeps
    clusters apart as embeddings of related passages are. Near 0.4 at 768 dimensions (the noise
    this class drew before it was scaled by the dimension) the noise outweighs the centre: a
    query's true top 10 mixes its cluster with the luckiest of a million random points, the
    worst case for any graph index (kept as a stress case, ``--store-spread 0.41``).
    """

    def __init__(self, count: int, dimension: int, seed: int = 0, spread: float = 0.8) -> None:
        self.count = count
        self.dimension = dimension
        rng = np.random.default_rng(seed)
        clusters = max(count // 100, 10)
        centres = rng.standard_normal((clusters, dimension)).astype(np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        self.seed = seed
        # Noise of norm n around a unit centre gives a cosine of 1 / sqrt(1 + n^2).
        self.noise = float(np.sqrt((1 / spread**2 - 1) / dimension))

    def batch(self, start: int, stop: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, start))
        which = rng.integers(0, len(self.centres), stop - start)
        noise = rng.standard_normal((stop - start, self.dimension)).astype(np.float32)
        vectors = self.centres[which] + self.noise * noise
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def queries(self, count: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, 2**40))
        which = rng.integers(0, len(self.centres), count)
        noise = rng.standard_normal((count, self.dimension)).astype(np.float32)
        vectors = self.centres[which] + self.noise * noise
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _points(data: ClusteredVectors, start: int, stop: int) -> tuple[list[Any], np.ndarray]:
    from mrag.store import Point, point_id

    vectors = data.batch(start, stop)
    points = []
    for offset, vector in enumerate(vectors):
        index = start + offset
        modality = "text" if index % 2 == 0 else "image"
        source = f"bench/doc{index // 200:05d}.pdf"
        words = " ".join(_WORDS[(index * k) % len(_WORDS)] for k in (1, 3, 7, 11, 13))
        payload = {
            "page_content": f"{words} part {index}",
            "metadata": {
                "modality": modality,
                "source": source,
                "file_name": source.rsplit("/", 1)[-1],
                "page": index % 200 + 1,
                "pages": [index % 200 + 1],
                "content_hash": f"{index // 200:064x}",
                "kind": "pdf",
            },
        }
        points.append(Point(point_id(source, modality, index), modality, vector, payload))
    return points, vectors


def fill_batches(data: ClusteredVectors, start: int = 0) -> Iterator[list[Any]]:
    """The points ``start..data.count``, a write batch at a time."""
    for begin in range(start - start % _BATCH, data.count, _BATCH):
        points, _ = _points(data, begin, min(begin + _BATCH, data.count))
        yield [point for index, point in enumerate(points, start=begin) if index >= start]


def _folder_mb(path: Path) -> float:
    # Blocks in use, as du counts them: write-ahead logs and mmap files are preallocated sparse.
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file()) / 2**20


def _search_rows(store: Any, queries: np.ndarray, truth: list[set[str]], label: str) -> dict:
    from mrag.store import Leg

    dense_times, batch_times, recalls = [], [], []
    store.search([Leg("text", queries[0].tolist(), 10)])  # warm up
    for vector, exact in zip(queries, truth, strict=True):
        query = vector.tolist()
        started = time.perf_counter()
        [hits] = store.search([Leg("text", query, 10)])
        dense_times.append(time.perf_counter() - started)
        recalls.append(len({hit.id for hit in hits} & exact) / len(exact))
        started = time.perf_counter()
        store.search(
            [
                Leg("text", query, 8),
                Leg("image", query, 8),
                Leg("bm25", "pump wiring reset", 8, with_vectors=("text",)),
            ]
        )
        batch_times.append(time.perf_counter() - started)
    return {
        f"{label}_p50_ms": round(percentile(dense_times, 50) * 1000, 2),
        f"{label}_p95_ms": round(percentile(dense_times, 95) * 1000, 2),
        f"{label}_hybrid_p50_ms": round(percentile(batch_times, 50) * 1000, 2),
        f"{label}_hybrid_p95_ms": round(percentile(batch_times, 95) * 1000, 2),
        f"{label}_recall_at_10": round(float(np.mean(recalls)), 4),
    }


@contextmanager
def _fixed_width(width: int) -> Iterator[None]:
    """Every dense search at ``width`` (``hnsw_ef``) whatever the store's size, for a sweep."""
    from mrag.store import vectors

    saved = vectors.SEARCH_WIDTHS, vectors.WIDEST_SEARCH
    vectors.SEARCH_WIDTHS, vectors.WIDEST_SEARCH = (), width
    try:
        yield
    finally:
        vectors.SEARCH_WIDTHS, vectors.WIDEST_SEARCH = saved


def _width_sweep(store: Any, queries: np.ndarray, truth: list[set[str]], widths: list[int]):
    rows = []
    for width in widths:
        with _fixed_width(width):
            row = _search_rows(store, queries, truth, "hnsw")
        rows.append({"width": width, **{k.removeprefix("hnsw_"): v for k, v in row.items()}})
    return rows


def _exact_top10(data: ClusteredVectors, queries: np.ndarray) -> list[set[str]]:
    """Ids of the 10 nearest text points of each query, by a NumPy scan of every vector."""
    from mrag.store import point_id

    best_scores = np.full((len(queries), 10), -np.inf, dtype=np.float32)
    best_index = np.zeros((len(queries), 10), dtype=np.int64)
    for start in range(0, data.count, _BATCH):  # the batches the stores were filled with
        stop = min(start + _BATCH, data.count)
        indices = np.arange(start, stop)
        text = indices % 2 == 0
        scores = queries @ data.batch(start, stop)[text].T
        merged_scores = np.concatenate([best_scores, scores], axis=1)
        merged_index = np.concatenate(
            [best_index, np.broadcast_to(indices[text], scores.shape)], axis=1
        )
        top = np.argpartition(-merged_scores, 9, axis=1)[:, :10]
        best_scores = np.take_along_axis(merged_scores, top, axis=1)
        best_index = np.take_along_axis(merged_index, top, axis=1)
    return [
        {point_id(f"bench/doc{int(i) // 200:05d}.pdf", "text", int(i)) for i in row}
        for row in best_index
    ]


def _measure(
    kind: str,
    folder: Path,
    data: ClusteredVectors,
    queries: np.ndarray,
    truth: list[set[str]],
    optimize: bool = True,
    widths: list[int] | None = None,
) -> dict[str, Any]:
    from qdrant_client import QdrantClient

    from mrag.store import ModelRecord, Store, StoreSettings

    if kind == "edge":
        store = Store.open(StoreSettings(path=str(folder), collection="bench"))
    else:
        store = Store.from_client(QdrantClient(path=str(folder)), "bench")
    row: dict[str, Any] = {"backend": kind, "points": data.count, "load_average": load_average()}
    try:
        store.ensure_collection(ModelRecord("benchmark/clustered", None, data.dimension))
        rss_before = rss_mb()
        started = time.perf_counter()
        for points in fill_batches(data):
            store.upsert(points)
        row["fill_s"] = round(time.perf_counter() - started, 2)
        row["fill_points_per_s"] = round(data.count / row["fill_s"])
        row["rss_added_mb"] = round(rss_mb() - rss_before, 1)
        if kind == "local" and data.count >= 50_000:
            # Brute force in Python takes seconds a query here: fewer queries, same statistics.
            queries, truth = queries[:_LOCAL_QUERIES], truth[:_LOCAL_QUERIES]
            row["queries"] = len(truth)
        row.update(_search_rows(store, queries, truth, "exact" if kind == "edge" else "search"))
        if kind == "edge" and optimize:
            started = time.perf_counter()
            store.optimize()
            row["optimize_s"] = round(time.perf_counter() - started, 2)
            row.update(_search_rows(store, queries, truth, "hnsw"))
            if widths:
                row["widths"] = _width_sweep(store, queries, truth, widths)
            row["rss_after_optimize_mb"] = round(rss_mb() - rss_before, 1)
    finally:
        store.close()
    row["disk_mb"] = round(_folder_mb(folder), 1)
    per = 100_000 / data.count
    row["disk_mb_per_100k"] = round(row["disk_mb"] * per, 1)
    row["rss_mb_per_100k"] = round(row["rss_added_mb"] * per, 1)
    return row


def run(settings: Settings) -> dict[str, Any]:
    dimension = 64 if settings.tiny else 768
    queries_per_size = 20 if settings.tiny else 50 if settings.quick else 100
    rows = []
    shm = Path("/dev/shm")
    where = str(shm) if shm.is_dir() and not settings.extra.get("store_on_disk") else None
    # The HNSW build grows with the store (minutes at 100k on two cores): it can be capped.
    optimize_max = settings.extra.get("store_optimize_max") or float("inf")
    spread = settings.extra.get("store_spread", 0.8)
    widths = settings.extra.get("store_widths")
    for count in store_sizes(settings):
        data = ClusteredVectors(count, dimension, spread=spread)
        queries = data.queries(queries_per_size)
        truth = _exact_top10(data, queries)
        backends = ["edge"] + (["local"] if count <= LOCAL_MODE_MAX else [])
        for kind in backends:
            folder = Path(tempfile.mkdtemp(prefix=f"mrag-bench-store-{kind}-", dir=where))
            try:
                row = _measure(kind, folder, data, queries, truth, count <= optimize_max, widths)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            rows.append(row)
            print(f"  store {kind:5s} {count:8d} points: {_summary(row)}", flush=True)
    return {
        "status": "ok",
        "dimension": dimension,
        "queries": queries_per_size,
        "files": "RAM disk (/dev/shm)" if where else "disk",
        "spread": spread,
        "rows": rows,
    }


def _summary(row: dict[str, Any]) -> str:
    if row["backend"] == "edge" and "optimize_s" not in row:
        return (
            f"fill {row['fill_s']} s, exact p50 {row['exact_p50_ms']} ms "
            f"(recall {row['exact_recall_at_10']}), hybrid p50 {row['exact_hybrid_p50_ms']} ms "
            "(no HNSW build)"
        )
    if row["backend"] == "edge":
        return (
            f"fill {row['fill_s']} s, exact p50 {row['exact_p50_ms']} ms "
            f"(recall {row['exact_recall_at_10']}), optimize {row['optimize_s']} s, "
            f"hnsw p50 {row['hnsw_p50_ms']} ms (recall {row['hnsw_recall_at_10']}), "
            f"hybrid p50 {row['hnsw_hybrid_p50_ms']} ms"
        )
    return (
        f"fill {row['fill_s']} s, search p50 {row['search_p50_ms']} ms "
        f"(recall {row['search_recall_at_10']}), hybrid p50 {row['search_hybrid_p50_ms']} ms"
    )
