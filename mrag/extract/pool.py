"""Several parser workers at once, results handed back in the order the files were given.

Each worker is a :class:`~mrag.extract.worker.ParserProcess` with its own guard rails (memory
cap, time budget, kill and restart), so a file that crashes or hangs its worker fails alone while
the other workers go on. Results come back in submission order whatever finishes first: what is
written from them (point ids, ledger) does not depend on the number of workers. Files are handed
out at most ``lookahead`` past the oldest one the caller has not taken yet, which bounds the
memory of parsed documents that wait.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from mrag.extract.document import ExtractionError, ParsedDocument
from mrag.extract.ocr_slots import SharedSlots
from mrag.extract.worker import ParserProcess

#: Memory planned per worker for ``workers = "auto"``. The worker's cap (``limits.memory_mb``)
#: bounds its address space, which runs far above what it keeps resident (PDFium and the
#: interpreter map more than they touch), so the plan uses this figure when it is the smaller.
PLANNED_WORKER_MB = 2048

#: One parsed file (or what the workers' ``prepare`` step made of it), or the error that failed it.
Outcome = ParsedDocument | Any | ExtractionError


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not on every platform
        return os.cpu_count() or 1


def available_memory_mb() -> int | None:
    """Memory the system can hand out without swapping (``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        return pages * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)
    except (AttributeError, OSError, ValueError):  # pragma: no cover
        return None


