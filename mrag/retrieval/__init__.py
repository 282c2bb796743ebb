"""Retrieval: one query in, passages and figures out, ranked together.

:mod:`~mrag.retrieval.retriever` holds the LangChain retriever, :mod:`~mrag.retrieval.vectorstore`
the LangChain vector store, :mod:`~mrag.retrieval.messages` turns hits into chat messages.
"""
