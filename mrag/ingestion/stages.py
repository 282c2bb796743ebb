"""The stages of an ingestion run, each one job, shared by the local run and the Ray run.

plan (:class:`Planner`: hash, compare with the ledger) → parse and prepare (:func:`parser_pool`,
:func:`parse_each`; the parser workers also cut the text into chunks and encode the pictures, see
:mod:`mrag.ingestion.preparation`) → embed (:class:`BatchEmbedder`, :func:`embed_each`) → build
points (:func:`build_points`) → write (:class:`Writer`).

The model is loaded by :class:`LazyModel` on first use, so a run where nothing changed never
loads it, and only after :class:`ModelCheck` has found the store built with the same model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from mrag.extract.document import ExtractionError, ParsedDocument
from mrag.extract.pool import ParserPool, auto_workers, usable_cores
from mrag.extract.worker import ParserProcess
from mrag.images.rendition import Rendition
from mrag.ingestion.chunking import Chunk
from mrag.ingestion.events import Events
from mrag.ingestion.pipeline import Pipeline
from mrag.ingestion.preparation import PreparedDocument, Preparer
from mrag.ingestion.report import FileOutcome, Status, failure_reason
from mrag.ingestion.signature import ExtractionSignature
from mrag.ingestion.sources import SourceFile, escape_controls, file_hash, legacy_source_name
from mrag.ingestion.timing import Timings
from mrag.store import ModelRecord, SourceRecord, Store
from mrag.store.payload import make_point, rendition_payload, text_payload
from mrag.store.source_names import file_name, portable_name

if TYPE_CHECKING:
    from mrag.model import JinaClipModel, TextTokenizer

#: Where settled sources go: the run's report and progress display.
Finish = Callable[[FileOutcome], None]

#: Why a source is read again although its file is unchanged, with ``ingest(force=True)``.
FORCED = "forced (--force)"


@dataclass
class Todo:
    """A source to (re)ingest: its file, the file's hash, and why it is read again if it is."""

    file: SourceFile
    content_hash: str
    #: The name an older mrag stored this file under, replaced once the new version is written.
    legacy: str | None = None
    #: Why a source whose file is unchanged is read again; None for a new or changed file.
    reread: str | None = None

    @property
    def source(self) -> str:
        return self.file.source


@dataclass
class Prepared:
    """A parsed source cut into chunks, waiting to be embedded (see
    :class:`~mrag.ingestion.preparation.PreparedDocument` for ``ids`` and ``renditions``)."""

    todo: Todo
    document: ParsedDocument
    chunks: list[Chunk]
    ids: list[list[int]]
    renditions: list[Rendition]

    @classmethod
    def of(cls, todo: Todo, prepared: PreparedDocument) -> Prepared:
        """The source ``todo`` with its prepared document."""
        return cls(todo, prepared.document, prepared.chunks, prepared.ids, prepared.renditions)

    @property
    def source(self) -> str:
        return self.todo.source


@dataclass
class Embedded:
    """A source ready to be written: its points, its extraction signature and what the report
    says about it."""

    todo: Todo
    points: list[Any]
    pages: int
    chunks: int
    images: int
    filtered: dict[str, int]
    problems: list[str]
    extraction: dict[str, Any]
    parser: str | None = None
    ocr_pages: int = 0
    no_text_pages: int = 0

    @property
    def source(self) -> str:
        return self.todo.source

    def outcome(self) -> FileOutcome:
        """The report's line for this source once it is written."""
        status: Status = "ingested" if self.points else "no_content"
        return FileOutcome(
            self.source,
            status,
            pages=self.pages,
            chunks=self.chunks,
            images=self.images,
            filtered=self.filtered,
            problems=self.problems,
            points=len(self.points),
            parser=self.parser,
            ocr_pages=self.ocr_pages,
            no_text_pages=self.no_text_pages,
            reread=self.todo.reread,
        )


# -- the model -----------------------------------------------------------------------------------


