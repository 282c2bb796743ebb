"""The parser worker: real files parsed in a separate process; a file that runs past its time,
crashes the worker or overruns the memory cap fails alone, with its name and the reason, and the
next file is parsed."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import docgen
import pytest

from mrag.extract.document import ExtractionError, ExtractionLimits
from mrag.extract.figures import ImageFilter
from mrag.extract.read import parse
from mrag.extract.worker import ParserProcess

pytestmark = pytest.mark.skipif(
    not Path(f"/proc/self/task/{os.getpid()}/children").exists(),
    reason="finds the worker process through /proc/.../children (Linux)",
)


def _children() -> set[int]:
    """The processes this test process started and that are still there."""
    pids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        pids.update(int(pid) for pid in (task / "children").read_text().split())
    return pids


def _worker(started_before: set[int]) -> int:
    """The pid of the one worker started since ``started_before`` was taken."""
    [pid] = _children() - started_before
    return pid


@pytest.fixture(scope="module")
def slow_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 400-page PDF: parsing it takes about a second, far longer than the budgets below."""
    pages = [f"Page {i} " + "word " * 200 for i in range(400)]
    return docgen.text_pdf(tmp_path_factory.mktemp("slow") / "slow.pdf", pages)


@pytest.fixture
def small_pdf(tmp_path: Path) -> Path:
    return docgen.text_pdf(tmp_path / "small.pdf", ["The pump is primed before the first start."])


@pytest.fixture
def parser() -> Iterator[ParserProcess]:
    with ParserProcess(limits=ExtractionLimits(), image_filter=ImageFilter()) as worker:
        yield worker


def test_a_real_pdf_comes_back_as_parsing_it_here_gives(parser: ParserProcess, tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    path = docgen.figures_pdf(tmp_path / "report.pdf", work)
    parser.submit(path)
    document, seconds = parser.result()
    here = parse(path)
    assert document.text == here.text and "figure" in document.text.lower()
    assert [image.content_hash for image in document.images] == [
        image.content_hash for image in here.images
    ]
    assert document.images, "the figures survive the trip between processes"
    assert seconds >= 0.0


def test_a_file_past_its_time_fails_alone_and_a_fresh_worker_takes_the_next(
    parser: ParserProcess, slow_pdf: Path, small_pdf: Path
) -> None:
    before = _children()
    parser.kill_after_s = 0.05
    parser.submit(slow_pdf)
    stuck = _worker(before)
    with pytest.raises(ExtractionError, match=r"slow\.pdf: over the time budget \(stopped after"):
        parser.result()
    assert stuck not in _children(), "the worker past its time was killed"

    parser.kill_after_s = 300.0
    parser.submit(small_pdf)
    document, _ = parser.result()
    assert "pump is primed" in document.text
    assert _worker(before) != stuck


def test_a_worker_that_dies_fails_only_its_file(
    parser: ParserProcess, slow_pdf: Path, small_pdf: Path
) -> None:
    before = _children()
    parser.submit(slow_pdf)
    os.kill(_worker(before), signal.SIGKILL)  # what the kernel's OOM killer or a segfault does
    with pytest.raises(ExtractionError, match=r"slow\.pdf: the parser crashed \(exit code -9\)"):
        parser.result()
    parser.submit(small_pdf)
    document, _ = parser.result()
    assert "pump is primed" in document.text


def test_a_file_over_the_memory_cap_fails_with_a_reason(tmp_path: Path, small_pdf: Path) -> None:
    # The cap is far below what the interpreter already maps: no large allocation can succeed.
    big = tmp_path / "big.txt"
    big.write_text("word " * 400_000)
    with ParserProcess(
        limits=ExtractionLimits(), image_filter=ImageFilter(), memory_mb=1
    ) as capped:
        capped.submit(big)
        with pytest.raises(ExtractionError, match=r"big\.txt: .*[Mm]emory"):
            capped.result()
    with ParserProcess(limits=ExtractionLimits(), image_filter=ImageFilter()) as parser:
        parser.submit(big)
        document, _ = parser.result()
        assert document.text.startswith("word word")


def test_a_broken_file_fails_with_its_name_and_the_worker_goes_on(
    parser: ParserProcess, tmp_path: Path, small_pdf: Path
) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n this is not really a pdf \n%%EOF")
    before = _children()
    parser.submit(broken)
    with pytest.raises(ExtractionError, match=r"broken\.pdf"):
        parser.result()
    worker = _worker(before)
    parser.submit(small_pdf)
    assert "pump is primed" in parser.result()[0].text
    assert _worker(before) == worker, "a parse error does not cost a worker restart"


def test_one_file_at_a_time_and_closing_stops_the_worker(small_pdf: Path) -> None:
    before = _children()
    parser = ParserProcess(limits=ExtractionLimits(), image_filter=ImageFilter())
    with pytest.raises(RuntimeError, match="no file was submitted"):
        parser.result()
    parser.submit(small_pdf)
    with pytest.raises(RuntimeError, match="already being parsed"):
        parser.submit(small_pdf)
    parser.result()
    assert len(_children() - before) == 1
    parser.close()
    assert _children() - before == set()
    parser.close()  # closing twice is harmless
