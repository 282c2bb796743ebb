"""What every backend writes for a point and how wide it searches: shared by the backends.

A point gets the dense vector of its modality (float32) and, when it is text, a BM25 vector
computed here (:mod:`mrag.store.bm25`), so every backend scores keywords the same way.
"""

from __future__ import annotations

import numpy as np

from mrag.store import bm25
from mrag.store.types import BM25_VECTOR, MODALITY_VECTORS, TEXT_VECTOR, Leg, Point, SparseVector

#: Candidates a dense HNSW search keeps (Qdrant's ``hnsw_ef``). Qdrant's own default (the
#: index's ``ef_construct``, 100) lets recall fall as a store grows: on the store benchmark's
#: clustered vectors recall@10 was 0.999 at 100k points, 0.92 at 300k and 0.41 at 1M.
#: Exact searches (small stores, segments not yet indexed) ignore it.
SEARCH_EF = 256


def search_ef(leg: Leg) -> int:
    """The HNSW search width for a dense leg: :data:`SEARCH_EF`, or the leg's limit if larger."""
    return max(SEARCH_EF, leg.limit)


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
