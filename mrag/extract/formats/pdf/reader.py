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
import re
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import UnidentifiedImageError
from pypdf import PdfReader
from pypdf.generic import DictionaryObject, IndirectObject, StreamObject

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
    page_picture,
    read_pages,
    rendered_image,
    usable_text,
)
from mrag.extract.formats.pdf.render import (
    Box,
    RenderError,
    open_document,
    render_page,
    render_region,
)
from mrag.extract.formats.pdf.tables import PdfTable, find_tables
from mrag.extract.formats.pdf.vector_figures import find_figure_regions
from mrag.extract.hygiene import clean_text
from mrag.extract.ocr import OcrSettings, OcrText, recognise, resolve
from mrag.extract.tables import Table, table_unit
from mrag.images import to_rgb

# Form XObjects may nest; real documents go two or three deep, hostile ones forever.
_MAX_FORM_DEPTH = 12
# pypdf warnings kept per document; past this they are summarised, not listed.
_MAX_LOGGED_WARNINGS = 20
# Text fragments closer than this (in points) vertically belong to one visual line.
_LINE_TOLERANCE = 2.0


@dataclass
class _Line:
    text: str
    y: float


@dataclass
class _Layout:
    """Positions gathered while a page's text is extracted."""

    lines: list[_Line] = field(default_factory=list)
    # Image placements in drawing order: (XObject or inline name, (bottom, top) or None for forms).
    placements: list[tuple[str, tuple[float, float] | None]] = field(default_factory=list)
    inline_count: int = 0


@dataclass
class _RawImage:
    key: str | list[str]
    stream: DictionaryObject | None
    label: str


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


def _page_layout(page: Any) -> tuple[str, _Layout]:
    """Extract the page text and, in the same pass, where its lines and images are."""
    layout = _Layout()
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


def _int_value(value: Any) -> int | None:
    try:
        return int(value.get_object() if isinstance(value, IndirectObject) else value)
    except (TypeError, ValueError, AttributeError):
        return None


def _walk_xobject_images(
    resources_owner: Any, ancestors: list[str], seen_forms: set[int], depth: int
) -> Iterator[tuple[list[str], StreamObject]]:
    resources = resources_owner.get("/Resources")
    resources = resources.get_object() if resources is not None else None
    if not isinstance(resources, DictionaryObject):
        return
    xobjects = resources.get("/XObject")
    xobjects = xobjects.get_object() if xobjects is not None else None
    if not isinstance(xobjects, DictionaryObject):
        return
    for name in list(xobjects.keys()):
        entry = xobjects[name]
        stream = entry.get_object() if isinstance(entry, IndirectObject) else entry
        if not isinstance(stream, StreamObject):
            continue
        subtype = stream.get("/Subtype")
        if subtype == "/Image":
            yield [*ancestors, str(name)], stream
        elif subtype == "/Form" and depth < _MAX_FORM_DEPTH and id(stream) not in seen_forms:
            seen_forms.add(id(stream))
            yield from _walk_xobject_images(stream, [*ancestors, str(name)], seen_forms, depth + 1)


def _object_key(stream: DictionaryObject) -> tuple[int, int] | None:
    reference = stream.indirect_reference
    if reference is None:
        return None
    return (reference.idnum, reference.generation)


def _size_problem(stream: DictionaryObject, max_pixels: int) -> str | None:
    """Why an image stream must not be decoded, judged from its dictionary alone."""
    for label, candidate in (("image", stream), ("soft mask", stream.get("/SMask"))):
        if candidate is None:
            continue
        candidate = candidate.get_object()
        if not isinstance(candidate, DictionaryObject):
            continue
        width, height = _int_value(candidate.get("/Width")), _int_value(candidate.get("/Height"))
        if width is None or height is None or width <= 0 or height <= 0:
            return f"{label} has no valid /Width and /Height ({width}x{height})"
        if width * height > max_pixels:
            return (
                f"{label} is {width}x{height} = {width * height:,} pixels, over the limit of "
                f"{max_pixels:,}; not decoded"
            )
    return None


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
    layout: _Layout | None,
    images: list[_RawImage],
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


def _nearby_text(layout: _Layout, box: tuple[float, float]) -> str:
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


def _image_name(key: str | list[str]) -> str:
    parts = [key] if isinstance(key, str) else key
    return "/".join(part.lstrip("/") for part in parts)


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
    stages = _PdfiumStages(data, password, pdfium_document, path, limits, started, document)
    try:
        stages.recover_images(extraction)
        stages.recognise(extraction, ocr)
        stages.find_figures(extraction)
        stages.find_tables(extraction)
    finally:
        stages.close()
    return document


