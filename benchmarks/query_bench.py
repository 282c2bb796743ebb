"""End-to-end query latency: the retriever on the embedded store (Qdrant Edge) of growing size.

Each store is filled through :meth:`mrag.store.Store.upsert` with clustered unit vectors (half
passages with BM25 vectors, half images; see :mod:`benchmarks.store_bench`) and the payload
layout ingestion writes; past the store's indexing threshold it is optimised (HNSW) as
ingestion would. Each query's time is split into the query embedding (the full model in the
dtype it picks for this CPU, as ``JinaClipEmbeddings.embed_query`` runs it) and the search
(``MultimodalRetriever.search_hits``: BM25, text and image legs in one batch, then the fusion).
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

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
    return (1000, 10000) if settings.quick else (10_000, 100_000)


def run(settings: Settings) -> dict[str, Any]:
    import torch

    from mrag.model import JinaClipModel
    from mrag.model.embeddings import JinaClipEmbeddings
    from mrag.retrieval.retriever import MultimodalRetriever
    from mrag.store import ModelRecord, Store, StoreSettings

    from .store_bench import ClusteredVectors, fill_batches

    model = JinaClipModel.from_pretrained(settings.checkpoint_folder())
    embeddings = JinaClipEmbeddings(model=model)
    dimension = model.embedding_dim
    queries = 10 if settings.tiny else 30 if settings.quick else 200
    rng = random.Random(0)
    choices = [rng.choice(QUERIES) for _ in range(queries)]
    rows = []
    shm = Path("/dev/shm")
    where = str(shm) if shm.is_dir() else None
    with tempfile.TemporaryDirectory(prefix="mrag-bench-query-", dir=where) as tmp:
        store = Store.open(StoreSettings(path=str(Path(tmp) / "qdrant"), collection="bench"))
        try:
            store.ensure_collection(ModelRecord("benchmark/clustered", None, dimension))
            filled = 0
            for count in point_counts(settings):
                data = ClusteredVectors(
                    count, dimension, seed=1, spread=settings.extra.get("store_spread", 0.8)
                )
                start = time.perf_counter()
                for points in fill_batches(data, filled):
                    store.upsert(points)
                fill_s = time.perf_counter() - start
                filled = count
                optimize_s = 0.0
                if store.needs_optimize():
                    start = time.perf_counter()
                    store.optimize()
                    optimize_s = time.perf_counter() - start
                retriever = MultimodalRetriever(store=store, embeddings=embeddings, k=8)
                # Texts no earlier round asked: every query is embedded, none comes from the
                # model's query cache.
                texts = [f"{text} {count} {i}" for i, text in enumerate(choices)]
                embed_times, search_times, total_times = [], [], []
                with PeakRss() as peak, torch.inference_mode():
                    embeddings.embed_query("warm up the model")
                    for text in texts:
                        t0 = time.perf_counter()
                        vector = embeddings.embed_query(text)
                        t1 = time.perf_counter()
                        retriever.search_hits(vector, text=text)
                        t2 = time.perf_counter()
                        embed_times.append(t1 - t0)
                        search_times.append(t2 - t1)
                        total_times.append(t2 - t0)
                row = {
                    "points": count,
                    "fill_s": round(fill_s, 2),
                    "optimize_s": round(optimize_s, 2),
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
                    f"  query {count:7d} points: p50 {row['total_p50_ms']:.1f} ms "
                    f"(embed {row['embed_p50_ms']:.1f} + search {row['search_p50_ms']:.1f}), "
                    f"p95 {row['total_p95_ms']:.1f}, p99 {row['total_p99_ms']:.1f}",
                    flush=True,
                )
        finally:
            store.close()
    return {
        "status": "ok",
        "search": "MultimodalRetriever.search_hits (bm25 + text + image legs, rrf, k=8)",
        "store": "embedded Qdrant Edge (files on a RAM disk), HNSW past 20k points",
        "query_dtype": str(model.dtype_choice),
        "rows": rows,
    }
