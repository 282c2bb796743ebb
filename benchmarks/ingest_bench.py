"""Ingestion end to end: :func:`mrag.ingest` on a PDF set, time split by phase.

The documents are real PDFs from the corpus beside the project (``../shared/corpus/pdf``) when it
is there, a deterministic sample under a page budget; otherwise generated PDFs (text pages with
pictures). The model is the full-size random checkpoint, once in the pipeline's default dtype
(auto) and once in float32, one after the other in this process.

Phases come from the timings that :func:`mrag.ingestion.run.ingest` records in its report:

- parse/decode: ``parse_wait``, the time the run waits for the parser process (parsing of the
  next file overlaps embedding of the previous one, so only the part not hidden shows);
- tokenise: ``chunk`` (the chunker tokenises every page) plus ``tokenize`` (before embedding);
- model: ``model_text`` plus ``model_image`` (the latter includes decoding and resizing images);
- store: ``points`` (payloads, image renditions) plus ``store`` (Qdrant writes);
- other: ``hash`` and whatever the wall time has beyond the phases.

Pipeline overhead is everything but the model and the parse wait, as a share of the wall time.
"""

from __future__ import annotations

import csv
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import REPO_ROOT, PeakRss, Settings, load_average


def corpus_folder(settings: Settings) -> Path | None:
    if settings.corpus == "generated":
        return None
    folder = Path(settings.corpus) if settings.corpus else REPO_ROOT.parent / "shared" / "corpus"
    return folder if (folder / "pdf" / "INDEX.csv").is_file() else None


def sample_pdfs(corpus: Path, page_budget: int, max_pages: int, seed: int = 0) -> list[Path]:
    """A fixed sample of readable PDFs: shuffled with a fixed seed, taken while pages fit."""
    with open(corpus / "pdf" / "INDEX.csv", encoding="utf-8") as index:
        rows = [row for row in csv.DictReader(index) if row["status"] == "ok"]
    rows.sort(key=lambda row: row["path"])
    random.Random(seed).shuffle(rows)
    chosen, pages = [], 0
    for row in rows:
        count = int(row["pages"] or 0)
        path = corpus / row["path"]
        if 0 < count <= max_pages and pages + count <= page_budget and path.is_file():
            chosen.append(path)
            pages += count
    return chosen


def _words(checkpoint: Path) -> list[str]:
    vocab = (checkpoint / "vocab.txt").read_text(encoding="utf-8").split()
    words = [w for w in vocab if w.isalpha() and len(w) > 2 and not w.startswith("[")]
    return words or ["benchmark", "text"]