def model_record(pipeline: Pipeline, model: JinaClipModel | None) -> ModelRecord:
    """Which model this run embeds with, without loading it: what the store records."""
    revision = pipeline.model.revision
    if model is not None:
        return ModelRecord.of(model.name_or_path or None, revision, model.embedding_dim)
    return ModelRecord.of_checkpoint(pipeline.model.name, revision)


class ModelCheck:
    """Checks once that the store was built with this run's model: vectors of another one
    would be noise. Reads the checkpoint's files, loads nothing."""

    def __init__(self, store: Store, pipeline: Pipeline, model: JinaClipModel | None) -> None:
        self._store = store
        self._pipeline = pipeline
        self._model = model
        self._done = False

    def __call__(self) -> None:
        """Raise :class:`~mrag.store.ModelMismatchError` if the store holds another model's."""
        if not self._done:
            self._store.check_model(model_record(self._pipeline, self._model))
            self._done = True


class LazyModel:
    """The pipeline's model, loaded on first use (after ``before_load``, the store check).

    ``announce`` hears "loading the model" just before a load starts.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        model: JinaClipModel | None = None,
        *,
        before_load: Callable[[], None] | None = None,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self._model = model
        self._before_load = before_load
        self._announce = announce

    @property
    def loaded(self) -> JinaClipModel | None:
        """The model if it has been loaded (or was given), without loading it."""
        return self._model

    def get(self) -> JinaClipModel:
        """The model, checked against the store and loaded if it is not yet."""
        if self._before_load is not None:
            self._before_load()
        if self._model is None:
            from mrag.model.embeddings import load_shared_model

            if self._announce is not None:
                self._announce("loading the model")
            section = self.pipeline.model
            self._model = load_shared_model(
                section.name, revision=section.revision, device=section.device, dtype=section.dtype
            )
        return self._model

    def preparer(self) -> Preparer:
        """What the parser workers make of each document for this model (chunks cut with its
        own tokenizer, pictures cut to its input square), read from its checkpoint folder
        without loading the weights when the model is not loaded yet (after ``before_load``)."""
        if self._before_load is not None:
            self._before_load()
        if self._model is not None:
            model = self._model
            return make_preparer(
                self.pipeline, model._require_tokenizer(), model.config.preprocess.image_size
            )
        from mrag.model import JinaClipConfig, TextTokenizer
        from mrag.model.hub import CheckpointError, resolve_checkpoint

        section = self.pipeline.model
        folder = resolve_checkpoint(section.name, revision=section.revision)
        config = JinaClipConfig.from_folder(folder)
        try:
            tokenizer = TextTokenizer.from_folder(folder)
        except Exception as exc:  # as the model's own load reports it
            raise CheckpointError(f"{folder}: cannot load the tokenizer ({exc})") from None
        return make_preparer(self.pipeline, tokenizer, config.preprocess.image_size)


# -- plan ----------------------------------------------------------------------------------------


class Planner:
    """Decides what to do with each file: hash it, look it up in the ledger, and settle it as
    unchanged when its content and the extraction that read it are both as recorded."""

    def __init__(
        self,
        store: Store,
        signature: ExtractionSignature,
        timings: Timings,
        finish: Finish,
        *,
        force: bool = False,
    ) -> None:
        self.store = store
        self.signature = signature
        self.timings = timings
        self.finish = finish
        self.force = force

    def plan(self, files: Sequence[SourceFile]) -> list[Todo]:
        """Hash every file and settle the unchanged ones; returns what is left to do."""
        todo: list[Todo] = []
        for file in files:
            try:
                item = self._todo(file)
            except OSError as exc:
                reason = f"cannot read ({exc.strerror or exc})"
                self.finish(FileOutcome(file.source, "failed", reason))
                continue
            if item is not None:
                todo.append(item)
        return todo

    def _todo(self, file: SourceFile) -> Todo | None:
        """What to do with ``file``: None when it is unchanged (its outcome is then reported)."""
        with self.timings.measure("hash"):
            digest = file_hash(file.path)
            record = self.store.source_record(file.source)
            legacy = None if record is not None else self._legacy_name(file)
        if record is None or record.content_hash != digest:
            return Todo(file, digest, legacy)
        reread = FORCED if self.force else self.signature.reread_reason(record.extraction)
        if reread is not None:
            return Todo(file, digest, reread=reread)
        self.finish(
            FileOutcome(
                file.source,
                "unchanged",
                pages=record.pages,
                chunks=record.chunks,
                images=record.images,
            )
        )
        return None

    def _legacy_name(self, file: SourceFile) -> str | None:
        old = legacy_source_name(file.path)
        if old not in (None, file.source) and self.store.source_record(old) is not None:
            return old
        return None


# -- parse and prepare ---------------------------------------------------------------------------


def make_preparer(pipeline: Pipeline, tokenizer: TextTokenizer, image_size: int | None) -> Preparer:
    """The :class:`Preparer` for the pipeline's chunking and limits, with the model's tokenizer
    and input size."""
    return Preparer(
        tokenizer,
        max_tokens=pipeline.chunking.max_tokens,
        overlap_tokens=pipeline.chunking.overlap_tokens,
        image_size=image_size,
        max_pixels=pipeline.limits.max_pixels,
    )


def parser_process(
    pipeline: Pipeline, passwords: Sequence[str], preparer: Preparer | None = None
) -> ParserProcess:
    """A parser worker with the pipeline's guard rails (memory cap, time budget, page limits),
    which also prepares each document with ``preparer`` when one is given."""
    return ParserProcess(
        limits=pipeline.extraction_limits(),
        image_filter=pipeline.image_filter(),
        passwords=passwords,
        memory_mb=pipeline.limits.memory_mb,
        ocr=pipeline.ocr_settings(),
        prepare=preparer,
    )


def parser_pool(
    pipeline: Pipeline, passwords: Sequence[str], files: int, preparer: Preparer | None = None
) -> ParserPool:
    """The run's parser workers: ``limits.workers`` of them (``"auto"``: sized from the cores
    and memory, see :func:`~mrag.extract.pool.auto_workers`), no more than there are files,
    each as :func:`parser_process` makes it. The pool owns as many cores as it could run
    workers: with fewer files, OCR of their pages spreads over the rest."""
    workers = pipeline.limits.workers
    if workers == "auto":
        cores = auto_workers(pipeline.limits.memory_mb, usable_cores())
    else:
        cores = max(1, int(workers))
    size = max(1, min(cores, files))
    return ParserPool(size, lambda: parser_process(pipeline, passwords, preparer), cores=cores)


def parse_each(
    parsers: ParserPool, todo: Sequence[Todo], timings: Timings
) -> Iterator[tuple[Todo, PreparedDocument | ParsedDocument | ExtractionError]]:
    """Each source with its prepared document (parsed only, when the workers were given no
    :class:`Preparer`), or the error that failed it, in ``todo``'s order.

    The workers parse and prepare the next files while the caller embeds this one.
    """
    outcomes = parsers.parse([item.file.path for item in todo])
    while True:
        with timings.measure("parse_wait"):
            step = next(outcomes, None)
        if step is None:
            return
        index, parsed = step
        if isinstance(parsed, PreparedDocument):
            for stage, seconds in parsed.timings.items():
                timings[stage] += seconds
        document = parsed.document if isinstance(parsed, PreparedDocument) else parsed
        if isinstance(document, ParsedDocument):
            for stage, seconds in document.timings.items():
                timings[f"parse_{stage}"] += seconds
        yield todo[index], parsed


def prepare(todo: Todo, document: ParsedDocument, preparer: Preparer, timings: Timings) -> Prepared:
    """Prepare a document parsed elsewhere in this process (see :class:`Preparer`)."""
    prepared = preparer.prepare(document)
    for stage, seconds in prepared.timings.items():
        timings[stage] += seconds
    return Prepared.of(todo, prepared)


# -- embed ---------------------------------------------------------------------------------------

#: A source whose vectors are all embedded: the source, its text vectors, its image vectors.
_Ready = tuple[Prepared, np.ndarray, np.ndarray]


class BatchEmbedder:
    """Embeds the chunks and images of several sources in shared batches (texts sorted by
    length, so little is padding) and hands each source back as soon as all of its vectors are
    ready. Counts real and padded tokens, and reports each batch to ``events``."""

    def __init__(self, model: LazyModel, timings: Timings, events: Events) -> None:
        self.model = model
        self.pipeline = model.pipeline
        self.timings = timings
        self.events = events
        self.real_tokens = 0
        self.padded_tokens = 0

    def embed(
        self, pending: Sequence[Prepared]
    ) -> Iterator[tuple[Prepared, np.ndarray, np.ndarray]]:
        """Each source of ``pending`` with its text and image vectors, once they are all there."""
        ids = [sequence for item in pending for sequence in item.ids]
        images = [image.image for item in pending for image in item.document.images]
        collected = _Collector(pending)
        yield from collected.ready()
        if ids:
            for indices, vectors in self._text_batches(ids):
                collected.add("text", indices, vectors)
                yield from collected.ready()
        if images:
            for indices, vectors in self._image_batches(images):
                collected.add("image", indices, vectors)
                yield from collected.ready()

    def _text_batches(self, ids: list[list[int]]) -> Iterator[tuple[list[int], np.ndarray]]:
        """Text vectors of the chunks' token ids a batch at a time, batched as
        :meth:`JinaClipModel.encode_ids` would."""
        model = self.model.get()
        batch_size = self.pipeline.model.batch_size
        lengths = [len(sequence) for sequence in ids]
        self.real_tokens += sum(lengths)
        for batch in model.text_batch_plan(lengths, batch_size):
            if not model.packs_text:  # packed batches compute no padding
                longest = max(lengths[i] for i in batch)
                self.padded_tokens += sum(longest - lengths[i] for i in batch)
            with self.timings.measure("model_text") as watch:
                # One planned batch: encode_ids plans it as exactly this batch again.
                vectors = model.encode_ids([ids[i] for i in batch], batch_size=len(batch))
            self.events.embedded("text", len(batch), watch.seconds)
            yield batch, vectors

    def _image_batches(self, images: list[Any]) -> Iterator[tuple[list[int], np.ndarray]]:
        model = self.model.get()
        batch_size = self.pipeline.model.batch_size
        for start in range(0, len(images), batch_size):
            batch = list(range(start, min(start + batch_size, len(images))))
            with self.timings.measure("model_image") as watch:
                vectors = model.encode_image(
                    images[start : start + batch_size],
                    batch_size=batch_size,
                    max_pixels=self.pipeline.limits.max_pixels,
                )
            self.events.embedded("image", len(batch), watch.seconds)
            yield batch, vectors


class _Collector:
    """Vectors of a shared batch gathered back per source."""

    def __init__(self, pending: Sequence[Prepared]) -> None:
        self.pending = list(pending)
        self.owners = {
            "text": [n for n, item in enumerate(pending) for _ in item.chunks],
            "image": [n for n, item in enumerate(pending) for _ in item.document.images],
        }
        self.vectors: dict[str, list[Any]] = {m: [None] * len(o) for m, o in self.owners.items()}
        self.missing = [len(i.chunks) + len(i.document.images) for i in self.pending]
        self.handed: set[int] = set()

    def add(self, modality: str, indices: list[int], vectors: np.ndarray) -> None:
        for index, vector in zip(indices, vectors, strict=True):
            self.vectors[modality][index] = vector
            self.missing[self.owners[modality][index]] -= 1

    def ready(self) -> Iterator[_Ready]:
        """The sources whose vectors are all there and that were not handed out yet."""
        for number, item in enumerate(self.pending):
            if self.missing[number] == 0 and number not in self.handed:
                self.handed.add(number)
                yield item, self._stack("text", number), self._stack("image", number)

    def _stack(self, modality: str, number: int) -> np.ndarray:
        rows = [
            v
            for v, o in zip(self.vectors[modality], self.owners[modality], strict=True)
            if o == number
        ]
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def embed_each(
    embedder: BatchEmbedder, pending: Sequence[Prepared], signature: ExtractionSignature
) -> Iterator[tuple[Prepared, Embedded | Exception]]:
    """Each source of ``pending`` with its points, as soon as they are embedded.

    When the shared batches fail, one source's content broke them: the sources not yet handed
    out are embedded one by one to find it, and it comes back with its exception.
    """
    handed: set[int] = set()
    batches = embedder.embed(pending)
    while True:
        try:
            ready = next(batches, None)
            if ready is None:
                return
            item, text_vectors, image_vectors = ready
            embedded = build_points(item, text_vectors, image_vectors, signature, embedder.timings)
        except Exception as exc:
            if len(pending) == 1:
                yield pending[0], exc
                return
            for rest in pending:
                if id(rest) not in handed:
                    yield from embed_each(embedder, [rest], signature)
            return
        handed.add(id(item))
        yield item, embedded


# -- build points --------------------------------------------------------------------------------


def build_points(
    item: Prepared,
    text_vectors: np.ndarray,
    image_vectors: np.ndarray,
    signature: ExtractionSignature,
    timings: Timings,
) -> Embedded:
    """The source's points (one per chunk, one per image) with their payloads, ready to write."""
    document = item.document
    with timings.measure("points"):
        common = {
            "source": item.source,
            "file_name": file_name(item.source),
            "content_hash": item.todo.content_hash,
            "kind": document.kind,
        }
        points = _text_points(item, text_vectors, common)
        points += _image_points(item, image_vectors, common)
    return Embedded(
        item.todo,
        points,
        pages=document.page_count,
        chunks=len(item.chunks),
        images=len(document.images),
        filtered=dict(document.filtered),
        problems=[escape_controls(portable_name(p)) for p in document.problems],
        extraction=signature.record_for(document),
        parser=document.parser or None,
        ocr_pages=sum(page.ocr_confidence is not None for page in document.pages),
        no_text_pages=len(document.no_text_pages),
    )


