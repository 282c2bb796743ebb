"""Query latency: the retriever against embedded Qdrant stores of growing size.

Each store is filled through :meth:`mrag.store.Store.upsert` with random unit vectors (half text,
half image points, with the payload layout ingestion writes), then queried with short texts.
Each query's time is split into the query embedding (the full model in float32, as
``JinaClipEmbeddings.embed_query`` runs it) and the search
(``MultimodalRetriever.search_by_vector``: one batched request per modality and the fusion).
Without the retriever, the search is a plain ``client.query_points`` and the result says so.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import PeakRss, Settings, load_average, percentile

QUERIES = [
    "a red motorcycle",
    "wiring diagram of the pump",
    "annual budget table for 2015",
    "a portrait of an astronaut with the flag",
    "how is the error rate measured",
    "a cup of coffee on a saucer",
    "results of the training on the test data",
    "map of the city center",
    "a rocket standing on a launchpad",
    "who signed the report",
    "figure showing the network layers",
    "price of energy in the market",
]


def point_counts(settings: Settings) -> tuple[int, ...]:
    if settings.points:
        return settings.points
    if settings.tiny:
        return (100, 300)
    return (1000, 10000) if settings.quick else (1000, 10000, 50000)


def fill(store: Any, count: int, dimension: int, start: int, seed: int) -> None:
    """Add points ``start..count`` with random unit vectors."""
    from mrag.store import Point, point_id

    rng = np.random.default_rng(seed + start)
    vectors = rng.standard_normal((count - start, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    points = []
    for offset, vector in enumerate(vectors):
        index = start + offset
        modality = "text" if index % 2 == 0 else "image"
        source = f"bench/doc{index // 50:05d}.pdf"
        payload = {
            "page_content": f"passage {index} of the benchmark store",
            "metadata": {
                "modality": modality,
                "source": source,
                "page": index % 50 + 1,
                "pages": [index % 50 + 1],
                "content_hash": f"{index // 50:064x}",
            },
        }
        points.append(Point(point_id(source, modality, index), modality, vector, payload))
    store.upsert(points)


def run(settings: Settings) -> dict[str, Any]:
    import torch

    from mrag.model import JinaClipModel
    from mrag.store import Store, StoreSettings

    model = JinaClipModel.from_pretrained(settings.checkpoint_folder(), dtype=torch.float32)
    from mrag.embeddings import JinaClipEmbeddings
    from mrag.retriever import MultimodalRetriever

    embeddings = JinaClipEmbeddings(model=model)
    how = "MultimodalRetriever.search_by_vector (rrf fusion, k=8, one batched call)"
    embed_query = embeddings.embed_query
    dimension = model.embedding_dim
    queries = 10 if settings.tiny else 30 if settings.quick else 200
    rng = random.Random(0)
    texts = [rng.choice(QUERIES) + f" {i}" for i in range(queries)]
    rows = []
    # Local mode commits every point to SQLite; on a RAM disk that costs nothing, so building a
    # 50k-point store takes seconds instead of minutes. Searching runs from memory either way.
    shm = Path("/dev/shm")
    where = str(shm) if shm.is_dir() else None
    with tempfile.TemporaryDirectory(prefix="mrag-bench-query-", dir=where) as tmp:
        store = Store.open(StoreSettings(path=str(Path(tmp) / "qdrant"), collection="bench"))
        try:
            store.ensure_collection(dimension)
            filled = 0
            for count in point_counts(settings):
                start = time.perf_counter()
                fill(store, count, dimension, filled, seed=1)
                fill_s = time.perf_counter() - start
                filled = count
                retriever = MultimodalRetriever(store=store, embeddings=embeddings, k=8)
                embed_times, search_times, total_times = [], [], []
                with PeakRss() as peak, torch.inference_mode():
                    embed_query("warm up the model")
                    for text in texts:
                        t0 = time.perf_counter()
                        vector = embed_query(text)
                        t1 = time.perf_counter()
                        retriever.search_by_vector(vector)
                        t2 = time.perf_counter()
                        embed_times.append(t1 - t0)
                        search_times.append(t2 - t1)
                        total_times.append(t2 - t0)
                row = {
                    "points": count,
                    "fill_s": round(fill_s, 2),
                    "queries": len(texts),
                    "peak_rss_mb": round(peak.peak_mb, 1),
                    "load_average": load_average(),
                }
                for name, values in (
                    ("total", total_times),
                    ("embed", embed_times),
                    ("search", search_times),
                ):
                    for q in (50, 95, 99):
                        row[f"{name}_p{q}_ms"] = round(percentile(values, q) * 1000, 2)
                rows.append(row)
                print(
                    f"  query {count:6d} points: p50 {row['total_p50_ms']:.1f} ms "
                    f"(embed {row['embed_p50_ms']:.1f} + search {row['search_p50_ms']:.1f}), "
                    f"p95 {row['total_p95_ms']:.1f}, p99 {row['total_p99_ms']:.1f}",
                    flush=True,
                )
        finally:
            store.close()
    store_kind = "embedded Qdrant (local mode, files on a RAM disk)"
    return {"status": "ok", "search": how, "store": store_kind, "rows": rows}
