"""The ingestion run: files → parsed documents → chunks and images → embeddings → points → store.

:func:`ingest` is the whole job, as ``python -m mrag ingest`` runs it. Per file
(the stages are in :mod:`mrag.ingestion.stages`):

1. hash it; if the store already finished a source with that hash, and the extraction that read
   it would read it the same way today (:mod:`mrag.ingestion.signature`), it is *unchanged* and
   skipped before anything is parsed or embedded;
2. parse it in one of the parser worker processes (:mod:`mrag.extract.pool`), each of which
   bounds its file's time and memory; parsed files come back in the order they were listed;
3. in the same worker, cut its text into chunks with the model's own tokenizer and encode its
   pictures for the store and the model (:mod:`mrag.ingestion.preparation`);
4. embed chunks and images, batched across files and sorted by length so little is padding;
5. as soon as a source's vectors are all there, replace its points in the store and record it as
   done (:meth:`Store.replace_source`): an interrupted run loses at most the batch in flight.

Every source is its own failure boundary: whatever goes wrong while parsing, chunking, embedding
or writing one file fails that file (its reason is the exception's type and message), leaves its
stored version as it was, and the run goes on. Only a model that cannot load, a parser worker that
cannot start and a store that cannot be opened stop a run.

Sources are named by their real path (:mod:`mrag.ingestion.sources`), so the same file is the
same source from any working directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mrag.extract.document import ExtractionError, ParsedDocument
from mrag.extract.ocr import resolve as resolve_ocr
from mrag.ingestion.events import Events
from mrag.ingestion.pipeline import Pipeline
from mrag.ingestion.preparation import PreparedDocument, Preparer
from mrag.ingestion.report import FileOutcome, IngestReport, failure_reason
from mrag.ingestion.signature import ExtractionSignature
from mrag.ingestion.sources import SourceFile, source_path, walk_sources
from mrag.ingestion.stages import (
    BatchEmbedder,
    LazyModel,
    ModelCheck,
    Planner,
    Prepared,
    Todo,
    Writer,
    embed_each,
    model_record,
    parse_each,
    parser_pool,
    prepare,
)
from mrag.ingestion.timing import Stopwatch, Timings
from mrag.model import HUB_MODEL_ID
from mrag.model.identity import STORE, choose_model
from mrag.model.openmp import spin_briefly
from mrag.store import Store, StoreSettings
from mrag.store.source_names import source_key

if TYPE_CHECKING:
    from mrag.model import JinaClipModel

__all__ = ["Events", "FileOutcome", "IngestReport", "Run", "ingest", "process_locally", "run"]

#: Texts gathered from several files before one embedding pass, so batches fill and sort well.
_PENDING_TEXTS = 256
_PENDING_IMAGES = 64


@dataclass
class Run:
    """One run's shared state, handed to the function that processes its files.

    ``model`` loads on first use, after ``check`` (the store was built with this model);
    ``writer`` writes a source and reports it; :meth:`finish` reports a settled source,
    :meth:`fail` a failed one.
    """

    pipeline: Pipeline
    store: Store
    report: IngestReport
    events: Events
    check: ModelCheck
    model: LazyModel
    signature: ExtractionSignature
    writer: Writer = field(init=False)

    def __post_init__(self) -> None:
        self.writer = Writer(self.store, self.check, self.report.timings, self.finish)

    @property
    def timings(self) -> Timings:
        return self.report.timings

    def finish(self, outcome: FileOutcome) -> None:
        """Report a settled source."""
        self.report.files.append(outcome)
        self.events.file_done(outcome)

    def fail(self, todo: Todo, exc: BaseException) -> None:
        """Report a source that failed, with the exception as its reason."""
        self.finish(FileOutcome(todo.source, "failed", failure_reason(exc, todo.file.path)))


#: Processes the files a run has to (re)ingest: the local loop, or the Ray pipeline.
ProcessFiles = Callable[[Run, list[Todo], Sequence[str]], None]


def ingest(
    paths: Sequence[str | Path],
    *,
    pipeline: Pipeline | None = None,
    store: Store | None = None,
    model: JinaClipModel | None = None,
    passwords: Sequence[str] = (),
    prune: bool = False,
    force: bool = False,
    events: Events | None = None,
) -> IngestReport:
    """Ingest files and folders into the store; safe to run again at any time.

    Args:
        paths: files and folders; folders are walked with the pipeline's include/exclude globs.
        pipeline: settings (default: :meth:`Pipeline.default`); ``MRAG_MODEL``, when set,
            replaces the built-in model (a pipeline that names another model keeps it).
        store: an open :class:`Store`; by default the pipeline's store settings (or the
            ``MRAG_QDRANT_PATH``/``QDRANT_URL``/``MRAG_COLLECTION`` environment) are opened.
        model: an already loaded model; by default the pipeline's model is loaded when first
            needed.
        passwords: passwords to try on encrypted PDFs (after the empty one).
        prune: also delete sources under the given folders whose files no longer exist.
        force: read every file again, also those whose file and extraction are unchanged.
        events: progress hooks.

    Returns the :class:`IngestReport`; files that failed are in it with their reasons. Raises
    ``FileNotFoundError`` for a path that does not exist, :class:`~mrag.store.StoreError` when
    the store cannot be opened or holds vectors of another size than the model's,
    :class:`~mrag.model.CheckpointError` when the model cannot load and
    :class:`~mrag.extract.worker.WorkerError` when the parser worker cannot start.

    When torch is not loaded yet, its idle threads are set to spin briefly, as ``mrag ingest``
    does (see :mod:`mrag.model.openmp`).
    """
    spin_briefly()  # a no-op once torch is loaded (by the caller, or a model it passed)
    return run(
        paths,
        process_locally,
        pipeline=pipeline,
        store=store,
        model=model,
        passwords=passwords,
        prune=prune,
        force=force,
        events=events,
    )


def run(
    paths: Sequence[str | Path],
    process: ProcessFiles,
    *,
    pipeline: Pipeline | None = None,
    store: Store | None = None,
    model: JinaClipModel | None = None,
    passwords: Sequence[str] = (),
    prune: bool = False,
    force: bool = False,
    events: Events | None = None,
) -> IngestReport:
    """The run around the processing of files, shared by :func:`ingest` and the Ray run:
    listing and planning files, opening the store, pruning, notices. ``process`` decides how
    the files left to do are parsed, embedded and written."""
    watch = Stopwatch()
    pipeline = _with_env_model(pipeline or Pipeline.default())
    events = events or Events()
    report = IngestReport()
    events.status("listing files")
    found = walk_sources(paths, include=pipeline.sources.include, exclude=pipeline.sources.exclude)
    all_passwords = _read_passwords(pipeline, passwords)
    # Checked once here, so "enabled = true" without Tesseract stops the run before it starts.
    ocr_missing = resolve_ocr(pipeline.ocr_settings())[1]
    signature = ExtractionSignature.of(pipeline, ocr_missing)
    events.status("opening the store")
    with _opened(store, pipeline, report) as opened:
        if model is None:
            pipeline = _with_store_model(pipeline, opened, report)
        check = ModelCheck(opened, pipeline, model)
        lazy = LazyModel(pipeline, model, before_load=check, announce=events.status)
        state = Run(pipeline, opened, report, events, check, lazy, signature)
        if not opened.exists():
            opened.ensure_collection(model_record(pipeline, model))
        events.start(len(found.files) + len(found.skipped))
        for name, reason in found.skipped:
            state.finish(FileOutcome(name, "skipped", reason))
        count = len(found.files)
        events.status(f"hashing {count} file{'s' if count != 1 else ''}")
        planner = Planner(opened, signature, report.timings, state.finish, force=force)
        todo = planner.plan(found.files)
        if todo:
            process(state, todo, all_passwords)
        if prune:
            _prune(state, paths, found.files)
        _optimize(state)
    if lazy.loaded is not None:
        report.dtype = report.dtype or str(lazy.loaded.dtype_choice)
        report.device = report.device or str(lazy.loaded.device)
    _note_missing_text(report, pipeline, ocr_missing)
    report.elapsed_s = watch.stop()
    return report


def process_locally(state: Run, todo: list[Todo], passwords: Sequence[str]) -> None:
    """Parse, chunk, embed and write the files in this process (with the parser workers).

    Sources are gathered until enough text or images wait for one shared embedding pass; each
    is written as soon as its own vectors are ready.
    """
    embedder = BatchEmbedder(state.model, state.timings, state.events)
    pending: list[Prepared] = []
    with parser_pool(state.pipeline, passwords, len(todo), _preparer(state)) as parsers:
        state.events.status(f"reading {len(todo)} file{'s' if len(todo) != 1 else ''}")
        for item, parsed in parse_each(parsers, todo, state.timings):
            if isinstance(parsed, ExtractionError):
                state.fail(item, parsed)
                continue
            # Loaded (and checked against the store) outside the boundary: without the model
            # nothing can go in.
            state.model.get()
            try:
                prepared = _prepared(state, item, parsed)
            except Exception as exc:
                state.fail(item, exc)
                continue
            state.events.parsed(len(prepared.chunks), len(prepared.document.images))
            pending.append(prepared)
            texts = sum(len(entry.chunks) for entry in pending)
            images = sum(len(entry.document.images) for entry in pending)
            if texts >= _PENDING_TEXTS or images >= _PENDING_IMAGES:
                _embed_and_write(state, embedder, pending)
                pending = []
    _embed_and_write(state, embedder, pending)
    state.report.real_tokens += embedder.real_tokens
    state.report.padded_tokens += embedder.padded_tokens


def _preparer(state: Run) -> Preparer | None:
    """The workers' :class:`Preparer`: the model's tokenizer and input size, read (after the
    store check) before any file is parsed. None when they cannot be read: the run then stops
    at the first file parsed, when the model cannot load, with the model's own error, and
    needs no model when every file fails to parse, as a run that never gets to embed."""
    try:
        return state.model.preparer()
    except Exception:
        return None


def _prepared(state: Run, item: Todo, parsed: PreparedDocument | ParsedDocument) -> Prepared:
    """``item`` with its prepared document; prepared here when the workers had no preparer."""
    if isinstance(parsed, ParsedDocument):
        return prepare(item, parsed, state.model.preparer(), state.timings)
    return Prepared.of(item, parsed)


def _embed_and_write(state: Run, embedder: BatchEmbedder, pending: list[Prepared]) -> None:
    """Embed ``pending`` together, writing each source as soon as its points are built."""
    if not pending:
        return
    for item, embedded in embed_each(embedder, pending, state.signature):
        if isinstance(embedded, Exception):
            state.fail(item.todo, embedded)
        else:
            state.writer.write(embedded)


# -- around the processing -------------------------------------------------------------------------


def _with_env_model(pipeline: Pipeline) -> Pipeline:
    """``MRAG_MODEL`` replaces the built-in model, as on the command line; a named one stays."""
    name = os.environ.get("MRAG_MODEL")
    if name and pipeline.model.name == HUB_MODEL_ID:
        return pipeline.override(model__name=name)
    return pipeline


def _with_store_model(pipeline: Pipeline, store: Store, report: IngestReport) -> Pipeline:
    """The built-in model gives way to the one an existing store records (see
    :func:`~mrag.model.identity.choose_model`); a model named by the pipeline, ``--model`` or
    ``MRAG_MODEL`` stays."""
    section = pipeline.model
    if section.name != HUB_MODEL_ID or section.revision or os.environ.get("MRAG_MODEL"):
        return pipeline
    choice = choose_model(None, None, store.model if store.exists() else None)
    if choice.origin != STORE or choice.builtin:
        return pipeline
    report.notices.append(f"embedding with {choice.describe()}")
    return pipeline.override(model__name=choice.name, model__revision=choice.revision)


def _read_passwords(pipeline: Pipeline, passwords: Sequence[str]) -> list[str]:
    found = list(passwords)
    if pipeline.sources.passwords_file:
        path = Path(pipeline.sources.passwords_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"{path}: cannot read the passwords file ({exc.strerror})") from None
        found.extend(line for line in lines if line.strip())
    return found


@contextmanager
def _opened(store: Store | None, pipeline: Pipeline, report: IngestReport) -> Iterator[Store]:
    """The given store, or the pipeline's, opened for the run and closed after it.

    A store folder this run created and wrote nothing to is removed again.
    """
    created: list[Path] = []
    own = store is None
    if store is None:
        settings = StoreSettings.from_env(
            path=pipeline.store.path, url=pipeline.store.url, collection=pipeline.store.collection
        )
        if settings.path:
            created = _missing_folders(Path(settings.path))
        try:
            store = Store.open(settings)
        except Exception:
            if created:
                shutil.rmtree(created[0], ignore_errors=True)
            raise
    report.store = f"{store.collection} @ {store.location or 'a Qdrant client'}"
    try:
        yield store
    finally:
        if own:
            store.close()
            wrote = any(o.status in ("ingested", "no_content") for o in report.files)
            if created and not wrote:
                # A run that stored nothing leaves no empty store folder behind.
                shutil.rmtree(created[0], ignore_errors=True)


def _missing_folders(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, outermost first."""
    missing: list[Path] = []
    current = path.absolute()
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    return missing[::-1]


