"""What a run reports: one :class:`FileOutcome` per source and the :class:`IngestReport` of the
whole run (totals, notices, where the time went)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from mrag.extract.document import ExtractionError
from mrag.ingestion.sources import display_path, escape_controls
from mrag.ingestion.timing import Timings
from mrag.store.source_names import portable_name

#: What happened to a source. ``no_content``: read fine, but held no text and no kept image.
Status = Literal["ingested", "no_content", "unchanged", "skipped", "failed", "deleted"]
STATUSES: tuple[Status, ...] = (
    "ingested",
    "no_content",
    "unchanged",
    "skipped",
    "failed",
    "deleted",
)
#: Longest exception message kept in a failure reason.
_REASON_CHARS = 300


@dataclass
class FileOutcome:
    """What happened to one source.

    ``source`` is its identity (the real path, as stored); ``path`` how it is shown (short, one
    line); ``reason`` says why it failed or was skipped, without repeating the path.
    ``no_text_pages`` counts pages that yielded no text (no usable text layer, a garbage one
    included, and no OCR). ``reread`` says why an unchanged file was read again (OCR became
    available, the pipeline's chunking changed, ``--force``...).
    """

    source: str
    status: Status
    reason: str | None = None
    pages: int = 0
    chunks: int = 0
    images: int = 0
    filtered: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    points: int = 0
    parser: str | None = None
    ocr_pages: int = 0
    no_text_pages: int = 0
    path: str = ""
    reread: str | None = None

    def __post_init__(self) -> None:
        if not self.path:
            self.path = display_path(self.source)


@dataclass
class IngestReport:
    """The summary of one run: every file's outcome, totals and where the time went."""

    files: list[FileOutcome] = field(default_factory=list)
    elapsed_s: float = 0.0
    timings: Timings = field(default_factory=Timings)
    real_tokens: int = 0
    padded_tokens: int = 0
    store: str = ""
    #: The model's compute dtype and why it was chosen; empty when nothing needed the model.
    dtype: str = ""
    #: The device the model computed on (``cpu``, ``cuda:0``); empty likewise.
    device: str = ""
    notices: list[str] = field(default_factory=list)

    def count(self, status: Status) -> int:
        """How many sources ended with ``status``."""
        return sum(1 for outcome in self.files if outcome.status == status)

    @property
    def failed(self) -> list[FileOutcome]:
        """The sources that failed, with their reasons."""
        return [outcome for outcome in self.files if outcome.status == "failed"]

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return not self.failed

    def rereads(self) -> dict[str, int]:
        """How many unchanged files were read again, by reason."""
        reasons = Counter(o.reread for o in self.files if o.reread and o.status != "failed")
        return dict(reasons.most_common())

    def totals(self) -> dict[str, Any]:
        """Counts per status and the content that went in."""
        ingested = [o for o in self.files if o.status in ("ingested", "no_content")]
        filtered: Counter[str] = Counter()
        for outcome in ingested:
            filtered.update(outcome.filtered)
        return {
            **{status: self.count(status) for status in STATUSES},
            "reread": sum(self.rereads().values()),
            "pages": sum(o.pages for o in ingested),
            "chunks": sum(o.chunks for o in ingested),
            "images_kept": sum(o.images for o in ingested),
            "images_filtered": dict(sorted(filtered.items())),
            "points_written": sum(o.points for o in ingested),
            "ocr_pages": sum(o.ocr_pages for o in ingested),
            "no_text_pages": sum(o.no_text_pages for o in ingested),
        }

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (what ``ingest --json`` prints)."""
        padding = self.padded_tokens / self.real_tokens if self.real_tokens else 0.0
        return {
            "store": self.store,
            "dtype": self.dtype,
            "device": self.device,
            "totals": self.totals(),
            "rereads": self.rereads(),
            "elapsed_s": round(self.elapsed_s, 3),
            "timings_s": {key: round(value, 3) for key, value in sorted(self.timings.items())},
            "padding_waste": round(padding, 4),
            "notices": list(self.notices),
            "files": [asdict(outcome) for outcome in self.files],
        }


def failure_reason(exc: BaseException, path: Path | str | None = None) -> str:
    """``ExceptionType: message`` on one line, without the file's path in front.

    :class:`ExtractionError` messages are already written for people and keep no type name.
    """
    message = " ".join(str(exc).split())
    if path is not None:
        for prefix in {f"{path}: ", f"{portable_name(str(path))}: "}:
            message = message.removeprefix(prefix)
    message = escape_controls(portable_name(message))[:_REASON_CHARS]
    if isinstance(exc, ExtractionError):
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
