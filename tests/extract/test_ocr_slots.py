"""OCR pages spread over the slots of a parser pool: the scheduler with stand-in pages, then the
real Tesseract on a generated multi-page scan with one and with two slots."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docgen
import pytest

from mrag.extract.document import ExtractionLimits, ParsedDocument
from mrag.extract.ocr import OcrSettings, probe
from mrag.extract.ocr_slots import OwnSlot, SharedSlots, Slots, in_order, install, installed
from mrag.extract.pool import ParserPool
from mrag.extract.read import parse
from mrag.extract.worker import ParserProcess
from mrag.ingestion.pipeline import Pipeline

needs_tesseract = pytest.mark.skipif(
    probe(OcrSettings()) is not None, reason="Tesseract with English data is not installed"
)


@pytest.fixture
def slots() -> Iterator[SharedSlots]:
    """Worker 0's view of a two-worker pool's slots, worker 0 busy (as when it has a file)."""
    shared = SharedSlots.create(2)
    shared.claim(0)
    yield shared.for_worker(0)
    shared.close()


class Pages:
    """Stand-in OCR: each page's task notes how many run at once; page 1 waits for page 2 to
    start (so it only finishes if both run at the same time) and page 2 ends first."""

    def __init__(self, count: int, *, wait_for_two: bool) -> None:
        self.count = count
        self.wait_for_two = wait_for_two
        self.running = 0
        self.most = 0
        self.second_started = threading.Event()
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def task(self, number: int) -> Callable[[], int]:
        def run() -> int:
            with self._lock:
                self.running += 1
                self.most = max(self.most, self.running)
                self.threads.add(threading.current_thread().name)
            if number == 2:
                self.second_started.set()
            if number == 1 and self.wait_for_two:
                assert self.second_started.wait(10), "page 2 never ran beside page 1"
            time.sleep(0.05)
            with self._lock:
                self.running -= 1
            return number

        return run

    def tasks(self, budget: int | None = None, stopped: list[int] | None = None) -> Iterator:
        for number in range(1, self.count + 1):
            if budget is not None and number > budget:
                assert stopped is not None
                stopped.extend(range(number, self.count + 1))
                return
            yield self.task(number)


def test_two_slots_run_two_pages_at_once_and_answer_in_page_order(slots: SharedSlots) -> None:
    pages = Pages(6, wait_for_two=True)
    assert list(in_order(pages.tasks(), slots)) == [1, 2, 3, 4, 5, 6]
    assert pages.most == 2
    # The borrowed slot is back: worker 0 keeps its own, the other is free.
    assert slots.free() == 1


def test_one_slot_runs_the_pages_one_after_the_other_on_the_callers_thread() -> None:
    pages = Pages(4, wait_for_two=False)
    assert list(in_order(pages.tasks(), OwnSlot())) == [1, 2, 3, 4]
    assert pages.most == 1 and pages.threads == {threading.current_thread().name}


def test_no_page_is_borrowed_while_the_other_worker_has_a_file(slots: SharedSlots) -> None:
    shared = SharedSlots(slots.fd, slots.width)
    shared.claim(1)
    pages = Pages(4, wait_for_two=False)
    assert list(in_order(pages.tasks(), slots)) == [1, 2, 3, 4]
    assert pages.most == 1 and shared.free() == 0


def test_a_spent_budget_stops_handing_out_pages_and_the_rest_finish(slots: SharedSlots) -> None:
    pages = Pages(6, wait_for_two=True)
    stopped: list[int] = []
    assert list(in_order(pages.tasks(budget=3, stopped=stopped), slots)) == [1, 2, 3]
    assert stopped == [4, 5, 6]
    assert pages.running == 0 and slots.free() == 1


def test_a_worker_killed_while_borrowing_gets_its_slots_back_through_the_pool() -> None:
    shared = SharedSlots.create(3)
    try:
        shared.claim(0)
        worker = shared.for_worker(0)
        assert worker.take() and worker.take() and not worker.take()
        assert shared.free() == 0
        shared.settle(0)  # the worker died without giving anything back
        assert shared.free() == 3
    finally:
        shared.close()


def test_a_slot_is_owed_to_a_worker_that_got_a_file_while_it_was_borrowed() -> None:
    shared = SharedSlots.create(2)
    try:
        shared.claim(0)
        borrower = shared.for_worker(0)
        assert borrower.take()
        shared.claim(1)  # worker 1 gets a file: its slot is owed
        assert shared.free() == -1 and not borrower.take()
        borrower.give()
        assert shared.free() == 0 and not borrower.take()
    finally:
        shared.close()


# -- the real Tesseract --------------------------------------------------------------------------

SCAN_PAGES = [
    [f"Page {number} of the harbour survey", line, "Signed by the inspector on duty."]
    for number, line in enumerate(
        [
            "The north quay needs new fenders before the spring tides.",
            "Crane four passed its load test with a small margin.",
            "Dredging of the channel is planned for the second week of May.",
            "The pilot boat engine was rebuilt and runs quietly again.",
        ],
        start=1,
    )
]
OCR = OcrSettings(enabled=True, dpi=150)


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("survey")
    return docgen.scan_pdf(work / "survey.pdf", work, SCAN_PAGES)


def _parse_with(slots: Slots, path: Path, limits: ExtractionLimits | None = None) -> ParsedDocument:
    before = installed()
    install(slots)
    try:
        return parse(path, ocr=OCR, limits=limits or ExtractionLimits())
    finally:
        install(before)


def _ocr_view(document: ParsedDocument) -> tuple[object, ...]:
    return (
        [(page.page, page.text, page.ocr_confidence) for page in document.pages],
        document.problems,
        document.no_text_pages,
        [image.context for image in document.images],
    )


@needs_tesseract
def test_pages_read_the_same_with_one_and_with_two_slots(scan: Path, slots: SharedSlots) -> None:
    one = _parse_with(OwnSlot(), scan)
    two = _parse_with(slots, scan)
    assert _ocr_view(two) == _ocr_view(one)
    assert [page.page for page in one.pages] == [1, 2, 3, 4]
    for page, lines in zip(one.pages, SCAN_PAGES, strict=True):
        assert "inspector" in page.text and lines[1].split()[1] in page.text, page.text
    assert slots.free() == 1


@needs_tesseract
def test_a_budget_spent_before_ocr_lists_every_page_whatever_the_slots(
    scan: Path, slots: SharedSlots
) -> None:
    # Less than the 5 s OCR keeps in reserve: no page is started.
    limits = ExtractionLimits(time_budget_s=4.0)
    one = _parse_with(OwnSlot(), scan, limits)
    two = _parse_with(slots, scan, limits)
    assert _ocr_view(two) == _ocr_view(one)
    assert one.no_text_pages == [1, 2, 3, 4]
    assert one.problems == [
        "OCR stopped before page 1: the time budget of 4s is spent (limits.time_budget_s); "
        "4 pages not OCR'd"
    ]


def _tesseracts_below(pid: int) -> int:
    """How many Tesseract processes run below process ``pid``, at any depth."""
    count = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            try:
                count += Path(f"/proc/{child}/comm").read_text().strip() == "tesseract"
                count += _tesseracts_below(child)
            except OSError:
                continue
    return count


@needs_tesseract
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="watches processes in /proc")
def test_the_one_worker_of_a_pool_with_two_cores_reads_two_pages_at_once(scan: Path) -> None:
    pipeline = Pipeline()

    def make() -> ParserProcess:
        return ParserProcess(
            limits=pipeline.extraction_limits(), image_filter=pipeline.image_filter(), ocr=OCR
        )

    alone = _parse_with(OwnSlot(), scan)
    most = 0
    with ParserPool(1, make, cores=2) as pool:
        outcomes = pool.parse([scan])
        watching = threading.Event()

        def watch() -> None:
            nonlocal most
            while not watching.is_set():
                most = max(most, _tesseracts_below(os.getpid()))
                time.sleep(0.005)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            [(_, pooled)] = list(outcomes)
        finally:
            watching.set()
            watcher.join()
    assert isinstance(pooled, ParsedDocument)
    assert _ocr_view(pooled) == _ocr_view(alone)
    assert most == 2