def _summarise_warnings(messages: list[str]) -> list[str]:
    unique = list(dict.fromkeys(" ".join(message.split()) for message in messages))
    lines = [f"pypdf warning: {message}" for message in unique[:_MAX_LOGGED_WARNINGS]]
    if len(unique) > _MAX_LOGGED_WARNINGS:
        lines.append(f"pypdf warning: {len(unique) - _MAX_LOGGED_WARNINGS} more not listed")
    return lines


def _read_pages(
    reader: PdfReader,
    path: Path,
    page_count: int,
    limits: ExtractionLimits,
    started: float,
    problems: list[str],
) -> Extraction:
    extraction = Extraction()
    pages, images = extraction.pages, extraction.images
    by_object: dict[tuple[int, int], ExtractedImage] = {}
    skipped_for_count = 0
    attempted = 0
    if page_count > limits.max_pages:
        problems.append(
            f"document has {page_count} pages; only the first {limits.max_pages} were read "
            "(max_pages)"
        )
    for index in range(min(page_count, limits.max_pages)):
        elapsed = time.monotonic() - started
        if elapsed > limits.time_budget_s:
            raise ExtractionError(
                f"{path}: time budget of {limits.time_budget_s:g}s exceeded after {index} of "
                f"{page_count} pages"
            )
        number = index + 1
        try:
            page = reader.pages[index]
        except Exception as exc:
            problems.append(f"page {number}: cannot read page ({type(exc).__name__}: {exc})")
            continue
        layout: _Layout | None
        try:
            raw_text, layout = _page_layout(page)
        except Exception as exc:
            problems.append(f"page {number} text: cannot extract ({type(exc).__name__}: {exc})")
            raw_text, layout = "", None
        text, untexted = usable_text(raw_text)
        pages.append(PageText(page=number, text=text))
        if untexted:
            extraction.untexted.append(number)

        raw = _page_images(page, number, problems)
        fresh: list[_RawImage] = []
        for item in raw:
            key = _object_key(item.stream) if item.stream is not None else None
            known = by_object.get(key) if key is not None else None
            if known is not None:
                if number not in known.pages:
                    known.pages.append(number)
            else:
                fresh.append(item)
        if not fresh:
            continue
        contexts = _caption_contexts(number, text, layout, fresh)
        for item, (context, kind, span) in zip(fresh, contexts, strict=True):
            if attempted >= limits.max_images_per_document:
                skipped_for_count += 1
                continue
            attempted += 1
            if time.monotonic() - started > limits.time_budget_s:
                raise ExtractionError(
                    f"{path}: time budget of {limits.time_budget_s:g}s exceeded on page {number}"
                )
            try:
                extracted = _decode(page, item, number, limits, problems)
            except _Undecodable as exc:
                extraction.undecoded.append(
                    Undecoded(
                        number, item.label, _stream_size(item.stream), str(exc), context, kind, span
                    )
                )
                continue
            if extracted is None:
                continue
            extracted.context, extracted.context_kind = context, kind
            images.append(extracted)
            if span is not None:
                extraction.spans[id(extracted)] = span
            key = _object_key(item.stream) if item.stream is not None else None
            if key is not None:
                by_object[key] = extracted
    if skipped_for_count:
        problems.append(
            f"{skipped_for_count} images not decoded: the document reached "
            f"max_images_per_document={limits.max_images_per_document}"
        )
    return extraction


def _annotation_appearances(page: Any) -> Iterator[tuple[str, StreamObject]]:
    """Appearance streams that a viewer draws for the page's visible annotations."""
    annotations = page.get("/Annots")
    annotations = annotations.get_object() if annotations is not None else None
    if not isinstance(annotations, list):
        return
    for number, entry in enumerate(annotations):
        annotation = entry.get_object() if isinstance(entry, IndirectObject) else entry
        if not isinstance(annotation, DictionaryObject):
            continue
        if (_int_value(annotation.get("/F", 0)) or 0) & 2:  # the Hidden flag
            continue
        candidates: list[Any] = []
        appearance = annotation.get("/AP")
        appearance = appearance.get_object() if appearance is not None else None
        if isinstance(appearance, DictionaryObject) and "/N" in appearance:
            normal = appearance["/N"].get_object()
            if isinstance(normal, StreamObject):
                candidates.append(normal)
            elif isinstance(normal, DictionaryObject):
                state = annotation.get("/AS")
                chosen = normal.get(state) if state is not None else None
                candidates.extend([chosen] if chosen is not None else list(normal.values()))
        characteristics = annotation.get("/MK")
        characteristics = characteristics.get_object() if characteristics is not None else None
        if isinstance(characteristics, DictionaryObject) and "/I" in characteristics:
            candidates.append(characteristics["/I"])  # a push button's icon
        for candidate in candidates:
            stream = candidate.get_object()
            if isinstance(stream, StreamObject):
                yield f"annot{number}", stream


