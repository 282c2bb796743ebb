"""What a parsed document becomes before the model sees it: chunks, their token ids, and for each
picture its stored rendition and the square the vision tower reads.

None of it needs the model, only its tokenizer and input size, so a :class:`Preparer` runs right
after parsing in the parser worker (:mod:`mrag.extract.worker`), on as many cores as there are
workers, and the process that embeds only embeds and writes. The same :class:`Preparer` runs where
documents are parsed elsewhere (Ray), so the points come out the same wherever it ran.

What a worker hands back is small whatever the file held: the pictures' full pixels stay in the
worker; only their encoded renditions and their tower-sized squares travel.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from mrag.extract.document import ExtractedImage, ExtractionError, ParsedDocument
from mrag.images import load_image
from mrag.images.rendition import RENDITION_MAX_SIDE, Rendition, rendition_of
from mrag.ingestion.chunking import Chunk, chunk_document
from mrag.ingestion.report import failure_reason
from mrag.model.crop import tower_square
from mrag.model.tokenizer import TextTokenizer


@dataclass
class PreparedDocument:
    """A parsed document ready to embed: ``chunks`` with their token ids (``ids``, one list per
    chunk), and per picture of ``document.images`` its ``renditions`` entry. Each picture's
    ``image`` is the square the vision tower reads (or the picture itself when the model is to
    judge it, see :meth:`Preparer.model_input`). ``timings`` holds the seconds each step took."""

    document: ParsedDocument
    chunks: list[Chunk]
    ids: list[list[int]]
    renditions: list[Rendition]
    timings: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Preparer:
    """Turns a :class:`ParsedDocument` into a :class:`PreparedDocument`.

    ``tokenizer`` is the model's own (from its checkpoint folder), ``max_tokens`` and
    ``overlap_tokens`` the pipeline's chunking, ``image_size`` the side of the vision tower's
    input (None: pictures are left as they are), ``max_pixels`` the largest picture the model
    takes. It pickles (the tokenizer as its JSON), so it can be handed to a worker process.
    """

    tokenizer: TextTokenizer
    max_tokens: int
    overlap_tokens: int
    image_size: int | None
    max_pixels: int
    rendition_side: int = RENDITION_MAX_SIDE

    def __call__(self, path: Path, document: ParsedDocument) -> PreparedDocument:
        """Prepare ``document`` (read from ``path``).

        Raises :class:`ExtractionError` naming the file and the reason when anything fails, as
        the run reports a failure of this step in the embedding process.
        """
        try:
            return self.prepare(document)
        except (ExtractionError, MemoryError):
            raise
        except Exception as exc:
            raise ExtractionError(f"{path}: {failure_reason(exc, path)}") from None

    def prepare(self, document: ParsedDocument) -> PreparedDocument:
        """The chunks, token ids, renditions and tower squares of ``document``."""
        timings: Counter[str] = Counter()
        started = time.perf_counter()
        chunks = chunk_document(
            document.pages,
            self.tokenizer.backend,
            max_tokens=self.max_tokens,
            overlap_tokens=self.overlap_tokens,
        )
        texts = [chunk.embedding_text() for chunk in chunks]
        ids = self.tokenizer.encode(texts, max_length=self.max_tokens) if texts else []
        timings["chunk"] += time.perf_counter() - started
        started = time.perf_counter()
        renditions = [rendition_of(image.image, self.rendition_side) for image in document.images]
        images = [self._for_model(image) for image in document.images]
        timings["renditions"] += time.perf_counter() - started
        return PreparedDocument(
            dataclasses.replace(document, images=images), chunks, ids, renditions, timings
        )

    def _for_model(self, image: ExtractedImage) -> ExtractedImage:
        """``image`` with its picture replaced by what the model reads of it."""
        return dataclasses.replace(image, image=self.model_input(image))

    def model_input(self, image: ExtractedImage) -> Image.Image:
        """The vision tower's square of ``image``, cut as the model's preprocessing cuts it, so
        embedding it gives the same vector as embedding the whole picture.

        A picture the model would refuse (over ``max_pixels``) or could not convert stays whole:
        the model then refuses it in the embedding process with its own error, as before.
        """
        if self.image_size is None:
            return image.image
        try:
            rgb = load_image(image.image, max_pixels=self.max_pixels)
        except Exception:  # the model reports it, with the reason it always gave
            return image.image
        return tower_square(rgb, self.image_size)
