"""The stages every run shares (mrag.ingestion.stages), on real files and the real model class."""

from __future__ import annotations

from pathlib import Path

import docgen
import numpy as np
import pytest

from mrag.extract.read import parse
from mrag.ingestion.events import Events
from mrag.ingestion.pipeline import Pipeline
from mrag.ingestion.signature import ExtractionSignature
from mrag.ingestion.sources import SourceFile
from mrag.ingestion.stages import (
    BatchEmbedder,
    Embedded,
    LazyModel,
    Prepared,
    Todo,
    embed_each,
    prepare,
)
from mrag.ingestion.timing import Timings
from mrag.model import JinaClipModel


class Recorder(Events):
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def embedded(self, modality: str, items: int, seconds: float) -> None:
        self.calls.append((modality, items))


@pytest.fixture
def sources(tmp_path: Path, tiny_model: JinaClipModel) -> list[Prepared]:
    """A long Markdown file, a short one and a picture, parsed and chunked."""
    long_text = "\n\n".join(
        f"Paragraph {n} says the pump station passed its pressure test in week {n}." * 4
        for n in range(12)
    )
    (tmp_path / "long.md").write_text("# Long\n\n" + long_text)
    (tmp_path / "short.md").write_text("# Short\n\nOne line about valves.")
    docgen.write_image(tmp_path / "photo.png", docgen.halves((200, 30, 30), (30, 30, 200)), "PNG")
    pipeline = Pipeline().override(chunking__max_tokens=48, chunking__overlap_tokens=8)
    preparer = LazyModel(pipeline, tiny_model).preparer()
    prepared = []
    for name in ("long.md", "short.md", "photo.png"):
        path = tmp_path / name
        todo = Todo(SourceFile(path, str(path)), "hash-" + name)
        prepared.append(prepare(todo, parse(path), preparer, Timings()))
    return prepared


def _embedder(model: JinaClipModel, events: Events, **changes: object) -> BatchEmbedder:
    pipeline = Pipeline().override(
        chunking__max_tokens=48, chunking__overlap_tokens=8, model__batch_size=4, **changes
    )
    return BatchEmbedder(LazyModel(pipeline, model), Timings(), events)


def test_batches_give_the_vectors_of_one_encode_call_and_sources_come_back_when_ready(
    sources: list[Prepared], tiny_model: JinaClipModel
) -> None:
    events = Recorder()
    signature = ExtractionSignature.of(Pipeline(), "off for this test")
    handed_at: dict[str, int] = {}
    results: dict[str, Embedded] = {}
    embedder = _embedder(tiny_model, events)
    for item, embedded in embed_each(embedder, sources, signature):
        assert isinstance(embedded, Embedded)
        handed_at[Path(item.source).name] = len(events.calls)  # batches embedded so far
        results[Path(item.source).name] = embedded
    # Each source is handed back as soon as its own vectors are there, not after the last batch.
    assert sum(1 for modality, _ in events.calls if modality == "text") >= 3
    assert handed_at["long.md"] < len(events.calls) == handed_at["photo.png"]

    # Batch by batch, the vectors are those of one call over all texts: same bits.
    texts = [chunk.embedding_text() for item in sources for chunk in item.chunks]
    ids = tiny_model.tokenize(texts, max_length=48)
    whole = tiny_model.encode_ids(ids, batch_size=4)
    got = np.stack(
        [
            point.vector
            for item in sources
            for point in results[Path(item.source).name].points
            if point.modality == "text"
        ]
    )
    assert np.array_equal(got, whole)
    images = tiny_model.encode_image([sources[2].document.images[0].image], batch_size=4)
    photo_vector = results["photo.png"].points[0].vector
    assert np.array_equal(np.asarray(photo_vector, np.float32), images[0])


def test_a_source_that_breaks_the_shared_batch_fails_alone(
    sources: list[Prepared], tiny_model: JinaClipModel
) -> None:
    # Pictures over max_pixels are refused by the model: the photo cannot be embedded.
    embedder = _embedder(tiny_model, Recorder(), limits__max_pixels=16)
    signature = ExtractionSignature.of(Pipeline(), None)
    results = {
        Path(item.source).name: embedded
        for item, embedded in embed_each(embedder, sources, signature)
    }
    assert isinstance(results["long.md"], Embedded) and isinstance(results["short.md"], Embedded)
    assert isinstance(results["photo.png"], Exception)
    assert "pixels" in str(results["photo.png"])
