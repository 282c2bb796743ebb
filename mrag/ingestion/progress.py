"""Progress and summary output of ``mrag ingest``.

On a terminal, one status line redraws in place: what the run is doing while it gets ready
(listing, hashing, loading the model), then a bar with files parsed, chunks and images embedded of
the totals known so far, the embedding rate and an estimate of the time left. When the output is
a file or a pipe, the run says what it does in plain lines, one per file, which logs read well.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from mrag.ingestion.events import Events
from mrag.ingestion.report import FileOutcome, IngestReport

#: In logs, embedding progress is written at most this often (seconds), not once per batch.
_LOG_EVERY_S = 10.0
_BAR = 20


class ConsoleProgress(Events):
    """Progress on a stream (standard error by default), redrawn in place on a terminal."""

    def __init__(self, stream: TextIO | None = None, *, interactive: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.total = 0
        self.done = 0
        self.parsed_files = 0
        self.known = {"text": 0, "image": 0}
        self.embedded_items = {"text": 0, "image": 0}
        self.rate = ""
        self.activity = ""
        self.started_run = False
        self.started = time.perf_counter()
        self._logged = self.started

    def status(self, message: str) -> None:
        self.activity = message
        if self.interactive:
            self._draw()
        elif self.started_run:
            # Logs begin with the count of files; an error while listing is then the first line.
            self._line(message)

    def start(self, total: int) -> None:
        self.total = total
        self.started_run = True
        if not self.interactive:
            self._line(f"ingesting {total} file{'s' if total != 1 else ''}")

    def parsed(self, chunks: int, images: int) -> None:
        self.parsed_files += 1
        self.known["text"] += chunks
        self.known["image"] += images
        self.activity = ""
        if self.interactive:
            self._draw()

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
        self._line(prefix + describe(outcome))

    def embedded(self, modality: str, items: int, seconds: float) -> None:
        self.embedded_items[modality] += items
        if seconds > 0:
            self.rate = f"{items / seconds:,.1f} {modality} items/s"
        if self.interactive:
            self._draw()
        elif time.perf_counter() - self._logged >= _LOG_EVERY_S:
            self._logged = time.perf_counter()
            self._line(f"  embedded {self._items()} ({self.rate})")

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def _items(self) -> str:
        texts = f"{self.embedded_items['text']}/{self.known['text']} chunks"
        return f"{texts}, {self.embedded_items['image']}/{self.known['image']} images"

    def fraction(self) -> float:
        """How much of the run is done, 0..1: half for the files parsed or settled, half for
        the items embedded of those expected (the files not yet parsed are assumed to hold as
        many items as the parsed ones, on average)."""
        if not self.total:
            return 0.0
        settled = max(self.done, self.parsed_files)
        known = sum(self.known.values())
        unparsed = max(self.total - settled, 0)
        expected = known + (known / self.parsed_files * unparsed if self.parsed_files else 0)
        embedded = sum(self.embedded_items.values()) / expected if expected else 0.0
        return min(
            (settled / self.total + (embedded if expected else settled / self.total)) / 2, 1.0
        )

    def _eta(self, elapsed: float) -> str:
        fraction = self.fraction()
        if fraction <= 0 or fraction >= 1 or not sum(self.embedded_items.values()):
            return ""
        return f"  ETA {_duration(elapsed * (1 - fraction) / fraction)}"

    def _clear(self) -> None:
        width = shutil.get_terminal_size((80, 20)).columns
        self.stream.write("\r" + " " * (width - 1) + "\r")

    def _draw(self) -> None:
        width = shutil.get_terminal_size((80, 20)).columns
        elapsed = time.perf_counter() - self.started
        if self.total == 0 or (self.activity and not self.parsed_files and not self.done):
            line = f"{self.activity}...  {elapsed:3.0f} s"
        else:
            filled = int(_BAR * self.fraction())
            bar = "#" * filled + "-" * (_BAR - filled)
            line = (
                f"[{bar}] {self.parsed_files} read, {self.done} done of {self.total} files  "
                f"{self._items()}  "
                f"{elapsed:3.0f} s  {self.rate}{self._eta(elapsed)}"
            )
            if self.activity:
                line += f"  ({self.activity}...)"
        self.stream.write("\r" + line[: width - 1].ljust(width - 1))
        self.stream.flush()

    def finish(self) -> None:
        """Clear the status line (on a terminal) before the summary is printed."""
        if self.interactive:
            self._clear()
            self.stream.flush()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


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
    if outcome.reread and outcome.status != "failed":
        line += f" [re-read: {outcome.reread}]"
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
    for reason, count in reversed(report.rereads().items()):
        lines.insert(1, f"{count} file{'s' if count != 1 else ''} re-read: {reason}")
    lines.extend(f"notice: {notice}" for notice in report.notices)
    for outcome in report.files:
        if outcome.status in ("failed", "skipped"):
            lines.append(f"{outcome.status}: {outcome.path}: {outcome.reason}")
    lines.extend(_warnings(report))
    return "\n".join(lines)


def _warnings(report: IngestReport) -> list[str]:
    """Problems met inside files that went in, the first 20 of them."""
    lines = []
    problems = [f"{o.path}: {problem}" for o in report.files for problem in o.problems]
    if problems:
        lines.append(f"warnings: {len(problems)} (inside files that went in)")
        lines.extend(f"  {problem}" for problem in problems[:20])
        if len(problems) > 20:
            lines.append(f"  ... and {len(problems) - 20} more (see --json)")
    return lines
