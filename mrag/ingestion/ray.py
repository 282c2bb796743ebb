"""Ingestion on a Ray cluster: the run of :func:`mrag.ingest`, spread over many machines.

The driver (where ``python -m mrag ingest --ray`` runs) lists the files, hashes them and skips
unchanged sources against the store's ledger, exactly as the local run does. The changed ones go
through a Ray Data pipeline:

1. **parser actors** (CPU; Ray Data grows their pool to the free CPUs) each hold one of the
   local run's guarded parser processes (memory cap, time budget, page limits), started once per
   actor rather than once per file; a file that fails comes back as an outcome with its reason,
   never as a failed task;
2. **model actors** (one model each; a GPU each on GPU nodes) chunk the parsed documents, embed
   chunks and images batched across files and sorted by length, and build the points;
3. **the driver writes** each source's points through the store's ``replace_source``, which
   records the source as done only after all of its points are written. One writer keeps the
   embedded store usable and the ledger's order simple; a job killed at any moment and run again
   ends as a clean run would.

Point ids, payloads and ledger entries are those of the local run, so a folder ingested with Ray
is "unchanged" to a run without it and the other way round. Ray is imported here and nowhere else.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray

from mrag.extract.document import ExtractionError
from mrag.ingestion.pipeline import Pipeline, RaySection
from mrag.ingestion.run import (
    Events,
    FileOutcome,
    IngestReport,
    _Embedded,
    _Embedder,
    _Prepared,
    _Run,
    _Todo,
    failure_reason,
    parser_process,
    run_ingest,
)
from mrag.ingestion.sources import SourceFile, display_path
from mrag.store import Store


def ingest_on_ray(
    paths: Sequence[str | Path],
    *,
    address: str | None = None,
    pipeline: Pipeline | None = None,
    store: Store | None = None,
    passwords: Sequence[str] = (),
    prune: bool = False,
    events: Events | None = None,
) -> IngestReport:
    """:func:`mrag.ingestion.run.ingest` on Ray: same arguments, same store contents, same report.

    Args:
        address: the Ray cluster (``auto``, ``host:port``, ``ray://host:port``); by default
            ``[ray] address`` of the pipeline, then ``RAY_ADDRESS`` (set by ``ray job submit``),
            else a Ray instance started on this machine for the run. When Ray is already
            initialised in this process, that cluster is used as it is.
        pipeline: settings; its ``[ray]`` section sizes the model actors.

    There is no ``model`` argument: each model actor loads its own, from the checkpoint named by
    ``[model] name`` on its node. The files must be readable at the same path on every node that
    runs parsers (a shared file system).
    """
    pipeline = pipeline or Pipeline()
    started_here = not ray.is_initialized()
    if started_here:
        address = address or pipeline.ray.address or None
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.WARNING,
            configure_logging=False,
        )
    try:
        if started_here and address in (None, "local") and not os.environ.get("RAY_ADDRESS"):
            _check_fits(pipeline.ray)
        return run_ingest(
            _RayRun,
            paths,
            pipeline=pipeline,
            store=store,
            passwords=passwords,
            prune=prune,
            events=events,
        )
    finally:
        if started_here:
            ray.shutdown()


def _check_fits(settings: RaySection) -> None:
    """A Ray instance started for this run cannot grow: refuse what it could never schedule,
    instead of waiting forever for resources that will not come."""
    resources = ray.cluster_resources()
    actors = settings.actors
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    needed_cpus = actors * settings.cpus_per_actor + settings.parse_cpus
    needed_gpus = actors * settings.gpus_per_actor
    if needed_cpus > cpus or needed_gpus > gpus:
        raise ValueError(
            f"[ray]: {actors} model actor(s) with {settings.cpus_per_actor:g} CPU and "
            f"{settings.gpus_per_actor:g} GPU each, plus a parser with {settings.parse_cpus:g} "
            f"CPU, need {needed_cpus:g} CPUs and {needed_gpus:g} GPUs; this machine has "
            f"{cpus:g} and {gpus:g} (lower ray.actors or the per-actor resources, or give a "
            "cluster address)"
        )


#: Ray Data settings of a run: the run's own progress display reports instead of Ray's bars; a
#: block lost with its worker (a node gone, an out-of-memory kill) must not end the job (its files
#: are reported as failed and the next run does them); parsed documents hold PIL images, which
#: Arrow cannot hold and Ray's object columns can.
_DATA_SETTINGS = {
    "enable_progress_bars": False,
    "print_on_execution_start": False,
    "max_errored_blocks": -1,
    "enable_fallback_to_arrow_object_ext_type": True,
}


@contextmanager
def _data_context() -> Iterator[None]:
    """Ray Data's settings for a run, restored afterwards: the process may run other datasets."""
    context = ray.data.DataContext.get_current()
    saved = {name: getattr(context, name) for name in _DATA_SETTINGS}
    for name, value in _DATA_SETTINGS.items():
        setattr(context, name, value)
    # Ray Data says so when its progress bars are off: they are replaced, not missing.
    progress_log = logging.getLogger("ray.data._internal.progress")
    level = progress_log.level
    progress_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        progress_log.setLevel(level)


# -- the driver ------------------------------------------------------------------------------------


class _RayRun(_Run):
    """The local run with the parse/chunk/embed loop replaced by a Ray Data pipeline."""

    def process(self, files: Sequence[SourceFile], passwords: Sequence[str]) -> None:
        todo = self.plan(files)
        if not todo:
            return
        items = [
            {
                "index": index,
                "path": str(item.file.path),
                "shown": display_path(item.file.source),
                "source": item.file.source,
                "content_hash": item.content_hash,
            }
            for index, item in enumerate(todo)
        ]
        done: set[int] = set()
        with _data_context():
            for row in self._dataset(items, passwords).iter_rows():
                done.add(int(row["index"]))
                self._merge(row["stats"])
                if row["embedded"] is not None:
                    embedded = row["embedded"]
                    embedded.todo = todo[int(row["index"])]  # with the driver's legacy name
                    self.write(embedded)
                else:
                    self._finish(FileOutcome(row["source"], "failed", row["reason"]))
        for index, item in enumerate(todo):
            if index not in done:
                reason = "lost on the Ray cluster (a worker died); run again to retry"
                self._finish(FileOutcome(item.file.source, "failed", reason))

    def _dataset(self, items: list[dict[str, Any]], passwords: Sequence[str]) -> Any:
        """Files → parser actors → model actors: rows of outcomes and points, one per file."""
        settings = self.pipeline.ray
        return (
            # One file a block: files stream to parsers and on to the model one by one.
            ray.data.from_items(items, override_num_blocks=len(items))
            .map_batches(
                _ParserActor,
                batch_size=1,
                batch_format="pandas",
                fn_constructor_kwargs={"pipeline": self.pipeline, "passwords": tuple(passwords)},
                # As many parsers as free CPUs allow; Ray Data grows the pool while the model
                # actors wait for input.
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=None),
                num_cpus=settings.parse_cpus,
            )
            .map_batches(
                _ModelActor,
                batch_size=settings.batch_size,
                batch_format="pandas",
                fn_constructor_kwargs={"pipeline": self.pipeline},
                compute=ray.data.ActorPoolStrategy(size=settings.actors),
                num_cpus=settings.cpus_per_actor,
                num_gpus=settings.gpus_per_actor,
            )
        )

    def _merge(self, stats: _BatchStats | None) -> None:
        if stats is None:
            return
        self.timings.update(stats.timings)
        self.report.real_tokens += stats.real_tokens
        self.report.padded_tokens += stats.padded_tokens
        self.report.dtype = self.report.dtype or stats.dtype
        self.report.device = self.report.device or stats.device
        for modality, items, seconds in stats.embedded:
            self.events.embedded(modality, items, seconds)


