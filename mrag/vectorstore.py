"""Kept for ``from mrag.vectorstore import MragVectorStore``; the module is
:mod:`mrag.retrieval.vectorstore`."""

from mrag.retrieval.vectorstore import MragVectorStore

__all__ = ["MragVectorStore"]