def _page_images(page: Any, number: int, problems: list[str]) -> list[_RawImage]:
    """Every picture a page shows: XObject images (inside forms and annotations too), then inline
    images. Tiling-pattern tiles and Type 3 glyph bitmaps are texture and lettering, not figures,
    so they are not collected."""
    found: list[_RawImage] = []
    seen: set[int] = set()

    def add(key: list[str], stream: StreamObject) -> None:
        if id(stream) in seen:
            return
        seen.add(id(stream))
        found.append(
            _RawImage(key=key[0] if len(key) == 1 else key, stream=stream, label=_image_name(key))
        )

    try:
        for key, stream in _walk_xobject_images(page, [], set(), 0):
            add(key, stream)
        for name, appearance in _annotation_appearances(page):
            if appearance.get("/Subtype") == "/Image":
                add([name], appearance)
            else:
                for key, stream in _walk_xobject_images(appearance, [name], set(), 1):
                    add(key, stream)
    except Exception as exc:
        problems.append(f"page {number} images: cannot list XObjects ({type(exc).__name__}: {exc})")
    if _may_have_inline_images(page):
        try:
            listed = page.images.keys()  # keys, not the ImageFile objects iteration yields
            names = [key for key in listed if isinstance(key, str) and key[:1] == "~"]
        except Exception as exc:
            problems.append(
                f"page {number} inline images: cannot decode ({type(exc).__name__}: {exc})"
            )
            names = []
        found.extend(
            _RawImage(key=name, stream=None, label=f"inline{name.strip('~')}") for name in names
        )
    return found


_INLINE_MARK = re.compile(rb"(?:^|\s)BI\s")


def _may_have_inline_images(page: Any) -> bool:
    # Listing inline images makes pypdf parse and decode the whole content stream again; a cheap
    # byte search first spares that for the vast majority of pages, which have none.
    try:
        contents = page.get_contents()
        return contents is not None and _INLINE_MARK.search(contents.get_data()) is not None
    except Exception:
        return True


def _decode(
    page: Any, item: _RawImage, number: int, limits: ExtractionLimits, problems: list[str]
) -> ExtractedImage | None:
    where = f"page {number} image {item.label}"
    if item.stream is not None:
        refusal = _size_problem(item.stream, limits.max_pixels)
        if refusal is not None:
            problems.append(f"{where}: {refusal}")
            return None
    try:
        if item.stream is not None:
            decoded = item.stream.decode_as_image()
        else:
            decoded = page.images[item.key].image
        if decoded is None:
            raise ValueError("pypdf returned no image")
        width, height = decoded.size
        if width * height > limits.max_pixels:
            raise ValueError(f"decoded to {width}x{height}, over the pixel limit")
        rgb = to_rgb(decoded)
        rgb.load()
    except Exception as exc:
        raise _Undecodable(_decode_reason(exc)) from None
    return page_picture(rgb, number, f"p{number}-{item.label}")


class _Undecodable(Exception):
    """pypdf could not decode a picture; PDFium may still draw it."""


def _decode_reason(exc: Exception) -> str:
    """Why a picture could not be decoded, in words (no Python object reprs)."""
    if isinstance(exc, UnidentifiedImageError):
        return "the image data is not in a format Pillow reads"
    message = re.sub(r"<[\w.]+ object at 0x[0-9a-f]+>", "the image data", str(exc))
    message = " ".join(message.split())[:300]
    if "jbig2dec" in message:
        return "JBIG2 image and the jbig2dec program is not installed"
    return f"{type(exc).__name__}: {message}"


def _stream_size(stream: DictionaryObject | None) -> tuple[int, int] | None:
    if stream is None:
        return None
    width, height = _int_value(stream.get("/Width")), _int_value(stream.get("/Height"))
    return (width, height) if width and height else None