def _prune(state: Run, paths: Sequence[str | Path], files: Sequence[SourceFile]) -> None:
    """Delete stored sources under the given folders whose files are gone."""
    roots = [source_key(p).rstrip("/") + "/" for p in paths if Path(p).is_dir()]
    present = {file.source for file in files}
    for record in state.store.sources():
        inside = any(record.source.startswith(root) for root in roots)
        if inside and record.source not in present and not source_path(record.source).exists():
            removed = state.store.delete_source(record.source)
            state.finish(FileOutcome(record.source, "deleted", points=removed))


def _optimize(state: Run) -> None:
    if state.store.needs_optimize():
        # Once per run, never per file: building HNSW graphs takes minutes at 100k points.
        state.events.status("optimizing the store")
        with state.timings.measure("optimize"):
            state.store.optimize()


def _note_missing_text(report: IngestReport, pipeline: Pipeline, ocr_missing: str | None) -> None:
    """One notice for the run when pages went in without text that OCR could have read."""
    files = [o for o in report.files if o.status == "ingested" and o.no_text_pages]
    if not files:
        return
    pages = sum(o.no_text_pages for o in files)
    what = (
        f"{pages} page{'s' if pages != 1 else ''} without a text layer in {len(files)} "
        f"file{'s' if len(files) != 1 else ''} went in without text"
    )
    if ocr_missing is not None:
        report.notices.append(
            f"OCR skipped: {ocr_missing}; {what} (install tesseract-ocr and tesseract-ocr-eng, "
            "or set [ocr] enabled = false)"
        )
    elif pipeline.ocr.enabled is False:
        report.notices.append(f"OCR is off ([ocr] enabled = false): {what}")
