"""Micro-batching: concurrent requests share model batches, run by one worker thread.

One forward pass over 32 inputs costs far less than 32 passes over one, so a server that runs
each request on its own wastes most of the model's throughput as soon as clients send requests in
parallel. :class:`MicroBatcher` queues each request's inputs as a *job*; a single worker thread
takes jobs in arrival order, packs up to ``max_batch_size`` inputs from several of them into one
call of the model, and hands each job its own rows of the result.

Waiting for company is bounded and only happens when it can pay off: the worker waits (at most
``max_wait`` after the first queued job arrived) only while other requests are still being
prepared (parsed, tokenised, their images decoded) and so are about to submit. A lone request on an
idle server runs at once, and a request that already waited in the queue while the model was busy
waits no longer.

Running the model on one thread keeps torch's own intra-op parallelism for the batch instead of
several threads fighting over the same cores. If a batch fails, its jobs are retried one by one,
so a bad input fails only the request it came from.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from mrag.model import JinaClipModel

DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_MAX_WAIT = 0.005


class QueueFull(RuntimeError):
    """Too many inputs are already waiting for the model; the caller should answer 503."""


class BatcherClosed(RuntimeError):
    """The batcher was shut down before a job ran."""


@dataclass
class _Job:
    kind: str  # "text", "image" or "call"
    items: list[Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.monotonic)

    @property
    def size(self) -> int:
        return len(self.items)


@dataclass
class BatcherStats:
    """Counters of the work done so far, for ``/healthz`` and benchmarks."""

    batches: int = 0
    inputs: int = 0
    largest_batch: int = 0
    failed_jobs: int = 0

    def as_dict(self) -> dict[str, float | int]:
        mean = self.inputs / self.batches if self.batches else 0.0
        return {
            "batches": self.batches,
            "inputs": self.inputs,
            "mean_batch_size": round(mean, 2),
            "largest_batch": self.largest_batch,
            "failed_jobs": self.failed_jobs,
        }


def _resolve(job: _Job, result: Any = None, error: BaseException | None = None) -> None:
    def settle() -> None:
        if job.future.done():  # the client went away and the request was cancelled
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    with contextlib.suppress(RuntimeError):  # the event loop is already closed: nobody waits
        job.loop.call_soon_threadsafe(settle)


class MicroBatcher:
    """Gathers concurrent embedding requests into model batches on one worker thread.

    Args:
        model: the loaded model; only the worker thread calls it.
        max_batch_size: most inputs in one model call (one large job may exceed it; the model
            then splits it into batches of this size itself).
        max_wait: longest time in seconds a queued job waits for others to join its batch.
        max_queued_inputs: inputs allowed to wait; beyond it :meth:`embed_texts` and
            :meth:`embed_images` raise :class:`QueueFull` instead of queueing without bound.
        max_text_tokens: ``max_length`` passed to the model; the caller refuses longer texts,
            so nothing is truncated silently.

    Use it from one asyncio event loop; call :meth:`start` first and :meth:`close` at shutdown.
    """

    def __init__(
        self,
        model: JinaClipModel,
        *,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_wait: float = DEFAULT_MAX_WAIT,
        max_queued_inputs: int = 4096,
        max_text_tokens: int = 512,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if max_wait < 0:
            raise ValueError("max_wait must not be negative")
        self.model = model
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.max_queued_inputs = max_queued_inputs
        self.max_text_tokens = max_text_tokens
        self.stats = BatcherStats()
        self._jobs: collections.deque[_Job] = collections.deque()
        self._queued_inputs = 0
        self._preparing = 0
        self._closed = False
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        with self._condition:
            if self._thread is not None:
                return
            self._closed = False
            self._thread = threading.Thread(target=self._work, name="mrag-model", daemon=True)
            self._thread.start()

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop taking jobs, finish the batch in progress, fail whatever is still queued."""
        with self._condition:
            self._closed = True
            pending = list(self._jobs)
            self._jobs.clear()
            self._queued_inputs = 0
            self._condition.notify_all()
            thread, self._thread = self._thread, None
        for job in pending:
            _resolve(job, error=BatcherClosed("the server is shutting down"))
        if thread is not None:
            thread.join(timeout)

    @property
    def queued_inputs(self) -> int:
        """Inputs waiting for the model right now."""
        return self._queued_inputs

    # -- submitting ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def preparing(self) -> Iterator[None]:
        """Mark a request as about to submit, so that a forming batch may wait for it.

        Wrap the parsing and decoding of a request together with its ``submit_*`` calls.
        """
        with self._condition:
            self._preparing += 1
        try:
            yield
        finally:
            with self._condition:
                self._preparing -= 1
                self._condition.notify_all()

    def _submit(self, kind: str, items: list[Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not items:
            future.set_result(self._empty(kind))
            return future
        job = _Job(kind, items, loop, future)
        with self._condition:
            if self._closed or self._thread is None:
                raise BatcherClosed("the model worker is not running")
            if self._queued_inputs + job.size > self.max_queued_inputs and self._jobs:
                raise QueueFull(
                    f"{self._queued_inputs} inputs are already waiting for the model; retry later"
                )
            self._jobs.append(job)
            self._queued_inputs += job.size
            self._condition.notify_all()
        return future

    def _empty(self, kind: str) -> Any:
        return np.zeros((0, self.model.embedding_dim), dtype=np.float32) if kind != "call" else None

    def submit_texts(self, texts: list[str]) -> asyncio.Future[np.ndarray]:
        """Queue texts; the future gives their L2-normalised embeddings, one row per text."""
        return self._submit("text", list(texts))

    def submit_images(self, images: list[Image.Image]) -> asyncio.Future[np.ndarray]:
        """Queue decoded RGB images; the future gives their L2-normalised embeddings."""
        return self._submit("image", list(images))

    def submit_call(self, function: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run ``function`` on the model thread, in turn with the batches; for rare extra uses."""
        return self._submit("call", [function])

    async def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Embed texts through the shared batches."""
        return await self.submit_texts(texts)

    async def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        """Embed decoded images through the shared batches."""
        return await self.submit_images(images)

    # -- the worker ------------------------------------------------------------------------------

    def _take(self) -> list[_Job] | None:
        """Block until a batch is due; return its jobs, or None once closed."""
        with self._condition:
            while not self._jobs:
                if self._closed:
                    return None
                self._condition.wait()
            deadline = self._jobs[0].enqueued + self.max_wait
            while self._queued_inputs < self.max_batch_size and self._preparing > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    break
                self._condition.wait(remaining)
            taken: list[_Job] = []
            count = 0
            while self._jobs and (not taken or count + self._jobs[0].size <= self.max_batch_size):
                job = self._jobs.popleft()
                taken.append(job)
                count += job.size
            self._queued_inputs -= count
            return taken

    def _work(self) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            for kind in ("text", "image", "call"):
                group = [job for job in jobs if job.kind == kind and not job.future.done()]
                if group:
                    self._run_group(kind, group)

    def _run(self, kind: str, items: list[Any]) -> Any:
        if kind == "text":
            return self.model.encode_text(
                items, batch_size=self.max_batch_size, max_length=self.max_text_tokens
            )
        if kind == "image":
            # Sizes were checked (against a tighter limit) when the images were decoded.
            return self.model.encode_image(items, batch_size=self.max_batch_size, max_pixels=2**62)
        return items[0]()

    def _run_group(self, kind: str, jobs: list[_Job]) -> None:
        if kind == "call":
            for job in jobs:
                self._run_jobs_alone(kind, [job])
            return
        items = [item for job in jobs for item in job.items]
        try:
            vectors = self._run(kind, items)
        except Exception:
            # Something in the batch is bad: run each job on its own so only its owner fails.
            self._run_jobs_alone(kind, jobs)
            return
        self._count(len(items))
        start = 0
        for job in jobs:
            _resolve(job, vectors[start : start + job.size])
            start += job.size

    def _run_jobs_alone(self, kind: str, jobs: list[_Job]) -> None:
        for job in jobs:
            try:
                result = self._run(kind, job.items)
            except Exception as exc:
                self.stats.failed_jobs += 1
                _resolve(job, error=exc)
            else:
                if kind != "call":
                    self._count(job.size)
                _resolve(job, result)

    def _count(self, size: int) -> None:
        self.stats.batches += 1
        self.stats.inputs += size
        self.stats.largest_batch = max(self.stats.largest_batch, size)
