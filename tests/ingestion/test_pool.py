"""Parsing with a pool of parser workers: the same store as with one worker, a file that hangs or
crashes its worker fails alone, and no worker outlives the run (also after Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import docgen
import numpy as np
import pytest
from helpers import python_env, store_contents

from mrag.extract.document import ExtractionError, ExtractionLimits, ParsedDocument
from mrag.extract.figures import ImageFilter
from mrag.extract.pool import ParserPool, auto_workers
from mrag.extract.worker import ParserProcess
from mrag.ingestion.pipeline import Pipeline, PipelineError
from mrag.ingestion.run import ingest
from mrag.store import Store, StoreSettings

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").exists(), reason="finds worker processes through /proc (Linux)"
)

SHARED_PDFS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "pdf"


def _children(pid: int | str = "self") -> set[int]:
    """The live children of process ``pid``."""
    pids: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            pids.update(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Generated documents of several kinds and, when the corpus is there, a few real PDFs."""
    docs = tmp_path / "docs"
    work = tmp_path / "work"
    docs.mkdir()
    work.mkdir()
    docgen.figures_pdf(docs / "report.pdf", work)
    for index in range(6):
        pages = [
            f"Part {index} page {page}: " + "the valve opens slowly. " * 40 for page in range(3)
        ]
        docgen.text_pdf(docs / f"text-{index}.pdf", pages)
    docgen.markdown_file(docs / "notes.md")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n not a pdf \n%%EOF")
    if SHARED_PDFS.is_dir():
        for path in sorted(SHARED_PDFS.rglob("*.pdf"))[:6]:
            (docs / f"shared-{path.parent.name}-{path.name}").symlink_to(path)
    return docs


def _ingest(docs: Path, store_path: Path, model, workers: int | str):
    pipeline = Pipeline().override(limits__workers=workers, chunking__max_tokens=128)
    with Store.open(StoreSettings(path=str(store_path))) as store:
        report = ingest([docs], pipeline=pipeline, store=store, model=model)
        ledger = {
            record.source: {k: v for k, v in vars(record).items() if k != "ingested_at"}
            for record in store.sources()
        }
    return report, store_contents(store_path), ledger


def test_the_pool_writes_the_same_points_and_ledger_as_one_worker(
    folder: Path, tmp_path: Path, tiny_model
) -> None:
    one, one_points, one_ledger = _ingest(folder, tmp_path / "one", tiny_model, 1)
    three, pool_points, pool_ledger = _ingest(folder, tmp_path / "three", tiny_model, 3)
    assert one_points["points"], "something was stored"
    assert pool_points["sources"] == one_points["sources"]
    assert pool_points["points"].keys() == one_points["points"].keys()
    for point_id, (payload, vector) in one_points["points"].items():
        assert pool_points["points"][point_id][0] == payload
        assert np.array_equal(pool_points["points"][point_id][1], vector), "bit for bit"
    assert pool_ledger == one_ledger
    # The report lists the files in the same order, with the same outcomes.
    assert [(o.source, o.status, o.reason) for o in three.files] == [
        (o.source, o.status, o.reason) for o in one.files
    ]
    assert any(o.status == "failed" and o.source.endswith("broken.pdf") for o in one.files)


