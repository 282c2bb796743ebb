"""The hooks a run calls as it goes, for a progress display (:mod:`mrag.ingestion.progress`)."""

from __future__ import annotations

from mrag.ingestion.report import FileOutcome


class Events:
    """Progress hooks; the default does nothing. Called from the process that runs
    :func:`mrag.ingest` (the driver, on Ray), in this order: :meth:`status` while the run gets
    ready, :meth:`start`, then per file :meth:`parsed` and per embedding batch :meth:`embedded`,
    and :meth:`file_done` once per source."""

    def status(self, message: str) -> None:
        """What the run is doing now ("listing files", "hashing 12 files", "loading the model")."""

    def start(self, total: int) -> None:
        """``total`` files were found (skipped ones included)."""

    def parsed(self, chunks: int, images: int) -> None:
        """One file was parsed and cut into ``chunks`` chunks and ``images`` kept images, which
        the run now has to embed."""

    def embedded(self, modality: str, items: int, seconds: float) -> None:
        """One batch of ``items`` chunks (``modality`` "text") or images ("image") was embedded."""

    def file_done(self, outcome: FileOutcome) -> None:
        """A source is settled: written, unchanged, skipped, failed or deleted."""
