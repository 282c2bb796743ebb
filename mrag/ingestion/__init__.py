"""Ingestion: files in, points in the store.

The run (:mod:`~mrag.ingestion.run`) lists the sources (:mod:`~mrag.ingestion.sources`), parses
each in the worker process, cuts text into chunks (:mod:`~mrag.ingestion.chunking`), embeds chunks
and pictures, and writes one source at a time. :mod:`~mrag.ingestion.pipeline` says what to read
and how; :mod:`~mrag.ingestion.ray` runs the same stages on a Ray cluster.
"""
