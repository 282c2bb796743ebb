"""Keyword vectors: BM25 term weights, computed in this process for every backend.

Qdrant Edge ships a standalone BM25 embedder (English tokenizer, stop words and Snowball stemmer,
``k=1.2``, ``b=0.75``) that needs no files from a hub, so it works offline. Documents get term-
frequency weights; queries get weight 1 per unique term; the collection's IDF modifier supplies
the inverse document frequency at search time. Computing the vectors here, not in the engine,
makes the embedded store and a server score a keyword query identically.
"""

from __future__ import annotations

from functools import cache

from qdrant_edge import Bm25

from mrag.store.types import SparseVector


@cache
def _model() -> Bm25:
    return Bm25()


def _clean(text: str) -> str:
    # The binding takes valid UTF-8 only; a lone surrogate would raise deep inside it.
    return text.encode("utf-8", "replace").decode("utf-8")


def document_vector(text: str) -> SparseVector:
    """The BM25 vector of a stored passage."""
    vector = _model().embed_document(_clean(text))
    return SparseVector(list(vector.indices), [float(v) for v in vector.values])


def query_vector(text: str) -> SparseVector:
    """The BM25 vector of a keyword query."""
    vector = _model().embed_query(_clean(text))
    return SparseVector(list(vector.indices), [float(v) for v in vector.values])
