"""Parsing files in a separate process, so that one hostile file cannot hang or sink a run.

The parsers check their own page and time limits between pages, but a single pathological object
inside a PDF can still loop or allocate without end. A child process bounds both for real: its
address space is capped (``RLIMIT_AS``), and it is killed and replaced when a file overruns its
time budget. It also lets parsing of the next file overlap with embedding of the previous one.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from .document import ExtractionError, ExtractionLimits, ParsedDocument
from .figures import ImageFilter
from .ocr import OcrSettings

#: Extra seconds past the cooperative time budget before the worker is killed.
KILL_GRACE_S = 15.0


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


def _serve(connection: Connection, memory_mb: int) -> None:
    """Worker loop: receive jobs, send back ``(status, payload, seconds)``; ``None`` ends it."""
    from .formats import parse

    _limit_memory(memory_mb)
    while True:
        job = connection.recv()
        if job is None:
            return
        started = time.perf_counter()
        try:
            document = parse(
                job.path,
                limits=job.limits,
                passwords=job.passwords,
                image_filter=job.image_filter,
                ocr=job.ocr,
            )
            reply: tuple[str, object, float] = ("ok", document, time.perf_counter() - started)
        except ExtractionError as exc:
            reply = ("error", str(exc), time.perf_counter() - started)
        except MemoryError:
            reply = (
                "error",
                f"{job.path}: needs more than the {memory_mb} MB memory limit (limits.memory_mb)",
                time.perf_counter() - started,
            )
        try:
            connection.send(reply)
        except MemoryError:
            connection.send(("error", f"{job.path}: result too large to hand over", 0.0))


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
    ) -> None:
        self.limits = limits
        self.image_filter = image_filter
        self.passwords = tuple(passwords)
        self.memory_mb = memory_mb
        self.ocr = ocr
        self.kill_after_s = kill_after_s or limits.time_budget_s + KILL_GRACE_S
        self._context = multiprocessing.get_context("spawn")
        self._process: multiprocessing.process.BaseProcess | None = None
        self._connection: Connection | None = None
        self._pending: tuple[Path, float] | None = None

    def _start(self) -> Connection:
        if self._process is None or not self._process.is_alive():
            parent, child = self._context.Pipe()
            self._process = self._context.Process(
                target=_serve, args=(child, self.memory_mb), daemon=True, name="mrag-parser"
            )
            self._process.start()
            child.close()
            self._connection = parent
        assert self._connection is not None
        return self._connection

    def submit(self, path: Path) -> None:
        """Start parsing ``path``; at most one file may be in flight."""
        if self._pending is not None:
            raise RuntimeError("a file is already being parsed")
        job = ParseJob(path, self.limits, self.passwords, self.image_filter, self.ocr)
        self._start().send(job)
        self._pending = (path, time.monotonic())

    def result(self) -> tuple[ParsedDocument, float]:
        """The parsed document of the submitted file and the seconds parsing took.

        Raises :class:`ExtractionError` naming the file and the reason on any failure, including
        a worker that crashed or ran out of time.
        """
        if self._pending is None:
            raise RuntimeError("no file was submitted")
        path, submitted = self._pending
        self._pending = None
        connection = self._connection
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
        assert isinstance(payload, ParsedDocument)
        return payload, seconds

    def _kill(self) -> int | None:
        process, self._process = self._process, None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if process is None:
            return None
        if process.is_alive():
            process.kill()
        process.join(timeout=5)
        return process.exitcode

    def close(self) -> None:
        """Stop the worker (politely if it is idle)."""
        if self._process is not None and self._process.is_alive() and self._pending is None:
            try:
                assert self._connection is not None
                self._connection.send(None)
                self._process.join(timeout=5)
            except (OSError, AssertionError):
                pass
        self._kill()
        self._pending = None

    def __enter__(self) -> ParserProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
