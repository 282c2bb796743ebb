"""The ingestion run: files → parsed documents → chunks and images → embeddings → points → store.

:func:`ingest` is the whole job, as ``python -m mrag ingest`` runs it. Per file:

1. hash it; if the store already finished a source with that hash, it is *unchanged* and
   skipped before anything is parsed or embedded;
2. parse it in the worker process (:mod:`mrag.extract.worker`), which bounds its time and memory;
3. cut its text into chunks with the model's own tokenizer;
4. embed chunks and images, batched across files and sorted by length so little is padding;
5. replace the source's points in the store and record it as done (:meth:`Store.replace_source`).

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
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mrag.extract.document import ExtractionError, ParsedDocument
from mrag.extract.ocr import resolve as resolve_ocr
from mrag.extract.worker import ParserProcess
from mrag.ingestion.chunking import Chunk, chunk_document
from mrag.ingestion.pipeline import Pipeline
from mrag.ingestion.sources import (
    SourceFile,
    display_path,
    escape_controls,
    file_hash,
    file_name,
    legacy_source_name,
    portable_name,
    source_key,
    source_path,
    walk_sources,
)
from mrag.model import HUB_MODEL_ID, JinaClipModel
from mrag.store import ModelRecord, SourceRecord, Store, StoreSettings
from mrag.store.payload import image_payload, make_point, text_payload

#: What happened to a source. ``no_content``: read fine, but held no text and no kept image.
Status = Literal["ingested", "no_content", "unchanged", "skipped", "failed", "deleted"]
STATUSES: tuple[Status, ...] = (
    "ingested",
    "no_content",
    "unchanged",
    "skipped",
    "failed",
    "deleted",
)
#: Longest exception message kept in a failure reason.
_REASON_CHARS = 300

#: Texts gathered from several files before one embedding pass, so batches fill and sort well.
_PENDING_TEXTS = 256
_PENDING_IMAGES = 64


@dataclass
class FileOutcome:
    """What happened to one source.

    ``source`` is its identity (the real path, as stored); ``path`` how it is shown (short, one
    line); ``reason`` says why it failed or was skipped, without repeating the path.
    ``no_text_pages`` counts pages that yielded no text (no usable text layer, a garbage one
    included, and no OCR).
    """

    source: str
    status: Status
    reason: str | None = None
    pages: int = 0
    chunks: int = 0
    images: int = 0
    filtered: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    points: int = 0
    parser: str | None = None
    ocr_pages: int = 0
    no_text_pages: int = 0
    path: str = ""

    def __post_init__(self) -> None:
        if not self.path:
            self.path = display_path(self.source)


@dataclass
class IngestReport:
    """The summary of one run: every file's outcome, totals and where the time went."""

    files: list[FileOutcome] = field(default_factory=list)
    elapsed_s: float = 0.0
    timings: dict[str, float] = field(default_factory=lambda: Counter())
    real_tokens: int = 0
    padded_tokens: int = 0
    store: str = ""
    #: The model's compute dtype and why it was chosen; empty when nothing needed the model.
    dtype: str = ""
    notices: list[str] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for outcome in self.files if outcome.status == status)

    @property
    def failed(self) -> list[FileOutcome]:
        return [outcome for outcome in self.files if outcome.status == "failed"]

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return not self.failed

    def totals(self) -> dict[str, Any]:
        ingested = [o for o in self.files if o.status in ("ingested", "no_content")]
        filtered: Counter[str] = Counter()
        for outcome in ingested:
            filtered.update(outcome.filtered)
        return {
            **{status: self.count(status) for status in STATUSES},
            "pages": sum(o.pages for o in ingested),
            "chunks": sum(o.chunks for o in ingested),
            "images_kept": sum(o.images for o in ingested),
            "images_filtered": dict(sorted(filtered.items())),
            "points_written": sum(o.points for o in ingested),
            "ocr_pages": sum(o.ocr_pages for o in ingested),
            "no_text_pages": sum(o.no_text_pages for o in ingested),
        }

    def to_dict(self) -> dict[str, Any]:
        padding = self.padded_tokens / self.real_tokens if self.real_tokens else 0.0
        return {
            "store": self.store,
            "dtype": self.dtype,
            "totals": self.totals(),
            "elapsed_s": round(self.elapsed_s, 3),
            "timings_s": {key: round(value, 3) for key, value in sorted(self.timings.items())},
            "padding_waste": round(padding, 4),
            "notices": list(self.notices),
            "files": [asdict(outcome) for outcome in self.files],
        }


