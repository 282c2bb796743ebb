"""Preparing parsed documents in the parser workers: the same chunks, token ids, renditions and
image vectors as preparing them beside the model, and a failure that fails its file alone."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import docgen
import numpy as np
import pytest
from PIL import Image

from mrag.extract.document import (
    ExtractedImage,
    ExtractionError,
    ExtractionLimits,
    PageText,
    ParsedDocument,
)
from mrag.extract.figures import ImageFilter
from mrag.extract.worker import ParserProcess
from mrag.ingestion.chunking import chunk_document
from mrag.ingestion.pipeline import Pipeline
from mrag.ingestion.preparation import PreparedDocument, Preparer
from mrag.ingestion.stages import LazyModel, make_preparer
from mrag.store.payload import image_payload, rendition_payload


def _picture(image: Image.Image, name: str) -> ExtractedImage:
    return ExtractedImage(image, [1], name, f"Figure: {name}", "caption", name)


def _rotated_jpeg() -> Image.Image:
    """A JPEG whose EXIF says "rotate 90°": the model reads it turned upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    data = docgen.encode(docgen.noise((300, 120), seed=3), "JPEG", exif=exif.tobytes())
    return Image.open(io.BytesIO(data))


def _pictures() -> list[ExtractedImage]:
    transparent = Image.new("RGBA", (180, 90), (0, 0, 0, 0))
    transparent.paste((200, 20, 20, 255), (20, 20, 120, 70))
    return [
        _picture(docgen.noise((1500, 700), seed=1), "wide photo"),
        _picture(docgen.halves((10, 200, 10), (250, 250, 250)).resize((90, 400)), "tall chart"),
        _picture(transparent, "transparent logo"),
        _picture(docgen.noise((40, 30), seed=2), "small icon"),
        _picture(_rotated_jpeg(), "rotated jpeg"),
        _picture(docgen.noise((224, 224), seed=4).convert("L"), "grey square"),
    ]


def _document() -> ParsedDocument:
    pages = [
        PageText(1, "The valve opens slowly. " * 60, ["Operation"]),
        PageText(2, "Prime the pump first, then open the valve. " * 40, ["Operation"]),
    ]
    return ParsedDocument("manual.pdf", "pdf", pages, _pictures(), [], 2)


@pytest.fixture
def preparer(tiny_model) -> Preparer:
    pipeline = Pipeline().override(chunking__max_tokens=96, chunking__overlap_tokens=16)
    return LazyModel(pipeline, tiny_model).preparer()


def test_image_vectors_of_the_tower_squares_equal_those_of_the_whole_pictures(
    preparer: Preparer, tiny_model
) -> None:
    pictures = _pictures()
    prepared = preparer.prepare(_document())
    squares = [image.image for image in prepared.document.images]
    size = tiny_model.config.preprocess.image_size
    assert all(square.size == (size, size) for square in squares)
    whole = tiny_model.encode_image([image.image for image in pictures])
    assert np.array_equal(tiny_model.encode_image(squares), whole), "bit for bit"


def test_chunks_ids_and_renditions_are_those_made_beside_the_model(
    preparer: Preparer, tiny_model
) -> None:
    document = _document()
    prepared = preparer.prepare(document)
    chunks = chunk_document(
        document.pages, tiny_model.tokenizer.backend, max_tokens=96, overlap_tokens=16
    )
    assert len(chunks) > 2 and prepared.chunks == chunks
    texts = [chunk.embedding_text() for chunk in chunks]
    assert prepared.ids == tiny_model.tokenize(texts, max_length=96)
    for picture, rendition in zip(_pictures(), prepared.renditions, strict=True):
        metadata = {"source": "manual.pdf", "page": 1}
        assert rendition_payload("c", rendition, metadata) == image_payload(
            "c", picture.image, metadata
        )
    assert prepared.timings["chunk"] > 0 and prepared.timings["renditions"] > 0


def test_the_preparer_survives_the_trip_to_a_worker(preparer: Preparer) -> None:
    copy = pickle.loads(pickle.dumps(preparer))
    document = _document()
    ours, theirs = preparer.prepare(document), copy.prepare(document)
    assert (theirs.chunks, theirs.ids) == (ours.chunks, ours.ids)
    assert theirs.renditions == ours.renditions


def test_a_picture_over_the_pixel_limit_stays_whole_for_the_model_to_refuse(tiny_model) -> None:
    pipeline = Pipeline().override(limits__max_pixels=100 * 100)
    preparer = LazyModel(pipeline, tiny_model).preparer()
    big = _picture(docgen.noise((300, 200)), "big")
    assert preparer.model_input(big) is big.image
    small = _picture(docgen.noise((90, 100)), "small")
    side = preparer.image_size
    assert preparer.model_input(small).size == (side, side)


def test_the_preparer_is_read_from_the_checkpoint_without_loading_the_model(
    tiny_checkpoint: Path, tiny_model
) -> None:
    lazy = LazyModel(Pipeline().override(model__name=str(tiny_checkpoint)))
    preparer = lazy.preparer()
    assert lazy.loaded is None, "the weights were not loaded"
    given = make_preparer(Pipeline(), tiny_model.tokenizer, 224)
    document = _document()
    assert preparer.prepare(document).ids == given.prepare(document).ids
    assert preparer.image_size == tiny_model.config.preprocess.image_size


def test_a_worker_prepares_and_a_failing_preparation_fails_only_its_file(
    tmp_path: Path, preparer: Preparer
) -> None:
    good = docgen.text_pdf(tmp_path / "good.pdf", ["The pump is primed first. " * 30])
    # A preparer that cannot chunk anything: no room beside the special tokens.
    broken = Preparer(preparer.tokenizer, 1, 0, None, preparer.max_pixels)
    with ParserProcess(
        limits=ExtractionLimits(), image_filter=ImageFilter(), prepare=broken
    ) as worker:
        worker.submit(good)
        with pytest.raises(ExtractionError, match=r"good\.pdf: ValueError: max_tokens=1"):
            worker.result()
    with ParserProcess(
        limits=ExtractionLimits(), image_filter=ImageFilter(), prepare=preparer
    ) as worker:
        worker.submit(good)
        prepared, _ = worker.result()
    assert isinstance(prepared, PreparedDocument)
    assert "pump is primed" in prepared.chunks[0].text and prepared.ids