def auto_workers(memory_mb: int, files: int) -> int:
    """How many workers ``workers = "auto"`` starts: one per usable core, no more than the
    memory available allows at :data:`PLANNED_WORKER_MB` (or the cap, if smaller) each, and no
    more than there are files."""
    count = usable_cores()
    available = available_memory_mb()
    if available is not None:
        count = min(count, available // min(memory_mb, PLANNED_WORKER_MB))
    return max(1, min(count, files))


#: How long the feeding thread waits at most before it looks whether the pool is closing.
_POLL_S = 0.2


class ParserPool:
    """``size`` parser workers made by ``make``, started when first needed.

    :meth:`parse` hands files out to idle workers from a thread of its own, so the workers go
    on parsing while the caller embeds, and yields each file's outcome in the order the files
    were given. Files are handed out at most ``lookahead`` (default eight per worker) past the
    oldest one the caller has not taken yet: a slow file, a long scan say, then holds up
    neither the other workers nor, beyond that, the memory, and the workers go on parsing while
    the caller embeds what it took. (Measured on 118 PDFs on two cores: a look-ahead of one per
    worker left a worker idle behind each slow file, and four took ``auto`` from 1.40x to
    1.49-1.58x one worker. The workers then still stopped whenever two files per worker waited
    for the caller, which takes the files of 256 chunks before it embeds them; without that
    stop, and with eight per worker, the cores no longer go idle mid-run.)

    The pool owns ``cores`` OCR slots (default: one per worker; more when there are fewer files
    than cores, so that one long scan still spreads): a worker OCRing a file's pages borrows
    those no other worker uses (:mod:`mrag.extract.ocr_slots`).
    """

    def __init__(
        self,
        size: int,
        make: Callable[[], ParserProcess],
        *,
        lookahead: int | None = None,
        cores: int | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a parser pool needs at least one worker")
        self.size = size
        self.cores = max(size, cores or size)
        self.lookahead = max(size, lookahead if lookahead is not None else 8 * size)
        self._make = make
        self._workers: list[ParserProcess] = []
        self._stop = threading.Event()
        self._feeder: threading.Thread | None = None
        # One OCR slot per core the pool owns: a busy worker holds its own, OCR borrows the rest.
        self._slots: SharedSlots | None = None
        # How many outcomes the caller has taken; the feeding thread's window starts there.
        self._taken = 0
        # The caller's wake-up call to the feeding thread, which waits on the workers' pipes
        # and this socket at once: a taken file may open the window for an idle worker.
        self._wake_reader, self._wake_writer = socket.socketpair()
        for end in (self._wake_reader, self._wake_writer):
            end.setblocking(False)

    def parse(self, paths: Sequence[Path]) -> Iterator[tuple[int, Outcome]]:
        """Each path's index with its parsed document or the error that failed it, in order.

        Raises :class:`~mrag.extract.worker.WorkerError` when a worker cannot start.
        """
        if self._feeder is not None:
            raise RuntimeError("the pool is already parsing")
        # Unbounded: the look-ahead window bounds what can be in it.
        results: queue.Queue[tuple[int, Outcome] | BaseException] = queue.Queue()
        self._stop.clear()
        self._taken = 0
        self._feeder = threading.Thread(
            target=self._feed, args=(paths, results), name="parser-pool", daemon=True
        )
        self._feeder.start()
        try:
            for _ in range(len(paths)):
                step = results.get()
                if isinstance(step, BaseException):
                    raise step
                self._taken += 1
                self._wake()
                yield step
        finally:
            self._halt()

    def _feed(self, paths: Sequence[Path], results: queue.Queue) -> None:
        """The feeding thread: keep the workers busy, queue the outcomes in order."""
        run = _Round(self, paths)
        queued = 0
        try:
            while queued < len(paths) and not self._stop.is_set():
                run.fill(self._taken)
                while queued in run.done:
                    results.put((queued, run.done.pop(queued)))
                    queued += 1
                if queued < len(paths):
                    run.collect(self._wake_reader)
        except BaseException as exc:  # handed to the caller, which raises it
            results.put(exc)

    def _wake(self) -> None:
        """Tell the feeding thread the caller took a file (one pending wake-up is enough)."""
        # Full (a wake-up is already pending) or closed: nothing more to say.
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    def _halt(self) -> None:
        """Stop the feeding thread (it checks at least every :data:`_POLL_S` seconds)."""
        feeder, self._feeder = self._feeder, None
        self._stop.set()
        self._wake()
        if feeder is not None:
            feeder.join()

    def idle_worker(self, running: dict[ParserProcess, int]) -> ParserProcess | None:
        """A worker with nothing in flight, started if the pool is not full yet."""
        for worker in self._workers:
            if worker not in running:
                return worker
        if len(self._workers) < self.size:
            worker = self._make()
            if self.cores > 1:
                if self._slots is None:
                    self._slots = SharedSlots.create(self.cores)
                worker.ocr_slots = self._slots.for_worker(len(self._workers))
            self._workers.append(worker)
            return worker
        return None

    def claim_slot(self, worker: ParserProcess) -> None:
        """``worker`` got a file: its OCR slot is its own until the result is back."""
        if self._slots is not None and worker.ocr_slots is not None:
            assert worker.ocr_slots.index is not None
            self._slots.claim(worker.ocr_slots.index)

    def settle_slot(self, worker: ParserProcess) -> None:
        """``worker``'s result is back (or it was killed): its slot, and any it still held
        borrowed, are free again."""
        if self._slots is not None and worker.ocr_slots is not None:
            assert worker.ocr_slots.index is not None
            self._slots.settle(worker.ocr_slots.index)

    def close(self) -> None:
        """Stop the feeding thread and every worker (killing those with a file in flight)."""
        self._halt()
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()
        slots, self._slots = self._slots, None
        if slots is not None:
            slots.close()
        self._wake_reader.close()
        self._wake_writer.close()

    def __enter__(self) -> ParserPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Round:
    """The bookkeeping of one :meth:`ParserPool.parse`: what runs where, what is done."""

    def __init__(self, pool: ParserPool, paths: Sequence[Path]) -> None:
        self.pool = pool
        self.paths = paths
        self.running: dict[ParserProcess, int] = {}
        self.done: dict[int, Outcome] = {}
        self.next = 0

    def fill(self, oldest: int) -> None:
        """Hand files to idle workers, at most ``lookahead`` beyond ``oldest``."""
        while self.next < len(self.paths) and self.next - oldest <= self.pool.lookahead:
            worker = self.pool.idle_worker(self.running)
            if worker is None:
                return
            worker.submit(self.paths[self.next])
            self.pool.claim_slot(worker)
            self.running[worker] = self.next
            self.next += 1

    def collect(self, wake: socket.socket | None = None) -> None:
        """Wait until a worker has a result or runs out of time, ``wake`` is written to, or a
        moment has passed; take what is there."""
        timeout = max(0.0, min([_POLL_S, *(worker.seconds_left() for worker in self.running)]))
        connections: list[Any] = [w.replies for w in self.running if w.replies is not None]
        if wake is not None:
            connections.append(wake)
        ready = set(wait(connections, timeout)) if connections else set()
        if wake in ready:
            _drain(wake)
        for worker in list(self.running):
            if worker.replies in ready or worker.seconds_left() <= 0:
                index = self.running.pop(worker)
                try:
                    self.done[index] = worker.result()[0]
                except ExtractionError as exc:
                    self.done[index] = exc
                finally:
                    self.pool.settle_slot(worker)


def _drain(wake: socket.socket) -> None:
    """Read the pending wake-up bytes (the socket does not block)."""
    with contextlib.suppress(OSError):  # BlockingIOError once it is empty
        while wake.recv(4096):
            pass