# -- parsing --------------------------------------------------------------------------------------


class _ParserActor:
    """A CPU worker holding one guarded parser process, as the local run does, for its lifetime:
    the process starts once per actor, not once per file, and is replaced after a crash or a
    file over its time budget. Failures come back as reasons, never as errors."""

    def __init__(self, pipeline: Pipeline, passwords: tuple[str, ...]) -> None:
        self.parser = parser_process(pipeline, passwords)

    def __call__(self, batch: Any) -> Any:
        documents: list[Any] = []
        reasons: list[str | None] = []
        seconds = []
        for path in batch["path"]:
            clock = time.perf_counter()
            try:
                self.parser.submit(Path(path))
                document, _ = self.parser.result()
            except ExtractionError as exc:
                documents.append(None)
                reasons.append(failure_reason(exc, path))
            else:
                documents.append(document)
                reasons.append(None)
            seconds.append(time.perf_counter() - clock)
        batch["document"] = documents
        batch["reason"] = reasons
        batch["parse_s"] = seconds
        return batch

    def __del__(self) -> None:
        self.parser.close()


# -- model actors ----------------------------------------------------------------------------------


@dataclass
class _BatchStats:
    """What one actor call measured, for the driver's report and progress display."""

    timings: Counter[str] = field(default_factory=Counter)
    real_tokens: int = 0
    padded_tokens: int = 0
    embedded: list[tuple[str, int, float]] = field(default_factory=list)
    #: The actor model's compute dtype and why, and its device, once it is loaded.
    dtype: str = ""
    device: str = ""


