"""What a person sees while ``mrag ingest`` runs in a terminal: a status from the start, then a
bar that moves per file read and per embedding batch, before anything is written."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

from mrag.ingestion.progress import ConsoleProgress
from mrag.ingestion.report import FileOutcome

REPO = Path(__file__).resolve().parents[2]
WORDS = [
    "pumps",
    "valves",
    "gaskets",
    "pressure",
    "winter",
    "station",
    "inspection",
    "report",
    "quarterly",
    "water",
]
BAR = re.compile(
    r"\] (\d+) read, (\d+) done of (\d+) files\s+(\d+)/(\d+) chunks, (\d+)/(\d+) images"
)


def _notes(folder: Path, count: int) -> None:
    folder.mkdir()
    for number in range(count):
        paragraphs = [
            " ".join(WORDS[(number + line + word) % len(WORDS)] for word in range(30)) + "."
            for line in range(4)
        ]
        (folder / f"notes-{number}.md").write_text(
            f"# Notes {number}\n\n" + "\n\n".join(paragraphs), encoding="utf-8"
        )


def _run_in_terminal(args: list[str], cwd: Path) -> tuple[list[str], str, int]:
    """Run the CLI with standard error on a pseudo-terminal; its frames (the text between
    carriage returns and newlines) in order, standard output and the exit code."""
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "220"}
    process = subprocess.Popen(
        [sys.executable, "-m", "mrag", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    received = bytearray()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 300)
            if not ready:
                process.kill()
                raise AssertionError("no output for 300 s")
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal's other side is closed: the run is over
                break
            if not data:
                break
            received += data
    finally:
        os.close(master)
    stdout = process.stdout.read().decode() if process.stdout else ""
    code = process.wait(timeout=60)
    frames = [f.strip() for f in re.split(r"[\r\n]", received.decode()) if f.strip()]
    return frames, stdout, code


def test_the_terminal_shows_what_the_run_does_and_the_bar_moves_before_any_write(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    _notes(tmp_path / "docs", 5)
    frames, stdout, code = _run_in_terminal(
        [
            "ingest",
            "docs",
            "--model",
            str(tiny_checkpoint),
            "--qdrant-path",
            "store",
            "--max-tokens",
            "64",
            "--overlap-tokens",
            "8",
            "--batch-size",
            "4",
        ],
        tmp_path,
    )
    assert code == 0, (frames, stdout)
    assert "5 ingested" in stdout
    # It says what it does from the start, in the order it does it.
    statuses = [f for f in frames if not BAR.search(f)]
    assert statuses[0].startswith("listing files")
    order = ["listing files", "hashing 5 files", "loading the model"]
    seen = [next(i for i, f in enumerate(frames) if f.startswith(s)) for s in order]
    assert seen == sorted(seen)

    bars = [tuple(map(int, m.groups())) for f in frames if (m := BAR.search(f))]
    before_write = [bar for bar in bars if bar[1] == 0]
    first_written = next(i for i, bar in enumerate(bars) if bar[1] > 0)
    assert bars[:first_written] == before_write  # nothing was done before these frames
    # Before the first source is written, the bar has moved per file read...
    assert [bar[0] for bar in before_write][-1] == 5
    assert len({bar[0] for bar in before_write}) >= 4
    # ... and per embedding batch: chunks embedded of the total known.
    embedded = [bar[3] for bar in before_write if bar[3] > 0]
    assert len(embedded) >= 2 and embedded == sorted(embedded)
    total_chunks = bars[-1][4]
    assert total_chunks > 8 and embedded[0] < total_chunks
    assert bars[-1][1] == 5 and bars[-1][3] == total_chunks
    # The bar comes with a rate, and an estimate of the time left while work remains.
    assert any("items/s" in f and "ETA" in f for f in frames if BAR.search(f))


def test_logs_get_plain_lines_one_per_file() -> None:
    log = io.StringIO()
    progress = ConsoleProgress(log, interactive=False)
    progress.status("listing files")  # before the count of files: the log starts with the count
    progress.start(2)
    progress.status("loading the model")
    progress.parsed(3, 1)
    progress.embedded("text", 3, 0.5)
    progress.file_done(FileOutcome("/data/a.md", "ingested", pages=1, chunks=3, images=1))
    progress.file_done(FileOutcome("/data/b.md", "unchanged", reread=None))
    lines = log.getvalue().splitlines()
    assert lines[0] == "ingesting 2 files"
    assert lines[1] == "loading the model"
    assert lines[2].startswith("[1/2] ingested ") and lines[2].endswith(
        "(1 pages, 3 chunks, 1 images)"
    )
    assert lines[3].startswith("[2/2] unchanged ")
    assert "\r" not in log.getvalue()
