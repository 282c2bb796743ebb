"""Where a run's time goes: seconds per stage, summed over files and batches."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager


class Timings(Counter[str]):
    """Seconds spent per stage ("hash", "chunk", "model_text", ...), added up over a run.

    A :class:`~collections.Counter`, so timings measured elsewhere (the parser worker, Ray
    actors) merge with :meth:`update`.
    """

    @contextmanager
    def measure(self, stage: str) -> Iterator[Stopwatch]:
        """Add the time the ``with`` block takes to ``stage``, also when it raises; the
        :class:`Stopwatch` it yields tells the seconds afterwards."""
        watch = Stopwatch()
        try:
            yield watch
        finally:
            watch.stop()
            self[stage] += watch.seconds


class Stopwatch:
    """Seconds from its creation to :meth:`stop`."""

    def __init__(self) -> None:
        self._started = time.perf_counter()
        self.seconds = 0.0

    def stop(self) -> float:
        self.seconds = time.perf_counter() - self._started
        return self.seconds
