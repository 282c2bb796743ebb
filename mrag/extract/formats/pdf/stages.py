"""The PDF stages that need PDFium's view of the pages: pictures pypdf cannot decode, OCR of pages
without a text layer, figures found from their captions, and tables."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from mrag.extract.document import (
    ExtractedImage,
    ExtractionError,
    ExtractionLimits,
    PageText,
    ParsedDocument,
)
from mrag.extract.figures import (
    NEARBY_CHARS,
    ImageFilter,
    find_captions,
    trim_context,
)
from mrag.extract.formats.pdf.loose_figures import find_loose_figures, nearest_text
from mrag.extract.formats.pdf.page_pictures import INK_SHARE, page_as_picture, picture_ink
from mrag.extract.formats.pdf.pdfium import (
    Extraction,
    Undecoded,
    page_picture,
    rendered_image,
)
from mrag.extract.formats.pdf.render import (
    Box,
    RenderError,
    open_document,
    render_page,
    render_region,
)
from mrag.extract.formats.pdf.tables import PdfTable, find_tables
from mrag.extract.formats.pdf.vector_figures import find_figure_regions, page_graphics
from mrag.extract.hygiene import clean_text
from mrag.extract.ocr import OcrSettings, OcrText, recognise, resolve
from mrag.extract.ocr_slots import in_order, installed
from mrag.extract.tables import Table, table_unit

# Form XObjects may nest; real documents go two or three deep, hostile ones forever.
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


@dataclass(frozen=True)
class _PageOcr:
    """What OCR made of one page: its text (None when it failed, with the problem why)."""

    number: int
    recognised: OcrText | None
    problem: str | None
    seconds: float = 0.0


class PdfiumStages:
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
        # Per page, the regions already stored as a table or a captioned figure.
        self.taken: dict[int, list[Box]] = {}

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
        stopped: list[int] = []
        tasks = self._ocr_tasks(document, candidates, settings, stopped)
        by_number = {page.page: page for page in extraction.pages}
        for outcome in in_order(tasks, installed()):
            self._take_ocr(outcome, extraction, by_number[outcome.number])
        if stopped:
            self.document.problems.append(
                f"OCR stopped before page {stopped[0]}: the time budget of "
                f"{self.limits.time_budget_s:g}s is spent (limits.time_budget_s); "
                f"{len(stopped)} pages not OCR'd"
            )
            self.document.no_text_pages.extend(n for n in stopped if n in extraction.untexted)

    def _ocr_tasks(
        self,
        document: pdfium.PdfDocument,
        candidates: list[int],
        settings: OcrSettings,
        stopped: list[int],
    ) -> Iterator[Callable[[], _PageOcr]]:
        """Each page's OCR task, rendered here (PDFium stays on this thread) when it is next to
        run; once the time budget is spent, the pages left go to ``stopped`` instead."""
        for position, number in enumerate(candidates):
            if self._remaining() < _OCR_RESERVE_S:
                stopped.extend(candidates[position:])
                return
            # No local keeps the picture: it lives as long as its task.
            yield self._ocr_task(document, number, settings)

    def _ocr_task(
        self, document: pdfium.PdfDocument, number: int, settings: OcrSettings
    ) -> Callable[[], _PageOcr]:
        """Page ``number`` rendered for OCR with the task that reads it, or the problem why it
        cannot be rendered as a task that only reports it."""
        clock = time.monotonic()
        try:
            picture = render_page(
                document[number - 1],
                dpi=settings.dpi,
                max_pixels=min(self.limits.max_pixels, _OCR_MAX_PIXELS),
            )
            return partial(self._recognise_page, number, picture, settings)
        except Exception as exc:
            problem = f"page {number} OCR: cannot render ({type(exc).__name__}: {exc})"
            return partial(_PageOcr, number, None, problem)
        finally:
            self.document.timings["render"] += time.monotonic() - clock

    def _recognise_page(self, number: int, picture: Image.Image, settings: OcrSettings) -> _PageOcr:
        """OCR one rendered page (on a thread of its own: it touches nothing shared)."""
        clock = time.monotonic()
        timeout = min(settings.page_timeout_s, self._remaining() - _OCR_RESERVE_S / 2)
        try:
            recognised = recognise(picture, settings, timeout_s=timeout)
        except Exception as exc:
            message = " ".join(str(exc).split())[:200]
            if "timeout" in message.lower():
                message = f"over the per-page time limit of {timeout:.0f}s ([ocr] page_timeout_s)"
            return _PageOcr(number, None, f"page {number} OCR: {message}", time.monotonic() - clock)
        return _PageOcr(number, recognised, None, time.monotonic() - clock)

    def _take_ocr(self, outcome: _PageOcr, extraction: Extraction, page: PageText) -> None:
        """Use one page's OCR, in page order: its text if it says more than the text layer."""
        number = outcome.number
        self.document.timings["ocr"] += outcome.seconds
        if outcome.problem is not None:
            self.document.problems.append(outcome.problem)
        recognised = outcome.recognised
        if recognised is None or not recognised.text:
            if number in extraction.untexted:
                self.document.no_text_pages.append(number)
            return
        text = clean_text(recognised.text).strip()
        if len(text) <= len(page.text):
            return  # the text layer said more than the pixels do
        page.text, page.ocr_confidence = text, recognised.confidence
        self._page_pictures_read_as(number, text, extraction)

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

    # -- figures without a caption ----------------------------------------------------------------

    def _loose_on_page(self, number: int, page: Any, graphics: list[Any]) -> None:
        clock = time.monotonic()
        try:
            found = find_loose_figures(page, self.taken.get(number, []), graphics)
            if not found:
                return
            textpage = page.get_textpage()
            for position, figure in enumerate(found):
                if len(self.document.images) >= self.limits.max_images_per_document:
                    return
                picture = render_region(page, figure.box, max_pixels=self.limits.max_pixels)
                if picture_ink(picture) < INK_SHARE:
                    continue  # drawn in white on white: nothing a reader sees
                image = page_picture(picture, number, f"p{number}-drawing{position + 1}")
                context = nearest_text(textpage, figure.box, NEARBY_CHARS)
                image.context = trim_context(context, NEARBY_CHARS) or f"drawing on page {number}"
                image.context_kind = "nearby" if context else "filename"
                self.document.images.append(image)
        except Exception as exc:
            self.document.problems.append(
                f"page {number} figures without captions: cannot analyse "
                f"({type(exc).__name__}: {exc})"
            )
        finally:
            self.document.timings["loose_figures"] += time.monotonic() - clock

    # -- pages that are only a picture ------------------------------------------------------------

    def keep_shown_pages(self) -> None:
        """Render each page that shows something but yielded no text, table or picture."""
        document = self.document
        yielded = {unit.page for unit in document.pages if unit.text.strip()}
        # A picture the image filter will drop (an icon, a rule) does not stand for its page.
        noise = ImageFilter()
        yielded.update(
            page
            for image in document.images
            if min(image.image.size) >= noise.min_side
            and max(image.image.size) <= noise.max_aspect * min(image.image.size)
            for page in image.pages
        )
        bare = [
            number
            for number in range(1, min(document.page_count, self.limits.max_pages) + 1)
            if number not in yielded
        ]
        if not bare or self._open() is None:
            return
        clock = time.monotonic()
        try:
            for number in bare:
                self._keep_page(number)
        finally:
            document.timings["pages"] += time.monotonic() - clock

    def _keep_page(self, number: int) -> None:
        assert self._pdfium is not None
        if len(self.document.images) >= self.limits.max_images_per_document:
            return
        try:
            image = page_as_picture(
                self._pdfium[number - 1], number, self.path.name, self.limits.max_pixels
            )
        except Exception as exc:
            self.document.problems.append(
                f"page {number}: cannot render the page ({type(exc).__name__}: {exc})"
            )
            return
        if image is not None:
            self.document.images.append(image)

    # -- tables ----------------------------------------------------------------------------------

    def find_tables_and_drawings(self) -> None:
        """On each page with a text layer: its tables (Markdown units after the page's text, their
        cells taken out of the page text, each region rendered as one picture), then the drawings
        no caption names. Both read the page's graphics, listed once."""
        pages = [
            page
            for page in self.document.pages
            if page.ocr_confidence is None and page.text and page.page is not None
        ]
        document = self._open() if pages else None
        if document is None:
            return
        units = []
        for page in pages:
            assert page.page is not None
            if self._remaining() <= 0:
                self.document.problems.append(
                    f"tables and figures without captions: not looked for from page {page.page} "
                    f"on, the time budget of {self.limits.time_budget_s:g}s is spent"
                )
                break
            clock = time.monotonic()
            try:
                pdfium_page = document[page.page - 1]
                graphics = list(page_graphics(pdfium_page, tuple(pdfium_page.get_cropbox())))
            except Exception as exc:
                self.document.problems.append(
                    f"page {page.page} graphics: cannot list ({type(exc).__name__}: {exc})"
                )
                continue
            units.extend(self._tables_on_page(page, pdfium_page, graphics))
            self.document.timings["tables"] += time.monotonic() - clock
            self._loose_on_page(page.page, pdfium_page, graphics)
        self.document.pages.extend(units)
        self.document.pages.sort(key=lambda unit: unit.page or 0)

    def _tables_on_page(
        self, page: PageText, pdfium_page: Any, graphics: list[Any]
    ) -> list[PageText]:
        number = page.page
        assert number is not None
        try:
            tables = find_tables(pdfium_page, graphics=graphics, text=page.text)
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
            self.taken.setdefault(number, []).append(table.box)
            units.append(table_unit(Table(table.rows, table.caption, number)))
            if len(self.document.images) >= self.limits.max_images_per_document:
                continue
            picture = self._render(pdfium_page, table.box, f"page {number} table")
            if picture is not None:
                self.document.images.append(_table_picture(table, number, picture))
        return units

    def _render(self, pdfium_page: Any, box: Box, where: str) -> Image.Image | None:
        """``box`` of the page rendered within the pixel limit, or ``None`` with the reason
        noted as a problem of ``where`` ("page 3 table")."""
        try:
            return render_region(pdfium_page, box, max_pixels=self.limits.max_pixels)
        except Exception as exc:
            self.document.problems.append(f"{where}: cannot render ({type(exc).__name__}: {exc})")
            return None

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
            self.taken.setdefault(number, []).append(region.box)
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
            where = f"page {number} figure {region.caption.label}"
            picture = self._render(pdfium_page, region.box, where)
            if picture is None:
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
