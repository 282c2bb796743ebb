"""What every backend writes for a point and how wide it searches: shared by the backends.

A point gets the dense vector of its modality (float32) and, when it is text, a BM25 vector
computed here (:mod:`mrag.store.bm25`), so every backend scores keywords the same way.
"""

from __future__ import annotations

import numpy as np

from mrag.store import bm25
from mrag.store.types import BM25_VECTOR, MODALITY_VECTORS, TEXT_VECTOR, Leg, Point, SparseVector

#: Candidates a dense HNSW search keeps (Qdrant's ``hnsw_ef``), by how many points the collection
#: holds: (up to this many points, width). One fixed width either wastes time on small stores or
#: loses recall on big ones. On the store benchmark (clustered 768-d vectors, the graph built
#: with the parameters below) the narrowest widths with recall@10 of at least 0.99 were 32 at 100k
#: points and 100 at 1M; the widths here leave a margin above those, for data harder than the
#: benchmark's. Past 2M points nothing was measured: the widest width is a guess on the safe side.
#: Exact searches (small stores, segments not yet indexed) ignore it.
SEARCH_WIDTHS: tuple[tuple[int, int], ...] = ((200_000, 64), (2_000_000, 128))
#: The width past the last size of :data:`SEARCH_WIDTHS`.
WIDEST_SEARCH = 256

#: The HNSW graph each dense vector gets when a collection is created (Qdrant's ``m`` and
#: ``ef_construct``, its defaults).
HNSW_M = 16
HNSW_EF_CONSTRUCT = 100


def search_ef(leg: Leg, points: int) -> int:
    """The HNSW search width for a dense leg in a collection of ``points`` points: the width
    for that size (:data:`SEARCH_WIDTHS`), or the leg's limit if larger."""
    width = next((width for most, width in SEARCH_WIDTHS if points <= most), WIDEST_SEARCH)
    return max(width, leg.limit)


def named_vectors(point: Point) -> dict[str, np.ndarray | SparseVector]:
    """The vectors layout 2 stores for ``point``: its modality's (float32), plus BM25 for text."""
    name = MODALITY_VECTORS.get(point.modality)
    if name is None:
        raise ValueError(f"unknown modality {point.modality!r}; use 'text' or 'image'")
    vectors: dict[str, np.ndarray | SparseVector] = {
        name: np.asarray(point.vector, dtype=np.float32)
    }
    if name == TEXT_VECTOR:
        vectors[BM25_VECTOR] = bm25.document_vector(str(point.payload.get("page_content") or ""))
    return vectors