#: Pages with little text where a picture covers at least this share of the page are scans that
#: carry a stamp or a page number in their text layer: they are OCR'd too.
_SCAN_COVER = 0.6
_SCAN_MAX_CHARS = 100
#: A picture at least this share of its page's height is the page itself (a scan) for OCR context.
_PAGE_PICTURE_SHARE = 0.5
#: OCR starts on no page when less than this much of the file's time budget is left.
_OCR_RESERVE_S = 5.0
# Page renderings for OCR stay below this many pixels whatever the pixel limit (an A0 poster at
# 300 dpi would be 140 megapixels).
_OCR_MAX_PIXELS = 40_000_000


class _PdfiumStages:
    """The stages that need PDFium's view of the pages: OCR of pages without text and vector
    figures. The PDFium document is opened on first need only: most born-digital files never
    need it."""

    def __init__(
        self,
        data: bytes,
        password: str | None,
        opened: pdfium.PdfDocument | None,
        path: Path,
        limits: ExtractionLimits,
        started: float,
        document: ParsedDocument,
    ) -> None:
        self.data = data
        self.password = password
        self._pdfium = opened
        self._failed = False
        self.path = path
        self.limits = limits
        self.started = started
        self.document = document

    def _open(self) -> pdfium.PdfDocument | None:
        if self._pdfium is None and not self._failed:
            try:
                self._pdfium = open_document(self.data, self.password)
            except RenderError as exc:
                self._failed = True
                self.document.problems.append(f"PDFium cannot open the file ({exc})")
        return self._pdfium

    def _remaining(self) -> float:
        return self.limits.time_budget_s - (time.monotonic() - self.started)

    def close(self) -> None:
        if self._pdfium is not None:
            self._pdfium.close()
            self._pdfium = None

    # -- OCR -------------------------------------------------------------------------------------

    def _ocr_candidates(self, extraction: Extraction) -> list[int]:
        """Pages with no usable text that show something, and scans with a stamp of text."""
        document = self._open()
        if document is None:
            return []
        untexted = set(extraction.untexted)
        candidates = []
        for page in extraction.pages:
            number = page.page
            assert number is not None
            short = number in untexted
            if not short and len(page.text) >= _SCAN_MAX_CHARS:
                continue
            try:
                pdfium_page = document[number - 1]
                width, height = pdfium_page.get_size()
                cover = 0.0
                shows_something = False
                for obj in pdfium_page.get_objects(max_depth=2):
                    shows_something = True
                    if not short and obj.type == pdfium_c.FPDF_PAGEOBJ_IMAGE and obj.level == 0:
                        left, bottom, right, top = obj.get_bounds()
                        cover = max(cover, (right - left) * (top - bottom) / (width * height))
                    elif short:
                        break
            except Exception:
                continue
            if (short and shows_something) or cover >= _SCAN_COVER:
                candidates.append(number)
        return candidates

    def recognise(self, extraction: Extraction, settings: OcrSettings | None) -> None:
        """OCR the pages without a usable text layer, or list them when OCR cannot run."""
        if not extraction.untexted and all(
            len(page.text) >= _SCAN_MAX_CHARS for page in extraction.pages
        ):
            return
        clock = time.monotonic()
        candidates = self._ocr_candidates(extraction)
        self.document.timings["scan_check"] += time.monotonic() - clock
        if not candidates:
            return
        enabled = settings is not None and resolve(settings)[0]
        document = self._pdfium
        if not enabled or settings is None or document is None:
            untexted = set(extraction.untexted)
            self.document.no_text_pages.extend(n for n in candidates if n in untexted)
            return
        by_number = {page.page: page for page in extraction.pages}
        for position, number in enumerate(candidates):
            remaining = self._remaining()
            if remaining < _OCR_RESERVE_S:
                left = candidates[position:]
                self.document.problems.append(
                    f"OCR stopped before page {number}: the time budget of "
                    f"{self.limits.time_budget_s:g}s is spent (limits.time_budget_s); "
                    f"{len(left)} pages not OCR'd"
                )
                self.document.no_text_pages.extend(n for n in left if n in extraction.untexted)
                return
            page = by_number[number]
            recognised = self._recognise_page(document, number, settings, remaining)
            if recognised is None or not recognised.text:
                if number in extraction.untexted:
                    self.document.no_text_pages.append(number)
                continue
            text = clean_text(recognised.text).strip()
            if len(text) <= len(page.text):
                continue  # the text layer said more than the pixels do
            page.text, page.ocr_confidence = text, recognised.confidence
            self._page_pictures_read_as(number, text, extraction)

    def _recognise_page(
        self, document: pdfium.PdfDocument, number: int, settings: OcrSettings, remaining: float
    ) -> OcrText | None:
        clock = time.monotonic()
        try:
            picture = render_page(
                document[number - 1],
                dpi=settings.dpi,
                max_pixels=min(self.limits.max_pixels, _OCR_MAX_PIXELS),
            )
        except Exception as exc:
            self.document.problems.append(
                f"page {number} OCR: cannot render ({type(exc).__name__}: {exc})"
            )
            return None
        finally:
            self.document.timings["render"] += time.monotonic() - clock
        clock = time.monotonic()
        timeout = min(settings.page_timeout_s, remaining - _OCR_RESERVE_S / 2)
        try:
            return recognise(picture, settings, timeout_s=timeout)
        except Exception as exc:
            message = " ".join(str(exc).split())[:200]
            if "timeout" in message.lower():
                message = f"over the per-page time limit of {timeout:.0f}s ([ocr] page_timeout_s)"
            self.document.problems.append(f"page {number} OCR: {message}")
            return None
        finally:
            self.document.timings["ocr"] += time.monotonic() - clock

    def _page_pictures_read_as(self, number: int, text: str, extraction: Extraction) -> None:
        """A picture that is the page (a scan) is explained by the page's recognised text."""
        document = self._pdfium
        assert document is not None
        height = document[number - 1].get_size()[1]
        for image in extraction.images:
            span = extraction.spans.get(id(image))
            if image.pages[0] != number or image.context_kind == "caption" or span is None:
                continue
            if span[1] - span[0] >= _PAGE_PICTURE_SHARE * height:
                image.context, image.context_kind = trim_context(text), "ocr"

    # -- pictures pypdf cannot decode -------------------------------------------------------------

    def recover_images(self, extraction: Extraction) -> None:
        """Take each picture pypdf could not decode from PDFium's rendering of it."""
        if not extraction.undecoded:
            return
        clock = time.monotonic()
        taken: dict[int, set[int]] = {}
        try:
            for item in extraction.undecoded:
                self._recover(item, extraction, taken.setdefault(item.page, set()))
            extraction.images.sort(key=lambda image: image.pages[0] or 0)
        finally:
            self.document.timings["images"] += time.monotonic() - clock

    def _recover(self, item: Undecoded, extraction: Extraction, taken: set[int]) -> None:
        where = f"page {item.page} image {item.label}"
        document = self._open()
        picture = None
        failure = "PDFium cannot open the file"
        if document is not None:
            try:
                picture = rendered_image(document[item.page - 1], item.size, taken)
                failure = "PDFium found no such picture on the page"
            except Exception as exc:
                failure = f"PDFium cannot draw it either ({type(exc).__name__})"
        if picture is None:
            self.document.problems.append(f"{where}: cannot decode ({item.reason}; {failure})")
            return
        image = page_picture(picture, item.page, f"p{item.page}-{item.label}")
        image.context, image.context_kind = item.context, item.context_kind
        extraction.images.append(image)
        if item.span is not None:
            extraction.spans[id(image)] = item.span

    # -- tables ----------------------------------------------------------------------------------

    def find_tables(self, extraction: Extraction) -> None:
        """Tables of pages with a text layer: Markdown units after their page's text, their cells
        taken out of the page text, and each region rendered as one picture."""
        clock = time.monotonic()
        try:
            units = []
            for page in list(self.document.pages):
                if page.ocr_confidence is not None or not page.text or page.page is None:
                    continue
                units.extend(self._tables_on_page(page))
            self.document.pages.extend(units)
            self.document.pages.sort(key=lambda unit: unit.page or 0)
        finally:
            self.document.timings["tables"] += time.monotonic() - clock

    def _tables_on_page(self, page: PageText) -> list[PageText]:
        number = page.page
        assert number is not None
        document = self._open()
        if document is None:
            return []
        try:
            pdfium_page = document[number - 1]
            tables = find_tables(pdfium_page)
        except Exception as exc:
            self.document.problems.append(
                f"page {number} tables: cannot analyse ({type(exc).__name__}: {exc})"
            )
            return []
        if not tables:
            return []
        page.text = _without_cells(page.text, tables)
        units = []
        for table in tables:
            units.append(table_unit(Table(table.rows, table.caption, number)))
            if len(self.document.images) >= self.limits.max_images_per_document:
                continue
            try:
                picture = render_region(pdfium_page, table.box, max_pixels=self.limits.max_pixels)
            except Exception as exc:
                self.document.problems.append(
                    f"page {number} table: cannot render ({type(exc).__name__}: {exc})"
                )
                continue
            self.document.images.append(_table_picture(table, number, picture))
        return units

    # -- vector figures --------------------------------------------------------------------------

    def find_figures(self, extraction: Extraction) -> None:
        """Render the figures that captions name, raster and vector parts as one picture."""
        pages = [
            page
            for page in extraction.pages
            if page.ocr_confidence is None and page.text and find_captions(page.text)
        ]
        if not pages:
            return
        clock = time.monotonic()
        try:
            for page in pages:
                if self._remaining() <= 0:
                    raise ExtractionError(
                        f"{self.path}: time budget of {self.limits.time_budget_s:g}s exceeded "
                        f"while finding figures on page {page.page}"
                    )
                assert page.page is not None
                self._figures_on_page(page.page, extraction)
        finally:
            self.document.timings["figures"] += time.monotonic() - clock

    def _figures_on_page(self, number: int, extraction: Extraction) -> None:
        document = self._open()
        if document is None:
            return
        try:
            pdfium_page = document[number - 1]
            regions = find_figure_regions(pdfium_page)
        except Exception as exc:
            self.document.problems.append(
                f"page {number} figures: cannot analyse ({type(exc).__name__}: {exc})"
            )
            return
        on_page = [image for image in extraction.images if image.pages[0] == number]
        for region in regions:
            inside = [image for image in on_page if _within_span(extraction, image, region.box)]
            if region.drawn == 0 and inside:
                # A picture and nothing drawn around it: the picture itself is the figure.
                inside[0].context, inside[0].context_kind = region.caption.text, "caption"
                continue
            budget = self.limits.max_images_per_document
            if len(self.document.images) >= budget:
                self.document.problems.append(
                    f"page {number} figure {region.caption.label}: not rendered, the document "
                    f"reached max_images_per_document={budget}"
                )
                return
            try:
                picture = render_region(pdfium_page, region.box, max_pixels=self.limits.max_pixels)
            except Exception as exc:
                self.document.problems.append(
                    f"page {number} figure {region.caption.label}: cannot render "
                    f"({type(exc).__name__}: {exc})"
                )
                continue
            for image in inside:
                # The rendering shows these pictures already: one figure, one picture.
                self.document.images.remove(image)
                on_page.remove(image)
            for image in on_page:
                if image.context_kind == "caption" and image.context.startswith(
                    region.caption.label
                ):
                    image.context, image.context_kind = _fallback_context(extraction, number)
            figure = page_picture(picture, number, f"p{number}-{_slug(region.caption.label)}")
            figure.context, figure.context_kind = trim_context(region.caption.text), "caption"
            self.document.images.append(figure)


