"""Progress and summary output of ``mrag ingest``.

On a terminal, one status line redraws in place (files done, the current embedding rate); when
the output is a file or a pipe, each file gets one plain line instead, which logs read well.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from mrag.ingestion.run import Events, FileOutcome, IngestReport


class ConsoleProgress(Events):
    def __init__(self, stream: TextIO | None = None, *, interactive: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.total = 0
        self.done = 0
        self.rate = ""
        self.started = time.perf_counter()

    def start(self, total: int) -> None:
        self.total = total
        self.started = time.perf_counter()
        if not self.interactive:
            self.stream.write(f"ingesting {total} file{'s' if total != 1 else ''}\n")
            self.stream.flush()

    def file_done(self, outcome: FileOutcome) -> None:
        # Pruned sources are not among the files counted at the start.
        counted = outcome.status != "deleted"
        self.done += counted
        if self.interactive:
            if outcome.status in ("failed", "skipped", "deleted"):
                self._clear()
                self.stream.write(describe(outcome) + "\n")
            self._draw()
            return
        prefix = f"[{self.done}/{self.total}] " if counted else ""
        self.stream.write(prefix + describe(outcome) + "\n")
        self.stream.flush()

    def embedded(self, modality: str, items: int, seconds: float) -> None:
        if seconds > 0:
            self.rate = f"{modality} {items / seconds:,.1f} items/s"
        if self.interactive:
            self._draw()
        else:
            self.stream.write(f"  embedded {items} {modality} items ({self.rate})\n")

    def _clear(self) -> None:
        width = shutil.get_terminal_size((80, 20)).columns
        self.stream.write("\r" + " " * (width - 1) + "\r")

    def _draw(self) -> None:
        width = shutil.get_terminal_size((80, 20)).columns
        filled = int(20 * self.done / self.total) if self.total else 20
        bar = "#" * filled + "-" * (20 - filled)
        elapsed = time.perf_counter() - self.started
        line = f"[{bar}] {self.done}/{self.total} files  {elapsed:5.0f} s  {self.rate}"
        self.stream.write("\r" + line[: width - 1].ljust(width - 1))
        self.stream.flush()

    def finish(self) -> None:
        if self.interactive:
            self._clear()
            self.stream.flush()


_LABELS = {"no_content": "ingested (no content)"}


def describe(outcome: FileOutcome) -> str:
    """One line for one source: status, path (once), then counts or the reason."""
    line = f"{_LABELS.get(outcome.status, outcome.status)} {outcome.path}"
    if outcome.status == "ingested":
        line += f" ({outcome.pages} pages, {outcome.chunks} chunks, {outcome.images} images)"
    elif outcome.status == "deleted":
        line += f" ({outcome.points} points)"
    elif outcome.reason:
        line += f": {outcome.reason}"
    return line


def format_summary(report: IngestReport) -> str:
    """The human-readable end-of-run summary."""
    totals = report.totals()
    filtered = totals["images_filtered"]
    filtered_text = ", ".join(f"{count} {reason}" for reason, count in filtered.items()) or "none"
    counts = [f"{totals['ingested']} ingested"]
    counts += [
        f"{totals[status]} {_LABELS.get(status, status)}"
        for status in ("no_content", "unchanged", "skipped", "failed", "deleted")
        if totals[status] or status in ("unchanged", "failed")
    ]
    textless = (
        f" ({totals['no_text_pages']} without usable text)" if totals["no_text_pages"] else ""
    )
    lines = [
        f"files: {', '.join(counts)}",
        f"content: {totals['pages']} pages{textless}, {totals['chunks']} chunks, "
        f"{totals['images_kept']} images kept (filtered: {filtered_text})",
        f"store: {totals['points_written']} points written to {report.store}",
        *([f"model: {report.dtype} on {report.device or 'cpu'}"] if report.dtype else []),
        f"elapsed: {report.elapsed_s:.1f} s",
    ]
    if totals["ocr_pages"]:
        lines.insert(2, f"ocr: {totals['ocr_pages']} pages read from their pixels")
    lines.extend(f"notice: {notice}" for notice in report.notices)
    for outcome in report.files:
        if outcome.status in ("failed", "skipped"):
            lines.append(f"{outcome.status}: {outcome.path}: {outcome.reason}")
    problems = [f"{o.path}: {problem}" for o in report.files for problem in o.problems]
    if problems:
        lines.append(f"warnings: {len(problems)} (inside files that went in)")
        lines.extend(f"  {problem}" for problem in problems[:20])
        if len(problems) > 20:
            lines.append(f"  ... and {len(problems) - 20} more (see --json)")
    return "\n".join(lines)
