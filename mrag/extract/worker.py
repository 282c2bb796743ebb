"""Parsing files in a separate process, so that one hostile file cannot hang or sink a run.

The parsers check their own page and time limits between pages, but a single pathological object
inside a PDF can still loop or allocate without end. A child process bounds both for real: its
address space is capped (``RLIMIT_AS``), and it is killed and replaced when a file overruns its
time budget. It also lets parsing of the next file overlap with embedding of the previous one.
A worker can be given a ``prepare`` step (:class:`Setup`) that runs on each parsed document
before it is handed back, under the same guard rails, so that work which needs no model (cutting
text into chunks, encoding pictures) is done on the workers' cores too.

The worker is a fresh interpreter running ``python -c`` with :func:`main`, talking over two
pipes. Unlike a ``multiprocessing`` spawn it never re-imports the caller's ``__main__``, so a
script that calls :func:`mrag.ingest` without an ``if __name__ == "__main__":`` guard works, and
it imports ``mrag`` from the same place as the caller.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from mrag.extract.document import ExtractionError, ExtractionLimits, ParsedDocument
from mrag.extract.figures import ImageFilter
from mrag.extract.ocr import OcrSettings
from mrag.extract.ocr_slots import SharedSlots, install

#: Extra seconds past the cooperative time budget before the worker is killed.
KILL_GRACE_S = 15.0
#: How long a new worker may take to import the parsers and say it is ready.
START_TIMEOUT_S = 120.0
#: The folder ``mrag`` is imported from here; the worker imports it from the same folder.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_BOOTSTRAP = (
    "import sys; sys.path[0] = sys.argv[1]; "
    "from mrag.extract.worker import main; main(sys.argv[2:])"
)


class WorkerError(RuntimeError):
    """The parser worker could not be started at all."""


@dataclass(frozen=True)
class ParseJob:
    path: Path
    limits: ExtractionLimits
    passwords: tuple[str, ...]
    image_filter: ImageFilter
    ocr: OcrSettings | None = None


def _limit_memory(memory_mb: int) -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on every platform
        return
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@dataclass(frozen=True)
class Setup:
    """Sent once to a new worker: what to make of each parsed document before handing it back
    (called with the file's path and its :class:`ParsedDocument`)."""

    prepare: Callable[[Path, ParsedDocument], Any]


def _serve(jobs: Connection, replies: Connection, memory_mb: int) -> None:
    """Worker loop: receive jobs, send back ``(status, payload, seconds)``; ``None`` ends it."""
    # Imported before the memory cap: the parsers' imports are not what the cap is for.
    import mrag.extract.read  # noqa: F401

    _limit_memory(memory_mb)
    replies.send(("ready", None, 0.0))
    prepare: Callable[[Path, ParsedDocument], Any] | None = None
    while True:
        try:
            job = jobs.recv()
        except EOFError:
            return
        if job is None:
            return
        if isinstance(job, Setup):
            prepare = job.prepare
            continue
        reply = _run(job, prepare, memory_mb)
        try:
            replies.send(reply)
        except MemoryError:
            replies.send(("error", f"{job.path}: result too large to hand over", 0.0))


def _run(
    job: ParseJob, prepare: Callable[[Path, ParsedDocument], Any] | None, memory_mb: int
) -> tuple[str, object, float]:
    """Parse (and prepare) one file: ``("ok", result, seconds)`` or ``("error", reason, ...)``."""
    from mrag.extract.read import parse

    started = time.perf_counter()
    try:
        document = parse(
            job.path,
            limits=job.limits,
            passwords=job.passwords,
            image_filter=job.image_filter,
            ocr=job.ocr,
        )
        result = document if prepare is None else prepare(job.path, document)
        return ("ok", result, time.perf_counter() - started)
    except ExtractionError as exc:
        return ("error", str(exc), time.perf_counter() - started)
    except MemoryError:
        return (
            "error",
            f"{job.path}: needs more than the {memory_mb} MB memory limit (limits.memory_mb)",
            time.perf_counter() - started,
        )


def main(argv: Sequence[str]) -> None:
    """The worker process: ``JOBS_FD REPLIES_FD MEMORY_MB [SLOTS_FD WIDTH INDEX]`` (started by
    :class:`ParserProcess`; the last three when it is one of a pool's workers)."""
    jobs_fd, replies_fd, memory_mb, *slots = (int(value) for value in argv)
    if slots:
        fd, width, index = slots
        install(SharedSlots(fd, width, index))
    _serve(Connection(jobs_fd, writable=False), Connection(replies_fd, readable=False), memory_mb)


class ParserProcess:
    """A parsing worker with one job in flight at a time.

    ``submit`` hands it a file; ``result`` waits for the outcome, kills the worker if it runs past
    the file's time budget (plus :data:`KILL_GRACE_S`), and starts a fresh one for the next file.
    """

    def __init__(
        self,
        *,
        limits: ExtractionLimits,
        image_filter: ImageFilter,
        passwords: Sequence[str] = (),
        memory_mb: int = 8192,
        kill_after_s: float | None = None,
        ocr: OcrSettings | None = None,
        prepare: Callable[[Path, ParsedDocument], Any] | None = None,
    ) -> None:
        self.limits = limits
        self.image_filter = image_filter
        self.passwords = tuple(passwords)
        self.memory_mb = memory_mb
        self.ocr = ocr
        self.prepare = prepare
        self.kill_after_s = kill_after_s or limits.time_budget_s + KILL_GRACE_S
        self._process: subprocess.Popen[bytes] | None = None
        self._jobs: Connection | None = None
        self._replies: Connection | None = None
        self._pending: tuple[Path, float] | None = None
        #: The pool's OCR slots, as this worker's view of them (set by the pool before the
        #: first file): OCR of one file may then borrow the cores of idle workers.
        self.ocr_slots: SharedSlots | None = None

    def _start(self) -> Connection:
        if self._process is None or self._process.poll() is not None:
            self._kill()
            jobs_read, jobs_write = os.pipe()
            replies_read, replies_write = os.pipe()
            arguments = [str(jobs_read), str(replies_write), str(self.memory_mb)]
            shared: tuple[int, ...] = ()
            if self.ocr_slots is not None and self.ocr_slots.index is not None:
                slots = self.ocr_slots
                arguments += [str(slots.fd), str(slots.width), str(slots.index)]
                shared = (slots.fd,)
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-c", _BOOTSTRAP, _PACKAGE_ROOT, *arguments],
                    pass_fds=(jobs_read, replies_write, *shared),
                    stdin=subprocess.DEVNULL,
                    # Parsers that print must not mix into the caller's output (--json).
                    stdout=subprocess.DEVNULL,
                )
            except OSError as exc:
                for fd in (jobs_read, jobs_write, replies_read, replies_write):
                    os.close(fd)
                raise WorkerError(f"cannot start the parser worker ({exc})") from None
            os.close(jobs_read)
            os.close(replies_write)
            self._jobs = Connection(jobs_write, readable=False)
            self._replies = Connection(replies_read, writable=False)
            self._wait_ready()
            if self.prepare is not None:
                assert self._jobs is not None
                self._jobs.send(Setup(self.prepare))
        assert self._jobs is not None
        return self._jobs

    def _wait_ready(self) -> None:
        assert self._replies is not None
        try:
            if self._replies.poll(START_TIMEOUT_S):
                status, _, _ = self._replies.recv()
                if status == "ready":
                    return
        except (EOFError, OSError):
            pass
        code = self._kill()
        raise WorkerError(
            f"the parser worker did not start ({sys.executable}, exit code {code}); "
            "its error is on stderr above"
        )

    def submit(self, path: Path) -> None:
        """Start parsing ``path``; at most one file may be in flight."""
        if self._pending is not None:
            raise RuntimeError("a file is already being parsed")
        job = ParseJob(path, self.limits, self.passwords, self.image_filter, self.ocr)
        try:
            self._start().send(job)
        except OSError:  # the worker died since its last reply: start a fresh one
            self._kill()
            self._start().send(job)
        self._pending = (path, time.monotonic())

    @property
    def busy(self) -> bool:
        """Whether a file was submitted and its result not yet taken."""
        return self._pending is not None

    @property
    def pid(self) -> int | None:
        """The worker's process id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def replies(self) -> Connection | None:
        """The connection the result arrives on (to wait on several workers at once)."""
        return self._replies

    def seconds_left(self) -> float:
        """How long the file in flight may still take before :meth:`result` kills the worker."""
        if self._pending is None:
            return float("inf")
        return self.kill_after_s - (time.monotonic() - self._pending[1])

    def result(self) -> tuple[Any, float]:
        """The parsed document of the submitted file (what ``prepare`` made of it, when the
        worker was given one) and the seconds parsing (and preparing) took.

        Raises :class:`ExtractionError` naming the file and the reason on any failure, including
        a worker that crashed or ran out of time.
        """
        if self._pending is None:
            raise RuntimeError("no file was submitted")
        path, submitted = self._pending
        self._pending = None
        connection = self._replies
        assert connection is not None
        remaining = self.kill_after_s - (time.monotonic() - submitted)
        try:
            ready = connection.poll(max(0.0, remaining))
            if not ready:
                self._kill()
                raise ExtractionError(
                    f"{path}: over the time budget (stopped after {self.kill_after_s:.0f} s)"
                )
            status, payload, seconds = connection.recv()
        except (EOFError, ConnectionError, OSError):
            code = self._kill()
            raise ExtractionError(f"{path}: the parser crashed (exit code {code})") from None
        if status != "ok":
            raise ExtractionError(str(payload))
        return payload, seconds

    def _kill(self) -> int | None:
        process, self._process = self._process, None
        for connection in (self._jobs, self._replies):
            if connection is not None:
                connection.close()
        self._jobs = self._replies = None
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        try:
            return process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - a kill that does not take
            return None

    def close(self) -> None:
        """Stop the worker (politely if it is idle)."""
        if self._process is not None and self._process.poll() is None and self._pending is None:
            try:
                assert self._jobs is not None
                self._jobs.send(None)
                self._process.wait(timeout=5)
            except (OSError, AssertionError, subprocess.TimeoutExpired):
                pass
        self._kill()
        self._pending = None

    def __enter__(self) -> ParserProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