class _Recorder(Events):
    def __init__(self) -> None:
        self.embedded_calls: list[tuple[str, int, float]] = []

    def embedded(self, modality: str, items: int, seconds: float) -> None:
        self.embedded_calls.append((modality, items, seconds))


class _ModelActor:
    """One model, loaded once per actor: chunks, embeds and builds points for batches of files."""

    def __init__(self, pipeline: Pipeline) -> None:
        if pipeline.ray.gpus_per_actor > 0 and pipeline.model.device == "cpu":
            # Ray gave this actor a GPU (CUDA_VISIBLE_DEVICES): use it.
            pipeline = pipeline.override(model__device="cuda")
        self.pipeline = pipeline
        self.embedder = _Embedder(pipeline, None)
        # Ray sets OMP_NUM_THREADS to the floor of the CPUs reserved (1.75 -> 1); the model runs
        # on as many threads as CPUs reserved, rounded.
        import torch

        torch.set_num_threads(max(1, round(pipeline.ray.cpus_per_actor)))

    def __call__(self, batch: Any) -> Any:
        events = _Recorder()
        report = IngestReport()
        # The actor never touches the store: only the driver writes.
        run = _Run(self.pipeline, None, self.embedder, report, events)  # type: ignore[arg-type]
        run.timings["parse"] = float(batch["parse_s"].sum())
        prepared: dict[int, _Prepared] = {}
        reasons: dict[int, str] = {}
        for position, row in enumerate(batch.itertuples(index=False)):
            if row.document is None:
                reasons[position] = row.reason
                continue
            try:
                todo = _Todo(SourceFile(Path(row.path), row.source), row.content_hash)
                prepared[position] = run._prepare(todo, row.document)
            except Exception as exc:  # one source's failure must not fail its batch
                reasons[position] = failure_reason(exc, row.path)
        embedded = self._embed(run, prepared, reasons, list(batch["shown"]))
        stats = _BatchStats(run.timings, report.real_tokens, report.padded_tokens)
        stats.embedded = events.embedded_calls
        if self.embedder.loaded is not None:
            stats.dtype = str(self.embedder.loaded.dtype_choice)
            stats.device = str(self.embedder.loaded.device)
        size = len(batch)
        return {
            "index": np.asarray(batch["index"]),
            "source": np.asarray(batch["source"]),
            "embedded": _objects([embedded.get(i) for i in range(size)]),
            "reason": _objects([reasons.get(i) for i in range(size)]),
            "stats": _objects([stats] + [None] * (size - 1)),
        }

    @staticmethod
    def _embed(
        run: _Run, prepared: dict[int, _Prepared], reasons: dict[int, str], shown: list[str]
    ) -> dict[int, _Embedded]:
        """Embed all sources in one pass; if that fails, source by source to find the culprit."""
        positions = list(prepared)
        if len(positions) > 1:
            try:
                batch = run.embed([prepared[p] for p in positions])
                return dict(zip(positions, batch, strict=True))
            except Exception:
                pass
        embedded = {}
        for position in positions:
            try:
                embedded[position] = run.embed([prepared[position]])[0]
            except Exception as exc:
                reasons[position] = failure_reason(exc)
        return embedded


def _objects(values: list[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array
