"""Kept for ``from mrag.messages import rag_prompt``; the module is
:mod:`mrag.retrieval.messages`."""

from mrag.retrieval.messages import build_messages, rag_prompt

__all__ = ["build_messages", "rag_prompt"]
