"""Ingestion jobs run inside the server, one at a time, on the server's own store and model.

A job calls :func:`mrag.ingest` (the same run as ``mrag ingest``: guard rails, ledger, outcomes)
on a worker thread, so the event loop keeps answering searches meanwhile. Progress and each
file's outcome are kept for ``GET /v1/jobs/{id}``.

A job that a crash interrupts can leave points of a source whose ledger entry was never written.
Each job writes a journal (the sources it covers) before it starts and removes it when done; at
start-up the server deletes the points of any journalled source without a ledger entry, so every
source is either wholly in the store or not in it at all, and uploading it again finishes it.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio

from mrag.ingestion.events import Events
from mrag.ingestion.report import FileOutcome
from mrag.ingestion.run import ingest
from mrag.model import JinaClipModel
from mrag.server.shared import SharedStore
from mrag.store.source_names import source_key

logger = logging.getLogger("mrag.server")

#: Finished jobs kept for ``GET /v1/jobs/{id}``; older ones are forgotten.
_KEPT_JOBS = 256


@dataclass
class FileState:
    """One file of a job: where it is, then what ingesting it did."""

    name: str
    source: str
    bytes: int
    status: str = "queued"
    reason: str | None = None
    pages: int = 0
    chunks: int = 0
    images: int = 0
    points: int = 0


@dataclass
class Job:
    """One upload's ingestion."""

    id: str
    files: list[FileState]
    #: What the run is given: the files, or folders whose files join ``files`` as they finish.
    paths: list[str] = field(default_factory=list)
    total: int = 0
    status: str = "queued"  # queued, running, done, failed
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None

    def to_dict(self) -> dict[str, Any]:
        done = sum(1 for item in self.files if item.status not in ("queued", "ingesting"))
        return {
            "object": "job",
            "id": self.id,
            "status": self.status,
            "error": self.error,
            "progress": {"done": done, "total": max(self.total, len(self.files))},
            "created": self.created,
            "finished": self.finished,
            "files": [asdict(item) for item in self.files],
        }


class _JobEvents(Events):
    """The run's progress hooks: each file's outcome goes into the job as soon as it is known."""

    def __init__(self, job: Job, lock: threading.Lock) -> None:
        super().__init__()
        self.job = job
        self.lock = lock
        self.by_source = {item.source: item for item in job.files}

    def start(self, total: int) -> None:
        """The run knows how many files it has."""
        with self.lock:
            self.job.total = total

    def file_done(self, outcome: FileOutcome) -> None:
        """Record ``outcome`` in the file's state."""
        with self.lock:
            item = self.by_source.get(outcome.source)
            if item is None:  # a file found in a folder
                item = FileState(name=outcome.path, source=outcome.source, bytes=0)
                self.job.files.append(item)
                self.by_source[item.source] = item
            item.status = outcome.status
            item.reason = outcome.reason
            item.pages, item.chunks = outcome.pages, outcome.chunks
            item.images, item.points = outcome.images, outcome.points


class JobRunner:
    """A queue of ingestion jobs and the thread that runs them in order."""

    def __init__(self, shared: SharedStore, model: JinaClipModel, journal: Path) -> None:
        self.shared = shared
        self.model = model
        self.journal = journal
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Repair what an interrupted job left, then start the worker."""
        self.recover()
        self._thread = threading.Thread(target=self._work, name="mrag-ingest", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the running job (queued ones are dropped; their files stay uploaded)."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, files: list[FileState], folders: Sequence[str] = ()) -> Job:
        """Queue a job for ``files`` (already saved) and ``folders``, and return it."""
        paths = [item.source for item in files] + list(folders)
        job = Job(id=uuid.uuid4().hex, files=list(files), paths=paths, total=len(files))
        with self._lock:
            self._jobs[job.id] = job
            for old in list(self._jobs)[: max(0, len(self._jobs) - _KEPT_JOBS)]:
                del self._jobs[old]
        self._queue.put(job)
        return job

    async def wait(self, job_id: str, poll: float = 0.2) -> dict[str, Any] | None:
        """The job's final snapshot, once it has finished."""
        while True:
            found = self.get(job_id)
            if found is None or found["status"] in ("done", "failed"):
                return found
            await anyio.sleep(poll)

    def get(self, job_id: str) -> dict[str, Any] | None:
        """A snapshot of job ``job_id``, or None for an unknown id."""
        with self._lock:
            job = self._jobs.get(job_id)
            return job.to_dict() if job is not None else None

    @property
    def busy(self) -> bool:
        """Whether a job is queued or running."""
        with self._lock:
            return any(job.status in ("queued", "running") for job in self._jobs.values())

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            self._run(job)

    def _run(self, job: Job) -> None:
        with self._lock:
            job.status = "running"
            for item in job.files:
                item.status = "ingesting"
        journal = self._write_journal(job)
        try:
            store = self.shared.store()
            events: Any = _JobEvents(job, self._lock)
            ingest(job.paths, store=store, model=self.model, events=events)
            status, error = "done", None
        except Exception as exc:  # a store or model failure ends the job, never the server
            logger.exception("ingestion job %s failed", job.id)
            status, error = "failed", str(exc) or type(exc).__name__
        with self._lock:
            job.status, job.error, job.finished = status, error, time.time()
            for item in job.files:
                if item.status == "ingesting":
                    item.status, item.reason = "failed", error or "not reached"
        journal.unlink(missing_ok=True)

    def _write_journal(self, job: Job) -> Path:
        self.journal.mkdir(parents=True, exist_ok=True)
        path = self.journal / f"{job.id}.json"
        path.write_text(json.dumps(job.paths), encoding="utf-8")
        return path

    def recover(self) -> None:
        """Delete points of journalled sources that never got their ledger entry."""
        if not self.journal.is_dir():
            return
        store = None
        for path in sorted(self.journal.glob("*.json")):
            try:
                sources = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                sources = []
            store = store or self.shared.store()
            for source in _journalled_sources(sources):
                if store.source_record(source) is None:
                    removed = store.delete_source(source)
                    if removed:
                        logger.warning("removed %d points of interrupted %s", removed, source)
            path.unlink(missing_ok=True)


def _journalled_sources(entries: Any) -> Iterator[str]:
    """The sources a journal covers: its files, and every file under its folders."""
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, str):
            continue
        path = Path(entry)
        if path.is_dir():
            yield from (source_key(found) for found in path.rglob("*") if found.is_file())
        else:
            yield entry