@pytest.fixture(scope="module")
def slow_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 400-page PDF: parsing it takes far longer than the budgets below."""
    pages = [f"Page {i} " + "word " * 200 for i in range(400)]
    return docgen.text_pdf(tmp_path_factory.mktemp("slow") / "slow.pdf", pages)


def _small(tmp_path: Path, count: int) -> list[Path]:
    return [
        docgen.text_pdf(tmp_path / f"small-{n}.pdf", [f"Note {n}: the pump is primed first."])
        for n in range(count)
    ]


def _make(kill_after_s: float | None = None):
    def make() -> ParserProcess:
        return ParserProcess(
            limits=ExtractionLimits(), image_filter=ImageFilter(), kill_after_s=kill_after_s
        )

    return make


def test_a_hanging_file_fails_alone_and_the_other_workers_go_on(
    slow_pdf: Path, tmp_path: Path
) -> None:
    small = _small(tmp_path, 5)
    paths = [small[0], slow_pdf, *small[1:]]
    with ParserPool(2, _make(kill_after_s=0.3)) as pool:
        outcomes = list(pool.parse(paths))
    assert [index for index, _ in outcomes] == list(range(len(paths)))
    failed = outcomes[1][1]
    assert isinstance(failed, ExtractionError)
    assert "slow.pdf: over the time budget" in str(failed)
    for n, (_, outcome) in enumerate(outcomes[:1] + outcomes[2:]):
        assert isinstance(outcome, ParsedDocument), outcome
        assert f"Note {n}: the pump" in outcome.text


def test_a_crashing_worker_fails_only_its_file(slow_pdf: Path, tmp_path: Path) -> None:
    small = _small(tmp_path, 4)
    made: list[ParserProcess] = []

    def make() -> ParserProcess:
        made.append(_make()())
        return made[-1]

    def kill_the_slow_one() -> None:
        # What the kernel's OOM killer or a segfault does, while the slow file is in flight.
        deadline = time.monotonic() + 120
        while not (made and made[0].busy and made[0].pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(made[0].pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_the_slow_one)
    killer.start()
    with ParserPool(2, make) as pool:
        outcomes = list(pool.parse([slow_pdf, *small]))
    killer.join()
    assert isinstance(outcomes[0][1], ExtractionError)
    assert "slow.pdf: the parser crashed (exit code -9)" in str(outcomes[0][1])
    assert [type(outcome) for _, outcome in outcomes[1:]] == [ParsedDocument] * 4


def test_closing_the_pool_mid_file_leaves_no_worker(slow_pdf: Path, tmp_path: Path) -> None:
    before = _children()
    with ParserPool(2, _make()) as pool:
        outcomes = pool.parse([*_small(tmp_path, 1), slow_pdf, slow_pdf])
        next(outcomes)  # the slow files are in flight now
        workers = _children() - before
        assert len(workers) == 2
    outcomes.close()
    assert not any(_alive(pid) for pid in workers)


def test_ctrl_c_during_a_run_leaves_no_worker(slow_pdf: Path, tmp_path: Path, tiny_checkpoint):
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(4):
        (docs / f"slow-{n}.pdf").write_bytes(slow_pdf.read_bytes())
    process = subprocess.Popen(
        [sys.executable, "-m", "mrag", "ingest", str(docs), "--workers", "2"],
        cwd=tmp_path,
        env=python_env({"MRAG_MODEL": str(tiny_checkpoint)}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    while len(workers) < 2 and time.monotonic() < deadline and process.poll() is None:
        workers = _children(process.pid)
        time.sleep(0.05)
    assert len(workers) == 2, "both parser workers started"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert not any(_alive(pid) for pid in workers), stderr.decode()


def test_auto_is_sized_from_cores_memory_and_files() -> None:
    assert auto_workers(8192, 1) == 1
    assert 1 <= auto_workers(8192, 1000) <= len(os.sched_getaffinity(0))


def test_workers_setting_is_auto_or_a_positive_number(tmp_path: Path) -> None:
    assert Pipeline.default().limits.workers == "auto"
    assert Pipeline().override(limits__workers=3).limits.workers == 3
    for bad in ("0", '"many"', "1.5", "true"):
        path = tmp_path / "pipeline.toml"
        path.write_text(f"[limits]\nworkers = {bad}\n")
        with pytest.raises(PipelineError, match="workers"):
            Pipeline.from_toml(path)
    with pytest.raises(PipelineError, match="workers"):
        Pipeline().override(limits__workers=0)


class _Worker:
    """Stands in for a parser process in the pool's bookkeeping (no process, no parsing)."""

    ocr_slots = None

    def submit(self, path: Path) -> None:
        self.path = path


@pytest.mark.parametrize("lookahead", [2, 8])
def test_a_slow_file_holds_up_the_other_workers_only_past_the_lookahead(lookahead: int) -> None:
    from mrag.extract.pool import _Round

    pool = ParserPool(2, _Worker, lookahead=lookahead, cores=1)
    paths = [Path(f"{n}.pdf") for n in range(20)]
    run = _Round(pool, paths)
    run.fill(0)
    slow = next(worker for worker, index in run.running.items() if index == 0)
    # Every other file parses at once; file 0 never finishes.
    while True:
        quick = [worker for worker in run.running if worker is not slow]
        if not quick:
            break
        run.done[run.running.pop(quick[0])] = "parsed"
        run.fill(0)
    assert run.next == lookahead + 1  # file 0 and the lookahead files after it
    run.done[run.running.pop(slow)] = "parsed"
    run.fill(1)
    assert run.next == min(len(paths), lookahead + 2)


class _PipeWorker:
    """Stands in for a parser process behind a real pipe: each file is "parsed" at once."""

    ocr_slots = None
    submitted: list[Path]

    def __init__(self) -> None:
        import multiprocessing

        self.replies, self._sender = multiprocessing.Pipe(duplex=False)
        self.submitted = []

    def submit(self, path: Path) -> None:
        self.submitted.append(path)
        self._sender.send(path.name)

    def seconds_left(self) -> float:
        return 60.0

    def result(self) -> tuple[str, dict]:
        return self.replies.recv(), {}

    def close(self) -> None:
        self.replies.close()
        self._sender.close()


def test_the_workers_go_on_parsing_while_the_caller_holds_what_it_took() -> None:
    workers: list[_PipeWorker] = []

    def make() -> _PipeWorker:
        workers.append(_PipeWorker())
        return workers[-1]

    paths = [Path(f"{n}.pdf") for n in range(40)]
    with ParserPool(2, make, lookahead=6, cores=1) as pool:
        outcomes = pool.parse(paths)
        assert next(outcomes) == (0, "0.pdf")
        # The caller is busy with file 0 (embedding, say): the window runs from what it took.
        deadline = time.monotonic() + 5
        while sum(len(w.submitted) for w in workers) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        assert sum(len(w.submitted) for w in workers) == 1 + 6 + 1  # taken, window, next
        rest = list(outcomes)
    assert rest == [(n, f"{n}.pdf") for n in range(1, 40)]
    assert sorted(p for w in workers for p in w.submitted) == sorted(paths)
