"""PDF pages and pictures through pypdf, with PDFium for what pypdf cannot do.

Text comes from ``extract_text`` page by page. Pictures are found by walking each page's XObject
resources (into form XObjects too) plus the inline images of its content stream, and every picture
is decoded on its own so one bad stream costs that picture only, never the page. Sizes are read from
the image dictionary before any decoding, so a decompression bomb is refused unread.

While a page's text is extracted, pypdf's visitor callbacks report where text lines and images sit
on the page; that is what pairs a "Figure 3: ..." caption with the picture right above it.

PDFium (:mod:`.pdfium`) takes over three jobs: reading files pypdf cannot open, rendering pages
without a usable text layer for OCR (:mod:`mrag.extract.ocr`), and finding and rendering figures
drawn with vector paths from their captions (:mod:`.vector_figures`). Pages with a good text layer
are never rendered for OCR, and only pages with a figure caption are examined for vector figures, so
born-digital files cost what they did.
"""

from __future__ import annotations

import io
import logging
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
from pypdf import PdfReader

from mrag.extract.document import (
    ExtractedImage,
    ExtractionError,
    ExtractionLimits,
    PageText,
    ParsedDocument,
    read_source,
)
from mrag.extract.figures import (
    NEARBY_CHARS,
    find_captions,
    is_caption_line,
    pair_captions,
    trim_context,
)
from mrag.extract.formats.pdf.pdfium import (
    Extraction,
    Undecoded,
    open_with_passwords,
    read_pages,
    usable_text,
)
from mrag.extract.formats.pdf.pictures import (
    RawImage,
    Undecodable,
    decode_picture,
    object_key,
    page_images,
    stream_size,
)
from mrag.extract.formats.pdf.stages import PdfiumStages
from mrag.extract.ocr import OcrSettings

# Form XObjects may nest; real documents go two or three deep, hostile ones forever.
# pypdf warnings kept per document; past this they are summarised, not listed.
_MAX_LOGGED_WARNINGS = 20
# Text fragments closer than this (in points) vertically belong to one visual line.
_LINE_TOLERANCE = 2.0


@dataclass
class _Line:
    text: str
    y: float


@dataclass
class Layout:
    """Positions gathered while a page's text is extracted."""

    lines: list[_Line] = field(default_factory=list)
    # Image placements in drawing order: (XObject or inline name, (bottom, top) or None for forms).
    placements: list[tuple[str, tuple[float, float] | None]] = field(default_factory=list)
    inline_count: int = 0


class _WarningCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _collect_pypdf_warnings() -> Iterator[list[str]]:
    """Capture what pypdf logs or warns about a file instead of letting it reach the console."""
    logger = logging.getLogger("pypdf")
    collector = _WarningCollector()
    old_propagate = logger.propagate
    logger.addHandler(collector)
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield collector.messages
            collector.messages.extend(str(item.message) for item in caught)
    finally:
        logger.removeHandler(collector)
        logger.propagate = old_propagate


def _matrix_y_span(cm: Sequence[float]) -> tuple[float, float]:
    # An image fills the unit square of its current transformation matrix.
    _a, b, _c, d, _e, f = (float(value) for value in cm[:6])
    ys = (f, b + f, d + f, b + d + f)
    return min(ys), max(ys)


def _page_layout(page: Any) -> tuple[str, Layout]:
    """Extract the page text and, in the same pass, where its lines and images are."""
    layout = Layout()
    fragments: list[tuple[str, float]] = []

    def on_text(text: str, cm: Any, tm: Any, _font: Any, _size: Any) -> None:
        if text and text.strip():
            y = float(tm[4]) * float(cm[1]) + float(tm[5]) * float(cm[3]) + float(cm[5])
            fragments.append((text, y))

    def on_operator(operator: bytes, operands: Any, cm: Any, _tm: Any) -> None:
        if operator == b"Do" and operands:
            layout.placements.append((str(operands[0]), _matrix_y_span(cm)))
        elif operator == b"INLINE IMAGE":
            name = f"~{layout.inline_count}~"
            layout.inline_count += 1
            layout.placements.append((name, _matrix_y_span(cm)))

    text = page.extract_text(visitor_text=on_text, visitor_operand_before=on_operator) or ""
    for fragment, y in fragments:
        if layout.lines and abs(layout.lines[-1].y - y) <= _LINE_TOLERANCE:
            layout.lines[-1].text += fragment
        else:
            layout.lines.append(_Line(fragment, y))
    for line in layout.lines:
        line.text = " ".join(line.text.split())
    return text.strip(), layout


