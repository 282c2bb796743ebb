"""OCR slots: the cores of a parser pool that OCR of one file may borrow, and the page scheduler.

A pool of ``n`` parser workers owns ``n`` slots, one per core it plans for. A busy worker uses
its own slot whatever it parses; the slots of idle workers are free, and a worker with several
pages to OCR borrows them to run more Tesseract processes at once. So a long scan read at the
end of a run spreads over the cores the other workers left, and the pool never runs more than
``n`` workers' worth of work (for a moment more: when a worker gets a file while another still
OCRs a page on its slot, the slot is owed and nothing is borrowed until it is back).

The count lives in a small file shared by the pool and its workers (the free count, then one
cell per worker of what it borrowed), guarded by a POSIX record lock: the workers are separate
interpreters, and a worker killed while it borrows leaves its slots to the pool to hand back.

:func:`in_order` runs the pages: the caller's thread makes each page's task (it renders the
page, and PDFium must stay on one thread), a small thread pool runs the tasks on the slots, and
the results come back in page order whatever finishes first.
"""

from __future__ import annotations

import os
import struct
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Protocol, TypeVar

R = TypeVar("R")

#: How often a worker that waits for a free slot looks again (its own pages may finish first).
POLL_S = 0.1
_CELL = struct.Struct("<q")


class Slots(Protocol):
    """What a worker may borrow: ``width`` pages at most at once, its own slot included."""

    @property
    def width(self) -> int: ...

    def take(self) -> bool:
        """Borrow a free slot if there is one (never waits)."""
        ...

    def give(self) -> None:
        """Hand a borrowed slot back."""
        ...


class OwnSlot:
    """Outside a pool: the process's own slot only, one page at a time."""

    width = 1

    def take(self) -> bool:
        return False

    def give(self) -> None:
        raise RuntimeError("no OCR slot was borrowed")


class SharedSlots:
    """The slot count of a pool of ``width`` workers, kept in the file open as ``fd``.

    The pool makes it (:meth:`create`), :meth:`claim`\\ s a worker's slot when it hands the
    worker a file and :meth:`settle`\\ s it when the result is back; worker ``index`` borrows
    with :meth:`take` and :meth:`give` on its own view (:meth:`for_worker`).
    """

    def __init__(self, fd: int, width: int, index: int | None = None) -> None:
        self.fd = fd
        self.width = width
        self.index = index
        # Record locks are held per process: the threads of one process queue on this first.
        self._lock = threading.Lock()

    @classmethod
    def create(cls, width: int) -> SharedSlots:
        """A fresh count of ``width`` free slots (the file goes when the last descriptor does)."""
        with tempfile.TemporaryFile(prefix="mrag-ocr-slots-") as file:
            fd = os.dup(file.fileno())
        os.pwrite(fd, _CELL.pack(width) + _CELL.pack(0) * width, 0)
        return cls(fd, width)

    def for_worker(self, index: int) -> SharedSlots:
        """Worker ``index``'s view of the same count."""
        return SharedSlots(self.fd, self.width, index)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl  # POSIX only, and only a pool's shared count needs it

        with self._lock:
            fcntl.lockf(self.fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def _read(self, cell: int) -> int:
        return _CELL.unpack(os.pread(self.fd, _CELL.size, cell * _CELL.size))[0]

    def _write(self, cell: int, value: int) -> None:
        os.pwrite(self.fd, _CELL.pack(value), cell * _CELL.size)

    def _update(self, index: int, change: Callable[[int, int], tuple[int, int] | None]) -> bool:
        """Apply ``change(free, borrowed) -> (free, borrowed)`` for worker ``index`` at once;
        ``None`` changes nothing (and answers False)."""
        with self._locked():
            changed = change(self._read(0), self._read(1 + index))
            if changed is None:
                return False
            self._write(0, changed[0])
            self._write(1 + index, changed[1])
            return True

    def take(self) -> bool:
        assert self.index is not None, "only a worker borrows"
        return self._update(self.index, lambda free, had: (free - 1, had + 1) if free > 0 else None)

    def give(self) -> None:
        assert self.index is not None, "only a worker borrows"
        self._update(self.index, lambda free, had: (free + 1, had - 1))

    def claim(self, index: int) -> None:
        """Worker ``index`` got a file: its slot is in use (the count goes below zero while
        another worker still runs a page on it)."""
        self._update(index, lambda free, had: (free - 1, had))

    def settle(self, index: int) -> None:
        """Worker ``index`` is done, or was killed: its slot and all it borrowed are free."""
        self._update(index, lambda free, had: (free + 1 + had, 0))

    def free(self) -> int:
        """The slots free now (below zero: owed to workers that got a file)."""
        with self._locked():
            return self._read(0)

    def close(self) -> None:
        os.close(self.fd)


_installed: Slots = OwnSlot()


def install(slots: Slots) -> None:
    """Make ``slots`` the ones this process's OCR borrows from (a pool's worker, at its start)."""
    global _installed
    _installed = slots


def installed() -> Slots:
    """The slots this process may borrow: :class:`OwnSlot` unless it is a pool's worker."""
    return _installed


def in_order(tasks: Iterator[Callable[[], R]], slots: Slots) -> Iterator[R]:
    """Each task's result in the order of ``tasks``, up to ``slots.width`` of them run at once.

    ``tasks`` is pulled on the caller's thread one task ahead of what runs, so at most
    ``width + 1`` tasks exist at a time. One task at a time runs on the process's own slot, any
    more only on a slot borrowed for that task. With a width of one the tasks run on the
    caller's thread, one after the other.
    """
    if slots.width <= 1:
        for task in tasks:
            yield task()
        return
    pending: deque[Future[R]] = deque()
    own: Future[R] | None = None
    with ThreadPoolExecutor(slots.width, thread_name_prefix="ocr") as pool:
        for task in tasks:
            while True:
                if own is None or own.done():
                    own = pool.submit(task)
                    pending.append(own)
                    break
                if slots.take():
                    pending.append(pool.submit(_borrowed, task, slots))
                    break
                wait([f for f in pending if not f.done()], POLL_S, FIRST_COMPLETED)
                yield from _finished(pending)
            yield from _finished(pending)
        while pending:
            yield pending.popleft().result()


def _borrowed(task: Callable[[], R], slots: Slots) -> R:
    try:
        return task()
    finally:
        slots.give()


def _finished(pending: deque[Future[R]]) -> Iterator[R]:
    """The results at the front that are done, in order (a later one waits for the earlier)."""
    while pending and pending[0].done():
        yield pending.popleft().result()
