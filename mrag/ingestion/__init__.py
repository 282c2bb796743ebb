"""Ingestion: files in, points in the store.

The run (:mod:`~mrag.ingestion.run`) lists the sources (:mod:`~mrag.ingestion.sources`) and takes
each through the stages of :mod:`~mrag.ingestion.stages`: plan (hash, compare with the ledger and
the extraction signature of :mod:`~mrag.ingestion.signature`), parse in the worker process, cut
text into chunks (:mod:`~mrag.ingestion.chunking`), embed chunks and pictures, build points, and
write one source at a time. :mod:`~mrag.ingestion.report` holds what a run reports,
:mod:`~mrag.ingestion.events` the hooks a progress display (:mod:`~mrag.ingestion.progress`)
listens on, :mod:`~mrag.ingestion.timing` where the time went. :mod:`~mrag.ingestion.pipeline`
says what to read and how; :mod:`~mrag.ingestion.ray` runs the same stages on a Ray cluster.
"""