def _decrypt(reader: PdfReader, path: Path, passwords: Sequence[str]) -> str | None:
    """Decrypt with the empty password or one of ``passwords``; returns the one that worked."""
    tried_supplied = False
    for password in ("", *passwords):
        tried_supplied = tried_supplied or password != ""
        try:
            if reader.decrypt(password):
                return password or None
        except Exception as exc:
            raise ExtractionError(f"{path}: encrypted, cannot decrypt ({exc})") from None
    if tried_supplied:
        raise ExtractionError(f"{path}: encrypted: wrong password")
    raise ExtractionError(f"{path}: encrypted: password required")


def _caption_contexts(
    page_number: int,
    text: str,
    layout: Layout | None,
    images: list[RawImage],
) -> list[tuple[str, str, tuple[float, float] | None]]:
    """(context, kind, vertical span) for each image of a page: its caption, else the text
    nearest to it."""
    captions = find_captions(text)
    boxes: list[tuple[float, float] | None] = []
    placement = dict(layout.placements) if layout else {}
    for image in images:
        top_name = image.key if isinstance(image.key, str) else image.key[0]
        nested = isinstance(image.key, list) and len(image.key) > 1
        boxes.append(None if nested else placement.get(top_name))
    caption_ys: list[float | None] = [None] * len(captions)
    if layout is not None:
        visual = [line for line in layout.lines if is_caption_line(line.text)]
        if len(visual) == len(captions):
            caption_ys = [line.y for line in visual]
    pairing = pair_captions(boxes, caption_ys)
    contexts: list[tuple[str, str, tuple[float, float] | None]] = []
    for image, box, caption_index in zip(images, boxes, pairing, strict=True):
        if caption_index is not None:
            contexts.append((captions[caption_index].text, "caption", box))
            continue
        nearby = _nearby_text(layout, box) if layout is not None and box else text[:NEARBY_CHARS]
        nearby = trim_context(nearby, NEARBY_CHARS)
        if nearby:
            contexts.append((nearby, "nearby", box))
        else:
            contexts.append((f"{image.label} on page {page_number}", "filename", box))
    return contexts


def _nearby_text(layout: Layout, box: tuple[float, float]) -> str:
    bottom, top = box

    def distance(line: _Line) -> float:
        return bottom - line.y if line.y < bottom else max(0.0, line.y - top)

    chosen: list[_Line] = []
    total = 0
    # Another figure's caption describes that figure, not this one.
    candidates = [line for line in layout.lines if not is_caption_line(line.text)]
    for line in sorted(candidates, key=distance):
        if total >= NEARBY_CHARS:
            break
        chosen.append(line)
        total += len(line.text) + 1
    chosen.sort(key=lambda line: -line.y)
    return " ".join(line.text for line in chosen)


def parse_pdf(
    path: Path,
    *,
    limits: ExtractionLimits,
    passwords: Sequence[str] = (),
    ocr: OcrSettings | None = None,
) -> ParsedDocument:
    """Read a PDF's page texts and pictures (unfiltered, not yet deduplicated).

    pypdf reads the file; when it cannot open it at all, PDFium does (``ParsedDocument.parser``
    says which). Pages without a usable text layer are OCR'd when ``ocr`` allows it, and figures
    drawn with vector paths are found from their captions and rendered.

    Raises :class:`ExtractionError` when the file is not a readable PDF, is encrypted without a
    working password, or overruns ``limits.time_budget_s``.
    """
    started = time.monotonic()
    data = read_source(path)
    if b"%PDF" not in data[:1024]:
        raise ExtractionError(f"{path}: not a PDF (no %PDF header)")
    problems: list[str] = []
    timings: Counter[str] = Counter()
    pdfium_document: pdfium.PdfDocument | None = None
    password: str | None = None
    with _collect_pypdf_warnings() as logged:
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                password = _decrypt(reader, path, passwords)
            page_count = len(reader.pages)
            pypdf_failure = None
        except ExtractionError:
            raise
        except Exception as exc:
            pypdf_failure = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        if pypdf_failure is None:
            extraction = _read_pages(reader, path, page_count, limits, started, problems)
            parser = "pypdf"
    if pypdf_failure is not None:
        # What viewers open, PDFium usually opens too: it repairs broken tables and streams.
        try:
            pdfium_document, password = open_with_passwords(data, path, tuple(passwords))
        except ExtractionError as exc:
            if "encrypted" in str(exc):
                raise
            # Both parsers' reasons, under one mention of the file.
            pdfium_reason = str(exc).removeprefix(f"{path}: not a PDF / broken file: ")
            raise ExtractionError(
                f"{path}: not a PDF / broken file: {pypdf_failure}; PDFium: {pdfium_reason}"
            ) from None
        page_count = len(pdfium_document)
        problems.append(f"read with pypdfium2: pypdf cannot open it ({pypdf_failure})")
        extraction = read_pages(pdfium_document, path, limits, started, problems)
        parser = "pypdfium2"
    else:
        problems.extend(_summarise_warnings(logged))
    timings["text"] += time.monotonic() - started
    document = ParsedDocument(
        source=str(path),
        kind="pdf",
        pages=extraction.pages,
        images=extraction.images,
        problems=problems,
        page_count=page_count,
        parser=parser,
        timings=timings,
    )
    stages = PdfiumStages(data, password, pdfium_document, path, limits, started, document)
    try:
        stages.recover_images(extraction)
        stages.recognise(extraction, ocr)
        stages.find_figures(extraction)
        stages.find_tables_and_drawings()
        stages.keep_shown_pages()
    finally:
        stages.close()
    return document


