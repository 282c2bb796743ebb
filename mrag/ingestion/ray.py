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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray

from mrag.extract.document import ExtractionError
from mrag.ingestion.events import Events
from mrag.ingestion.pipeline import Pipeline, RaySection
from mrag.ingestion.report import FileOutcome, IngestReport, failure_reason
from mrag.ingestion.run import Run, run
from mrag.ingestion.signature import ExtractionSignature
from mrag.ingestion.sources import SourceFile, display_path
from mrag.ingestion.stages import (
    BatchEmbedder,
    Embedded,
    LazyModel,
    Prepared,
    Todo,
    embed_each,
    parser_process,
    prepare,
)
from mrag.ingestion.timing import Stopwatch, Timings
from mrag.store import Store


def ingest_on_ray(
    paths: Sequence[str | Path],
    *,
    address: str | None = None,
    pipeline: Pipeline | None = None,
    store: Store | None = None,
    passwords: Sequence[str] = (),
    prune: bool = False,
    force: bool = False,
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
        return run(
            paths,
            process_on_ray,
            pipeline=pipeline,
            store=store,
            passwords=passwords,
            prune=prune,
            force=force,
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


def process_on_ray(state: Run, todo: list[Todo], passwords: Sequence[str]) -> None:
    """Parse, chunk and embed on the cluster; write here, each source as its row comes back."""
    items = [
        {
            "index": index,
            "path": str(item.file.path),
            "shown": display_path(item.source),
            "source": item.source,
            "content_hash": item.content_hash,
        }
        for index, item in enumerate(todo)
    ]
    done: set[int] = set()
    state.events.status(f"reading {len(todo)} file{'s' if len(todo) != 1 else ''} on Ray")
    with _data_context():
        for row in _dataset(state, items, passwords).iter_rows():
            done.add(int(row["index"]))
            _merge(state, row["stats"])
            embedded = row["embedded"]
            if embedded is None:
                state.finish(FileOutcome(row["source"], "failed", row["reason"]))
                continue
            embedded.todo = todo[int(row["index"])]  # with the driver's legacy name and reason
            state.writer.write(embedded)
    for index, item in enumerate(todo):
        if index not in done:
            reason = "lost on the Ray cluster (a worker died); run again to retry"
            state.finish(FileOutcome(item.source, "failed", reason))


def _dataset(state: Run, items: list[dict[str, Any]], passwords: Sequence[str]) -> Any:
    """Files → parser actors → model actors: rows of outcomes and points, one per file."""
    settings = state.pipeline.ray
    return (
        # One file a block: files stream to parsers and on to the model one by one.
        ray.data.from_items(items, override_num_blocks=len(items))
        .map_batches(
            _ParserActor,
            batch_size=1,
            batch_format="pandas",
            fn_constructor_kwargs={"pipeline": state.pipeline, "passwords": tuple(passwords)},
            # As many parsers as free CPUs allow; Ray Data grows the pool while the model
            # actors wait for input.
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=None),
            num_cpus=settings.parse_cpus,
        )
        .map_batches(
            _ModelActor,
            batch_size=settings.batch_size,
            batch_format="pandas",
            fn_constructor_kwargs={"pipeline": state.pipeline, "signature": state.signature},
            compute=ray.data.ActorPoolStrategy(size=settings.actors),
            num_cpus=settings.cpus_per_actor,
            num_gpus=settings.gpus_per_actor,
        )
    )


def _merge(state: Run, stats: _BatchStats | None) -> None:
    """Add what a model actor measured to the driver's report and progress display."""
    if stats is None:
        return
    state.timings.update(stats.timings)
    state.report.real_tokens += stats.real_tokens
    state.report.padded_tokens += stats.padded_tokens
    state.report.dtype = state.report.dtype or stats.dtype
    state.report.device = state.report.device or stats.device
    for chunks, images in stats.parsed:
        state.events.parsed(chunks, images)
    for modality, items, seconds in stats.embedded:
        state.events.embedded(modality, items, seconds)


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
            watch = Stopwatch()
            try:
                self.parser.submit(Path(path))
                document, _ = self.parser.result()
            except ExtractionError as exc:
                documents.append(None)
                reasons.append(failure_reason(exc, path))
            else:
                documents.append(document)
                reasons.append(None)
            seconds.append(watch.stop())
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

    timings: Timings = field(default_factory=Timings)
    real_tokens: int = 0
    padded_tokens: int = 0
    embedded: list[tuple[str, int, float]] = field(default_factory=list)
    #: Chunks and images of each source the call prepared.
    parsed: list[tuple[int, int]] = field(default_factory=list)
    #: The actor model's compute dtype and why, and its device, once it is loaded.
    dtype: str = ""
    device: str = ""


class _Recorder(Events):
    """Keeps the embedding batches an actor call reports, for the driver's progress display."""

    def __init__(self) -> None:
        self.embedded_calls: list[tuple[str, int, float]] = []

    def embedded(self, modality: str, items: int, seconds: float) -> None:
        self.embedded_calls.append((modality, items, seconds))


class _ModelActor:
    """One model, loaded once per actor: chunks, embeds and builds points for batches of files.

    The actor never touches the store: the driver checks the model and writes.
    """

    def __init__(self, pipeline: Pipeline, signature: ExtractionSignature) -> None:
        if pipeline.ray.gpus_per_actor > 0 and pipeline.model.device == "cpu":
            # Ray gave this actor a GPU (CUDA_VISIBLE_DEVICES): use it.
            pipeline = pipeline.override(model__device="cuda")
        self.pipeline = pipeline
        self.signature = signature
        self.model = LazyModel(pipeline)
        # Ray sets OMP_NUM_THREADS to the floor of the CPUs reserved (1.75 -> 1); the model runs
        # on as many threads as CPUs reserved, rounded.
        import torch

        torch.set_num_threads(max(1, round(pipeline.ray.cpus_per_actor)))

    def __call__(self, batch: Any) -> Any:
        stats = _BatchStats()
        stats.timings["parse"] = float(batch["parse_s"].sum())
        prepared: dict[int, Prepared] = {}
        reasons: dict[int, str] = {}
        for position, row in enumerate(batch.itertuples(index=False)):
            if row.document is None:
                reasons[position] = row.reason
                continue
            try:
                todo = Todo(SourceFile(Path(row.path), row.source), row.content_hash)
                self.model.get()
                prepared[position] = prepare(
                    todo, row.document, self.model.preparer(), stats.timings
                )
            except Exception as exc:  # one source's failure must not fail its batch
                reasons[position] = failure_reason(exc, row.path)
        stats.parsed = [(len(p.chunks), len(p.document.images)) for p in prepared.values()]
        embedded = self._embed(stats, prepared, reasons)
        if self.model.loaded is not None:
            loaded = self.model.loaded
            stats.dtype = str(loaded.dtype_choice)
            stats.device = str(loaded.device)
        size = len(batch)
        return {
            "index": np.asarray(batch["index"]),
            "source": np.asarray(batch["source"]),
            "embedded": _objects([embedded.get(i) for i in range(size)]),
            "reason": _objects([reasons.get(i) for i in range(size)]),
            "stats": _objects([stats] + [None] * (size - 1)),
        }

    def _embed(
        self, stats: _BatchStats, prepared: dict[int, Prepared], reasons: dict[int, str]
    ) -> dict[int, Embedded]:
        """Embed all sources in shared batches; a source that breaks them fails alone."""
        events = _Recorder()
        embedder = BatchEmbedder(self.model, stats.timings, events)
        positions = {id(item): position for position, item in prepared.items()}
        embedded: dict[int, Embedded] = {}
        for item, result in embed_each(embedder, list(prepared.values()), self.signature):
            if isinstance(result, Exception):
                reasons[positions[id(item)]] = failure_reason(result)
            else:
                embedded[positions[id(item)]] = result
        stats.real_tokens, stats.padded_tokens = embedder.real_tokens, embedder.padded_tokens
        stats.embedded = events.embedded_calls
        return embedded


def _objects(values: list[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array