def _text_points(item: Prepared, vectors: np.ndarray, common: dict[str, Any]) -> list[Any]:
    recognised = {
        page.page: page.ocr_confidence
        for page in item.document.pages
        if page.ocr_confidence is not None
    }
    points = []
    for chunk, vector in zip(item.chunks, vectors, strict=True):
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
        points.append(make_point(item.source, "text", chunk.index, vector, payload))
    return points


def _image_points(item: Prepared, vectors: np.ndarray, common: dict[str, Any]) -> list[Any]:
    points = []
    images = zip(item.document.images, item.renditions, vectors, strict=True)
    for image, rendition, vector in images:
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
        payload = rendition_payload(image.context, rendition, metadata)
        points.append(make_point(item.source, "image", image.content_hash, vector, payload))
    return points


# -- write ---------------------------------------------------------------------------------------


class Writer:
    """Makes a source's points its whole stored content, then records it as done.

    A write that fails fails that source alone; a store built with another model stops the run
    (:class:`~mrag.store.ModelMismatchError`, raised by ``check`` before any write, which also
    covers points embedded elsewhere, on Ray actors).
    """

    def __init__(
        self, store: Store, check: Callable[[], None], timings: Timings, finish: Finish
    ) -> None:
        self.store = store
        self.check = check
        self.timings = timings
        self.finish = finish

    def write(self, embedded: Embedded) -> None:
        """Write ``embedded``'s points and ledger record; report the source's outcome."""
        self.check()
        record = SourceRecord(
            source=embedded.source,
            content_hash=embedded.todo.content_hash,
            points=len(embedded.points),
            chunks=embedded.chunks,
            images=embedded.images,
            pages=embedded.pages,
            ingested_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            extraction=embedded.extraction,
        )
        try:
            with self.timings.measure("store"):
                self.store.replace_source(record, embedded.points)
                if embedded.todo.legacy is not None:
                    self.store.delete_source(embedded.todo.legacy)
        except Exception as exc:
            reason = failure_reason(exc, embedded.todo.file.path)
            self.finish(FileOutcome(embedded.source, "failed", reason))
            return
        self.finish(embedded.outcome())