def _without_cells(text: str, tables: list[PdfTable]) -> str:
    """The page text without the lines that only repeat table cells (the table holds them).

    A line goes when, spaces aside, it is a run of one row's cells or all its words are cells:
    the text layer may glue neighbouring cells together or split a row differently.
    """
    rows = "\n".join(
        "".join("".join(cell.split()) for cell in row) for table in tables for row in table.rows
    )
    cells = {
        token for table in tables for row in table.rows for cell in row for token in cell.split()
    }

    def repeats_cells(line: str) -> bool:
        words = line.split()
        return bool(words) and ("".join(words) in rows or all(word in cells for word in words))

    return "\n".join(line for line in text.split("\n") if not repeats_cells(line)).strip()


def _table_picture(table: PdfTable, number: int, picture: Any) -> ExtractedImage:
    image = page_picture(picture, number, f"p{number}-table{int(table.box[3])}")
    head = "\n".join(table_unit(Table(table.rows)).text.split("\n")[:3])
    image.context = trim_context(table.caption or head)
    image.context_kind = "caption" if table.caption else "nearby"
    image.element = "table"
    return image


def _within_span(extraction: Extraction, image: ExtractedImage, box: Box) -> bool:
    span = extraction.spans.get(id(image))
    return span is not None and span[0] >= box[1] - 3.0 and span[1] <= box[3] + 3.0


def _fallback_context(extraction: Extraction, number: int) -> tuple[str, str]:
    text = next((page.text for page in extraction.pages if page.page == number), "")
    nearby = trim_context(text, NEARBY_CHARS)
    return (nearby, "nearby") if nearby else (f"picture on page {number}", "filename")


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "", label.lower().replace("fig.", "figure")) or "figure"