class Events:
    """Hooks for progress display; the default does nothing."""

    def start(self, total: int) -> None: ...

    def file_done(self, outcome: FileOutcome) -> None: ...

    def embedded(self, modality: str, items: int, seconds: float) -> None: ...


@dataclass
class _Todo:
    file: SourceFile
    content_hash: str
    #: The name an older mrag stored this file under, replaced once the new version is written.
    legacy: str | None = None


@dataclass
class _Prepared:
    todo: _Todo
    document: ParsedDocument
    chunks: list[Chunk]

    @property
    def source(self) -> str:
        return self.todo.file.source


@dataclass
class _Embedded:
    """A source ready to be written: its points and what the report says about it."""

    todo: _Todo
    points: list[Any]
    pages: int
    chunks: int
    images: int
    filtered: dict[str, int]
    problems: list[str]
    parser: str | None = None
    ocr_pages: int = 0
    no_text_pages: int = 0

    @property
    def source(self) -> str:
        return self.todo.file.source


def failure_reason(exc: BaseException, path: Path | str | None = None) -> str:
    """``ExceptionType: message`` on one line, without the file's path in front.

    :class:`ExtractionError` messages are already written for people and keep no type name.
    """
    message = " ".join(str(exc).split())
    if path is not None:
        for prefix in {f"{path}: ", f"{portable_name(str(path))}: "}:
            message = message.removeprefix(prefix)
    message = escape_controls(portable_name(message))[:_REASON_CHARS]
    if isinstance(exc, ExtractionError):
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class _Embedder:
    """Loads the model on first use: a run where nothing changed never loads it.

    On first use it also checks that the store was built with this model: vectors of another
    one would be noise, so nothing is embedded (or loaded) before the check passes.
    """

    def __init__(
        self, pipeline: Pipeline, model: JinaClipModel | None, store: Store | None = None
    ) -> None:
        self.pipeline = pipeline
        self._model = model
        self._store = store
        self._checked = store is None  # nothing to check against (a Ray actor: no store)

    def check(self) -> None:
        """Raise :class:`~mrag.store.ModelMismatchError` if the store was built with another
        model; reads the checkpoint's files, loads nothing."""
        if not self._checked and self._store is not None:
            self._store.check_model(model_record(self.pipeline, self._model))
        self._checked = True

    @property
    def loaded(self) -> JinaClipModel | None:
        """The model if it has been loaded (or was given), without loading it."""
        return self._model

    @property
    def model(self) -> JinaClipModel:
        self.check()
        if self._model is None:
            from mrag.model.embeddings import load_shared_model

            section = self.pipeline.model
            self._model = load_shared_model(
                section.name, revision=section.revision, device=section.device, dtype=section.dtype
            )
        return self._model


def _with_env_model(pipeline: Pipeline) -> Pipeline:
    """``MRAG_MODEL`` replaces the built-in model, as on the command line; a named one stays."""
    name = os.environ.get("MRAG_MODEL")
    if name and pipeline.model.name == HUB_MODEL_ID:
        return pipeline.override(model__name=name)
    return pipeline


def model_record(pipeline: Pipeline, model: JinaClipModel | None) -> ModelRecord:
    """Which model this run embeds with, without loading it: what the store records."""
    revision = pipeline.model.revision
    if model is not None:
        return ModelRecord.of(model.name_or_path or None, revision, model.embedding_dim)
    return ModelRecord.of_checkpoint(pipeline.model.name, revision)