def generate_documents(folder: Path, checkpoint: Path, documents: int, pages: int) -> list[Path]:
    """PDFs with paragraphs of ordinary words and one picture per page (reportlab), or Markdown
    files and PNG pictures when reportlab is not installed."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    words = _words(checkpoint)

    def paragraph(count: int) -> str:
        return " ".join(rng.choice(words) for _ in range(count)) + "."

    def picture(index: int) -> Image.Image:
        y, x = np.mgrid[0:160, 0:240]
        array = np.stack([(x * (index + 3)) % 256, (y * 7 + index) % 256, (x ^ y) % 256], -1)
        return Image.fromarray(array.astype(np.uint8))

    paths: list[Path] = []
    try:
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.utils import ImageReader
        from reportlab.pdfgen import canvas
    except ImportError:
        for doc in range(documents):
            text = "\n\n".join(paragraph(120) for _ in range(3 * pages))
            path = folder / f"doc{doc:03d}.md"
            path.write_text(f"# Document {doc}\n\n{text}\n", encoding="utf-8")
            picture(doc).save(folder / f"doc{doc:03d}.png")
            paths += [path, folder / f"doc{doc:03d}.png"]
        return paths
    for doc in range(documents):
        path = folder / f"doc{doc:03d}.pdf"
        pdf = canvas.Canvas(str(path), pagesize=A4)
        for page in range(pages):
            pdf.drawImage(ImageReader(picture(doc * pages + page)), 60, 560, 240, 160)
            y = 520
            text = pdf.beginText(60, y)
            text.setFont("Helvetica", 10)
            line: list[str] = []
            for word in paragraph(330).split():
                line.append(word)
                if len(" ".join(line)) > 90:
                    text.textLine(" ".join(line))
                    line = []
            text.textLine(" ".join(line))
            pdf.drawText(text)
            pdf.showPage()
        pdf.save()
        paths.append(path)
    return paths


def run(settings: Settings) -> dict[str, Any]:
    """Ingest the same documents with the default dtype (auto) and with float32, in one run."""
    try:
        from mrag.ingestion.run import ingest  # noqa: F401
    except ImportError as exc:
        return {"status": "skipped", "reason": f"ingestion not available ({exc})"}
    checkpoint = settings.checkpoint_folder()
    corpus = corpus_folder(settings)
    with tempfile.TemporaryDirectory(prefix="mrag-bench-ingest-") as tmp:
        if corpus is not None:
            budget, longest = (4, 2) if settings.tiny else (8, 4) if settings.quick else (60, 20)
            files = sample_pdfs(corpus, budget, longest)
            origin = f"corpus sample ({corpus})"
        else:
            documents, pages = (1, 1) if settings.tiny else (4, 2) if settings.quick else (12, 4)
            files = generate_documents(Path(tmp) / "docs", checkpoint, documents, pages)
            origin = "generated documents"
        result = ingest_once(files, checkpoint, "auto", Path(tmp) / "auto")
        fp32 = ingest_once(files, checkpoint, "float32", Path(tmp) / "float32")
    result["documents"] = origin
    fp32["documents"] = origin
    result["float32"] = fp32
    result["auto_over_float32"] = (
        round(result["pages_per_s"] / fp32["pages_per_s"], 2) if fp32["pages_per_s"] else None
    )
    print(f"  ingestion auto over float32: {result['auto_over_float32']}x", flush=True)
    return result


def ingest_once(files: list[Path], checkpoint: Path, dtype: str, folder: Path) -> dict[str, Any]:
    """One :func:`mrag.ingest` run of ``files`` into a fresh store, with the model in ``dtype``."""
    from mrag.ingestion.pipeline import Pipeline
    from mrag.ingestion.run import ingest
    from mrag.model import JinaClipModel
    from mrag.store import Store, StoreSettings

    model = JinaClipModel.from_pretrained(checkpoint, dtype=dtype)
    pipeline = Pipeline().override(model__name=str(checkpoint), model__dtype=dtype)
    store = Store.open(StoreSettings(path=str(folder / "qdrant"), collection="bench"))
    load_before = load_average()
    try:
        with PeakRss() as peak:
            start = time.perf_counter()
            report = ingest(files, pipeline=pipeline, store=store, model=model)
            wall = time.perf_counter() - start
    finally:
        store.close()
    timings = dict(report.timings)
    totals = report.totals()
    phases = {
        "parse_decode": timings.get("parse_wait", 0.0),
        "tokenise": timings.get("chunk", 0.0) + timings.get("tokenize", 0.0),
        "model": timings.get("model_text", 0.0) + timings.get("model_image", 0.0),
        "store": timings.get("points", 0.0) + timings.get("store", 0.0),
    }
    phases["other"] = max(wall - sum(phases.values()), 0.0)
    overhead = wall - phases["model"] - phases["parse_decode"]
    real, padded = report.real_tokens, report.padded_tokens
    children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {
        "status": "ok",
        "dtype": str(model.dtype_choice),
        "files": len(files),
        "ingested": totals["ingested"],
        "failed": totals["failed"],
        "failures": [f"{o.source}: {o.reason}" for o in report.failed][:10],
        "pages": totals["pages"],
        "chunks": totals["chunks"],
        "images": totals["images_kept"],
        "wall_s": round(wall, 3),
        "pages_per_s": round(totals["pages"] / wall, 3),
        "chunks_per_s": round(totals["chunks"] / wall, 3),
        "images_per_s": round(totals["images_kept"] / wall, 3),
        "phases_s": {key: round(value, 3) for key, value in phases.items()},
        "phase_share": {key: round(value / wall, 3) for key, value in phases.items()},
        "raw_timings_s": {key: round(value, 3) for key, value in sorted(timings.items())},
        "pipeline_overhead": round(overhead / wall, 4),
        "real_tokens": real,
        "padded_tokens": padded,
        "padding_waste": round(padded / real, 4) if real else 0.0,
        "peak_rss_mb": round(peak.peak_mb, 1),
        "parser_peak_rss_mb": round(children_peak, 1),
        "load_average": load_before,
    }
    print(
        f"  ingestion {dtype}: {result['files']} files, {result['pages']} pages, "
        f"{result['chunks']} chunks, {result['images']} images in {wall:.1f} s; phases "
        f"{result['phases_s']}; padding {result['padding_waste']:.1%}; "
        f"overhead {result['pipeline_overhead']:.1%}",
        flush=True,
    )
    return result
