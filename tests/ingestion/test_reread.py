"""Re-reads: a source whose file is unchanged is read again when the extraction that read it
would read it differently today (OCR installed, other chunking), or with ``--force``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import docgen
import pytest
from helpers import run_cli

from mrag.extract.ocr import OcrSettings, probe
from mrag.ingestion.pipeline import Pipeline
from mrag.ingestion.run import ingest
from mrag.ingestion.signature import EXTRACTION_VERSION, ExtractionSignature
from mrag.model import JinaClipModel
from mrag.store import SourceRecord, Store, StoreSettings

SCAN_LINES = [
    "Quarterly inspection report",
    "The pump station passed every pressure test.",
    "Valve seven needs a new gasket before winter.",
]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd, timeout=600)


def _statuses(summary: dict) -> dict[str, tuple[str, str | None]]:
    return {Path(f["source"]).name: (f["status"], f["reread"]) for f in summary["files"]}


@pytest.mark.skipif(probe(OcrSettings()) is not None, reason="Tesseract is not installed")
def test_scans_are_re_read_once_ocr_is_on_and_born_digital_files_stay_unchanged(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    docs, work = tmp_path / "docs", tmp_path / "work"
    docs.mkdir()
    work.mkdir()
    docgen.scan_pdf(docs / "scan.pdf", work, [SCAN_LINES])
    docgen.text_pdf(docs / "paper.pdf", ["A born-digital page about embeddings and search."])
    docgen.markdown_file(docs / "notes.md")
    off = tmp_path / "ocr-off.toml"
    off.write_text("[ocr]\nenabled = false\n")
    common = ("--model", str(tiny_checkpoint), "--qdrant-path", "store")

    first = _cli("ingest", "docs", "--pipeline", str(off), *common, "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["totals"]["ingested"] == 3
    scan = next(f for f in summary["files"] if f["source"].endswith("scan.pdf"))
    assert scan["no_text_pages"] == 1 and scan["ocr_pages"] == 0

    # The same files, OCR now on (the built-in pipeline: "auto", and Tesseract is installed).
    second = _cli("ingest", "docs", *common, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "files: 1 ingested, 2 unchanged, 0 failed" in second.stdout
    assert "1 file re-read: OCR is now available" in second.stdout
    assert "ocr: 1 pages read from their pixels" in second.stdout
    with Store.open(StoreSettings(path=str(tmp_path / "store"))) as store:
        texts = [
            point.payload["page_content"]
            for point in store.iter_points()
            if point.payload["metadata"]["source"].endswith("scan.pdf")
        ]
        records = {Path(r.source).name: r for r in store.sources()}
    assert any("pump station" in text for text in texts)
    assert records["scan.pdf"].extraction["ocr"] != "off"
    assert "ocr" not in records["paper.pdf"].extraction  # its text never depended on OCR

    # Nothing changed: every file is unchanged and the model is never loaded.
    third = _cli("ingest", "docs", *common, "--json", cwd=tmp_path)
    summary = json.loads(third.stdout)
    assert set(_statuses(summary).values()) == {("unchanged", None)}
    assert summary["dtype"] == ""  # set only once the model is loaded

    # --force reads every file named again.
    forced = _cli(
        "ingest", "docs/paper.pdf", "docs/notes.md", *common, "--force", "--json", cwd=tmp_path
    )
    assert forced.returncode == 0, forced.stderr
    statuses = _statuses(json.loads(forced.stdout))
    assert statuses == {
        "paper.pdf": ("ingested", "forced (--force)"),
        "notes.md": ("ingested", "forced (--force)"),
    }


def test_other_chunking_re_reads_and_the_same_settings_do_not(
    tmp_path: Path, tiny_model: JinaClipModel
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    docgen.markdown_file(docs / "notes.md")
    docgen.write_image(docs / "photo.png", docgen.halves((200, 30, 30), (30, 30, 200)), "PNG")
    pipeline = Pipeline().override(ocr__enabled=False)
    with Store.open(StoreSettings(path=str(tmp_path / "store"))) as store:
        ingest([docs], store=store, model=tiny_model, pipeline=pipeline)
        again = ingest([docs], store=store, model=tiny_model, pipeline=pipeline)
        assert {o.status for o in again.files} == {"unchanged"}
        other = pipeline.override(chunking__overlap_tokens=16)
        changed = ingest([docs], store=store, model=tiny_model, pipeline=other)
        reasons = {Path(o.source).name: (o.status, o.reread) for o in changed.files}
        # The photo has no text to chunk: its extraction did not depend on the chunking.
        assert reasons == {
            "notes.md": ("ingested", "the pipeline's chunking settings changed"),
            "photo.png": ("unchanged", None),
        }
        assert changed.rereads() == {"the pipeline's chunking settings changed": 1}


def test_records_from_before_signatures_read_and_count_as_current() -> None:
    payload = {
        "source": "/data/a.pdf",
        "content_hash": "abc",
        "points": 3,
        "chunks": 2,
        "images": 1,
        "pages": 1,
        "ingested_at": "2026-01-01T00:00:00+00:00",
    }
    record = SourceRecord.from_payload(payload)
    assert record.extraction == {}
    signature = ExtractionSignature.of(Pipeline(), None)
    assert signature.reread_reason(record.extraction) is None


def test_what_makes_a_recorded_extraction_stale() -> None:
    available = ExtractionSignature.of(Pipeline(), None)
    missing = ExtractionSignature.of(Pipeline(), "Tesseract not found")
    off = ExtractionSignature.of(Pipeline().override(ocr__enabled=False), None)
    german = ExtractionSignature.of(Pipeline().override(ocr__languages=("deu",)), None)
    base = {"version": EXTRACTION_VERSION, "chunking": available.chunking}
    read_without = {**base, "ocr": off.ocr}
    assert available.reread_reason(read_without) == "OCR is now available"
    assert missing.reread_reason(read_without) is None  # still nothing reads the pixels
    assert off.reread_reason({**base, "ocr": missing.ocr}) is None
    read_with = {**base, "ocr": available.ocr}
    assert off.reread_reason(read_with) == "OCR is now off"
    assert missing.reread_reason(read_with) == "OCR is no longer available"
    assert german.reread_reason(read_with) == "the OCR languages or resolution changed"
    assert available.reread_reason(read_with) is None
    assert available.reread_reason(base) is None  # OCR never mattered for this source
    assert available.reread_reason({**base, "version": 0}) == "mrag's extraction has changed"
    jbig2 = {**base, "jbig2dec": not available.jbig2dec}
    assert available.reread_reason(jbig2) in ("jbig2dec is now installed", "jbig2dec is gone")