def _missing_folders(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, outermost first."""
    missing: list[Path] = []
    current = path.absolute()
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    return missing[::-1]


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


def ingest(
    paths: Sequence[str | Path],
    *,
    pipeline: Pipeline | None = None,
    store: Store | None = None,
    model: JinaClipModel | None = None,
    passwords: Sequence[str] = (),
    prune: bool = False,
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
        events: progress hooks.

    Returns the :class:`IngestReport`; files that failed are in it with their reasons. Raises
    ``FileNotFoundError`` for a path that does not exist, :class:`~mrag.store.StoreError` when
    the store cannot be opened or holds vectors of another size than the model's,
    :class:`~mrag.model.CheckpointError` when the model cannot load and
    :class:`~mrag.extract.worker.WorkerError` when the parser worker cannot start.
    """
    return run_ingest(
        _Run,
        paths,
        pipeline=pipeline,
        store=store,
        model=model,
        passwords=passwords,
        prune=prune,
        events=events,
    )


def run_ingest(
    run_type: type[_Run],
    paths: Sequence[str | Path],
    *,
    pipeline: Pipeline | None = None,
    store: Store | None = None,
    model: JinaClipModel | None = None,
    passwords: Sequence[str] = (),
    prune: bool = False,
    events: Events | None = None,
) -> IngestReport:
    """The run around the processing of files, shared by :func:`ingest` and the Ray run:
    listing files, opening the store, pruning. ``run_type`` decides how files are processed."""
    pipeline = _with_env_model(pipeline or Pipeline.default())
    events = events or Events()
    started = time.perf_counter()
    report = IngestReport()
    found = walk_sources(paths, include=pipeline.sources.include, exclude=pipeline.sources.exclude)
    all_passwords = _read_passwords(pipeline, passwords)
    # Checked once here, so "enabled = true" without Tesseract stops the run before it starts.
    ocr_missing = resolve_ocr(pipeline.ocr_settings())[1]
    own_store = store is None
    created: list[Path] = []
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
    embedder = _Embedder(pipeline, model, store)
    try:
        if not store.exists():
            store.ensure_collection(model_record(pipeline, model))
        events.start(len(found.files) + len(found.skipped))
        run = run_type(pipeline, store, embedder, report, events)
        for name, reason in found.skipped:
            run._finish(FileOutcome(name, "skipped", reason))
        run.process(found.files, all_passwords)
        if prune:
            run.prune(paths, found.files)
        if store.needs_optimize():
            # Once per run, never per file: building HNSW graphs takes minutes at 100k points.
            clock = time.perf_counter()
            store.optimize()
            run.timings["optimize"] += time.perf_counter() - clock
    finally:
        if own_store:
            store.close()
            wrote = any(o.status in ("ingested", "no_content") for o in report.files)
            if created and not wrote:
                # A run that stored nothing leaves no empty store folder behind.
                shutil.rmtree(created[0], ignore_errors=True)
    if embedder.loaded is not None:
        report.dtype = str(embedder.loaded.dtype_choice)
    _note_missing_text(report, pipeline, ocr_missing)
    report.elapsed_s = time.perf_counter() - started
    return report


def parser_process(pipeline: Pipeline, passwords: Sequence[str]) -> ParserProcess:
    """A parser worker with the pipeline's guard rails (memory cap, time budget, page limits)."""
    return ParserProcess(
        limits=pipeline.extraction_limits(),
        image_filter=pipeline.image_filter(),
        passwords=passwords,
        memory_mb=pipeline.limits.memory_mb,
        ocr=pipeline.ocr_settings(),
    )


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


class _Run:
    def __init__(
        self,
        pipeline: Pipeline,
        store: Store,
        embedder: _Embedder,
        report: IngestReport,
        events: Events,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.embedder = embedder
        self.report = report
        self.events = events
        self.timings: Counter[str] = Counter()
        report.timings = self.timings

    def _finish(self, outcome: FileOutcome) -> None:
        self.report.files.append(outcome)
        self.events.file_done(outcome)

    def _fail(self, todo: _Todo, exc: BaseException) -> None:
        reason = failure_reason(exc, todo.file.path)
        self._finish(FileOutcome(todo.file.source, "failed", reason))

    # -- the loop --------------------------------------------------------------------------------

    def _todo(self, file: SourceFile) -> _Todo | None:
        """What to do with ``file``: None when it is unchanged (its outcome is then reported)."""
        clock = time.perf_counter()
        digest = file_hash(file.path)
        record = self.store.source_record(file.source)
        legacy = None
        if record is None:
            old = legacy_source_name(file.path)
            if old not in (None, file.source) and self.store.source_record(old) is not None:
                legacy = old
        self.timings["hash"] += time.perf_counter() - clock
        if record is not None and record.content_hash == digest:
            status: Status = "unchanged"
            self._finish(
                FileOutcome(
                    file.source,
                    status,
                    pages=record.pages,
                    chunks=record.chunks,
                    images=record.images,
                )
            )
            return None
        return _Todo(file, digest, legacy)

    def plan(self, files: Sequence[SourceFile]) -> list[_Todo]:
        """Hash every file and settle the unchanged ones; returns what is left to do."""
        todo: list[_Todo] = []
        for file in files:
            try:
                item = self._todo(file)
            except OSError as exc:
                reason = f"cannot read ({exc.strerror or exc})"
                self._finish(FileOutcome(file.source, "failed", reason))
                continue
            if item is not None:
                todo.append(item)
        return todo

    def process(self, files: Sequence[SourceFile], passwords: Sequence[str]) -> None:
        todo = self.plan(files)
        if not todo:
            return
        pending: list[_Prepared] = []
        with parser_process(self.pipeline, passwords) as parser:
            parser.submit(todo[0].file.path)
            for index, item in enumerate(todo):
                clock = time.perf_counter()
                try:
                    document, _ = parser.result()
                except ExtractionError as exc:
                    document = None
                    self._fail(item, exc)
                self.timings["parse_wait"] += time.perf_counter() - clock
                if index + 1 < len(todo):
                    # The worker parses the next file while this process chunks and embeds.
                    parser.submit(todo[index + 1].file.path)
                if document is None:
                    continue
                for stage, seconds in document.timings.items():
                    self.timings[f"parse_{stage}"] += seconds
                # Loaded (and checked against the store) outside the boundary: without the model
                # nothing can go in.
                _ = self.embedder.model
                try:
                    prepared = self._prepare(item, document)
                except Exception as exc:
                    self._fail(item, exc)
                    continue
                pending.append(prepared)
                texts = sum(len(entry.chunks) for entry in pending)
                images = sum(len(entry.document.images) for entry in pending)
                if texts >= _PENDING_TEXTS or images >= _PENDING_IMAGES:
                    self._flush(pending)
                    pending = []
        self._flush(pending)

    def _prepare(self, todo: _Todo, document: ParsedDocument) -> _Prepared:
        clock = time.perf_counter()
        chunks = chunk_document(
            document.pages,
            self.embedder.model._require_tokenizer().backend,
            max_tokens=self.pipeline.chunking.max_tokens,
            overlap_tokens=self.pipeline.chunking.overlap_tokens,
        )
        self.timings["chunk"] += time.perf_counter() - clock
        return _Prepared(todo, document, chunks)

    # -- embedding and writing -------------------------------------------------------------------

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        model = self.embedder.model
        batch_size = self.pipeline.model.batch_size
        clock = time.perf_counter()
        ids = model.tokenize(texts, max_length=self.pipeline.chunking.max_tokens)
        self.timings["tokenize"] += time.perf_counter() - clock
        lengths = [len(sequence) for sequence in ids]
        self.report.real_tokens += sum(lengths)
        if not model.packs_text:  # packed batches compute no padding
            for batch in model.text_batch_plan(lengths, batch_size):
                longest = max(lengths[i] for i in batch)
                self.report.padded_tokens += sum(longest - lengths[i] for i in batch)
        clock = time.perf_counter()
        vectors = model.encode_ids(ids, batch_size=batch_size)
        seconds = time.perf_counter() - clock
        self.timings["model_text"] += seconds
        self.events.embedded("text", len(texts), seconds)
        return vectors

    def _embed_images(self, images: list[Any]) -> np.ndarray:
        clock = time.perf_counter()
        vectors = self.embedder.model.encode_image(
            images,
            batch_size=self.pipeline.model.batch_size,
            max_pixels=self.pipeline.limits.max_pixels,
        )
        seconds = time.perf_counter() - clock
        self.timings["model_image"] += seconds
        self.events.embedded("image", len(images), seconds)
        return vectors

    def _flush(self, pending: list[_Prepared]) -> None:
        """Embed the pending sources together, then write each one on its own."""
        if not pending:
            return
        try:
            embedded = self.embed(pending)
        except Exception as exc:
            if len(pending) == 1:
                self._fail(pending[0].todo, exc)
                return
            # One source's content broke the shared batch: find it by embedding each alone.
            for item in pending:
                self._flush([item])
            return
        for item in embedded:
            self.write(item)

    def embed(self, pending: list[_Prepared]) -> list[_Embedded]:
        """Embed the chunks and images of ``pending`` in shared batches and build their points."""
        if not pending:
            return []
        texts = [chunk.embedding_text() for item in pending for chunk in item.chunks]
        images = [image.image for item in pending for image in item.document.images]
        nothing = np.zeros((0, 0), np.float32)
        text_vectors = self._embed_texts(texts) if texts else nothing
        image_vectors = self._embed_images(images) if images else nothing
        embedded = []
        text_at = image_at = 0
        for item in pending:
            texts_here, images_here = len(item.chunks), len(item.document.images)
            points = self._points(
                item,
                text_vectors[text_at : text_at + texts_here],
                image_vectors[image_at : image_at + images_here],
            )
            text_at += texts_here
            image_at += images_here
            document = item.document
            embedded.append(
                _Embedded(
                    item.todo,
                    points,
                    pages=document.page_count,
                    chunks=len(item.chunks),
                    images=len(document.images),
                    filtered=dict(document.filtered),
                    problems=[escape_controls(portable_name(p)) for p in document.problems],
                    parser=document.parser or None,
                    ocr_pages=sum(page.ocr_confidence is not None for page in document.pages),
                    no_text_pages=len(document.no_text_pages),
                )
            )
        return embedded

    def _points(
        self, item: _Prepared, text_vectors: np.ndarray, image_vectors: np.ndarray
    ) -> list[Any]:
        clock = time.perf_counter()
        document = item.document
        source = item.source
        common = {
            "source": source,
            "file_name": file_name(source),
            "content_hash": item.todo.content_hash,
            "kind": document.kind,
        }
        recognised = {
            page.page: page.ocr_confidence
            for page in document.pages
            if page.ocr_confidence is not None
        }
        points = []
        for chunk, vector in zip(item.chunks, text_vectors, strict=True):
            metadata = {
                **common,
                "page": chunk.pages[0],
                "pages": chunk.pages,
                "chunk_index": chunk.index,
                "start": chunk.start,
                "end": chunk.end,
                "headings": chunk.headings,
                "element": chunk.element,
            }
            confidences = [recognised[p] for p in chunk.pages if p in recognised]
            if confidences:
                metadata["ocr"] = True
                metadata["ocr_confidence"] = min(confidences)
            payload = text_payload(chunk.text, metadata)
            points.append(make_point(source, "text", chunk.index, vector, payload))
        for image, vector in zip(document.images, image_vectors, strict=True):
            metadata = {
                **common,
                "page": image.pages[0],
                "pages": image.pages,
                "name": image.name,
                "image_hash": image.content_hash,
                "context_kind": image.context_kind,
                "alt_text": image.alt_text,
                "element": image.element,
            }
            payload = image_payload(image.context, image.image, metadata)
            points.append(make_point(source, "image", image.content_hash, vector, payload))
        self.timings["points"] += time.perf_counter() - clock
        return points

    def write(self, embedded: _Embedded) -> None:
        """Make the points the source's whole stored content, then record it as done.

        A write that fails fails this source alone; a store built with another model stops the
        run (:class:`~mrag.store.ModelMismatchError`).
        """
        # Points embedded elsewhere (Ray actors) meet the model check here, before any write.
        self.embedder.check()
        clock = time.perf_counter()
        record = SourceRecord(
            source=embedded.source,
            content_hash=embedded.todo.content_hash,
            points=len(embedded.points),
            chunks=embedded.chunks,
            images=embedded.images,
            pages=embedded.pages,
            ingested_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        try:
            self.store.replace_source(record, embedded.points)
            if embedded.todo.legacy is not None:
                self.store.delete_source(embedded.todo.legacy)
        except Exception as exc:
            self._fail(embedded.todo, exc)
            return
        finally:
            self.timings["store"] += time.perf_counter() - clock
        status: Status = "ingested" if embedded.points else "no_content"
        self._finish(
            FileOutcome(
                embedded.source,
                status,
                pages=embedded.pages,
                chunks=embedded.chunks,
                images=embedded.images,
                filtered=embedded.filtered,
                problems=embedded.problems,
                points=len(embedded.points),
                parser=embedded.parser,
                ocr_pages=embedded.ocr_pages,
                no_text_pages=embedded.no_text_pages,
            )
        )

    # -- pruning ---------------------------------------------------------------------------------

    def prune(self, paths: Sequence[str | Path], files: Sequence[SourceFile]) -> None:
        """Delete stored sources under the given folders whose files are gone."""
        roots = [source_key(p).rstrip("/") + "/" for p in paths if Path(p).is_dir()]
        present = {file.source for file in files}
        for record in self.store.sources():
            inside = any(record.source.startswith(root) for root in roots)
            if inside and record.source not in present and not source_path(record.source).exists():
                removed = self.store.delete_source(record.source)
                self._finish(FileOutcome(record.source, "deleted", points=removed))