def _summarise_warnings(messages: list[str]) -> list[str]:
    unique = list(dict.fromkeys(" ".join(message.split()) for message in messages))
    lines = [f"pypdf warning: {message}" for message in unique[:_MAX_LOGGED_WARNINGS]]
    if len(unique) > _MAX_LOGGED_WARNINGS:
        lines.append(f"pypdf warning: {len(unique) - _MAX_LOGGED_WARNINGS} more not listed")
    return lines


@dataclass
class _PictureReader:
    """Decodes the pictures of each page once per PDF object, within the document's limits."""

    path: Path
    limits: ExtractionLimits
    started: float
    problems: list[str]
    extraction: Extraction
    by_object: dict[tuple[int, int], ExtractedImage] = field(default_factory=dict)
    attempted: int = 0
    skipped: int = 0

    def fresh(self, raw: list[RawImage], number: int) -> list[RawImage]:
        """The pictures not met on an earlier page (those just gain this page number)."""
        fresh: list[RawImage] = []
        for item in raw:
            key = object_key(item.stream) if item.stream is not None else None
            known = self.by_object.get(key) if key is not None else None
            if known is None:
                fresh.append(item)
            elif number not in known.pages:
                known.pages.append(number)
        return fresh

    def read(self, page: Any, number: int, text: str, layout: Layout | None) -> None:
        fresh = self.fresh(page_images(page, number, self.problems), number)
        if not fresh:
            return
        contexts = _caption_contexts(number, text, layout, fresh)
        for item, (context, kind, span) in zip(fresh, contexts, strict=True):
            if self.attempted >= self.limits.max_images_per_document:
                self.skipped += 1
                continue
            self.attempted += 1
            if time.monotonic() - self.started > self.limits.time_budget_s:
                raise ExtractionError(
                    f"{self.path}: time budget of {self.limits.time_budget_s:g}s exceeded on "
                    f"page {number}"
                )
            self._decode(page, item, number, (context, kind, span))

    def _decode(
        self,
        page: Any,
        item: RawImage,
        number: int,
        found: tuple[str, str, tuple[float, float] | None],
    ) -> None:
        context, kind, span = found
        try:
            extracted = decode_picture(page, item, number, self.limits, self.problems)
        except Undecodable as exc:
            size = stream_size(item.stream)
            self.extraction.undecoded.append(
                Undecoded(number, item.label, size, str(exc), context, kind, span)
            )
            return
        if extracted is None:
            return
        extracted.context, extracted.context_kind = context, kind
        self.extraction.images.append(extracted)
        if span is not None:
            self.extraction.spans[id(extracted)] = span
        key = object_key(item.stream) if item.stream is not None else None
        if key is not None:
            self.by_object[key] = extracted


def _page_text(page: Any, number: int, problems: list[str]) -> tuple[str, Layout | None]:
    try:
        return _page_layout(page)
    except Exception as exc:
        problems.append(f"page {number} text: cannot extract ({type(exc).__name__}: {exc})")
        return "", None


def _read_pages(
    reader: PdfReader,
    path: Path,
    page_count: int,
    limits: ExtractionLimits,
    started: float,
    problems: list[str],
) -> Extraction:
    extraction = Extraction()
    pictures = _PictureReader(path, limits, started, problems, extraction)
    for index in limits.pages(path, page_count, started, problems):
        number = index + 1
        try:
            page = reader.pages[index]
        except Exception as exc:
            problems.append(f"page {number}: cannot read page ({type(exc).__name__}: {exc})")
            continue
        raw_text, layout = _page_text(page, number, problems)
        text, untexted = usable_text(raw_text)
        extraction.pages.append(PageText(page=number, text=text))
        if untexted:
            extraction.untexted.append(number)
        pictures.read(page, number, text, layout)
    if pictures.skipped:
        problems.append(
            f"{pictures.skipped} images not decoded: the document reached "
            f"max_images_per_document={limits.max_images_per_document}"
        )
    return extraction
