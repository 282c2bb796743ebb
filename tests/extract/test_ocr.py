"""OCR of pages without a text layer and of pictures of text, with the real Tesseract; the PDFium
fallback for PDFs pypdf cannot open."""

from __future__ import annotations

import shutil
from pathlib import Path

import docgen
import pytest
from helpers import shared_path

from mrag.extract.document import ExtractionError
from mrag.extract.ocr import OcrSettings, OcrUnavailable, probe
from mrag.extract.read import parse
from mrag.ingestion.pipeline import Pipeline, PipelineError
from mrag.ingestion.run import ingest
from mrag.model import JinaClipModel
from mrag.store import Store, StoreSettings

OCR = OcrSettings(enabled=True)
MISSING = "/nonexistent/bin/tesseract"

needs_tesseract = pytest.mark.skipif(
    probe(OcrSettings()) is not None, reason="Tesseract with English data is not installed"
)

SCAN_LINES = [
    "Quarterly inspection report",
    "The pump station passed every pressure test.",
    "Valve seven needs a new gasket before winter.",
]


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("scan")
    return docgen.scan_pdf(work / "scan.pdf", work, [SCAN_LINES])


@needs_tesseract
def test_scanned_page_is_read_by_ocr(scan: Path) -> None:
    document = parse(scan, ocr=OCR)
    [page] = document.pages
    assert page.ocr_confidence is not None and page.ocr_confidence > 0.8
    text = page.text.lower()
    for word in ("inspection", "pressure", "valve", "gasket", "winter"):
        assert word in text, page.text
    # The scan itself stays a picture, explained by what it says.
    [picture] = document.images
    assert picture.context_kind == "ocr" and "gasket" in picture.context
    assert document.timings["ocr"] > 0 and document.no_text_pages == []


def test_without_ocr_the_scan_is_listed_as_having_no_text(scan: Path) -> None:
    document = parse(scan)
    assert document.pages[0].text == "" and document.no_text_pages == [1]
    assert document.timings["ocr"] == 0


@needs_tesseract
def test_born_digital_pages_are_never_rendered_for_ocr(tmp_path: Path) -> None:
    pages = ["A page of ordinary text that any reader extracts without trouble."] * 3
    document = parse(docgen.text_pdf(tmp_path / "plain.pdf", pages), ocr=OCR)
    assert [page.ocr_confidence for page in document.pages] == [None, None, None]
    assert document.timings["render"] == 0 and document.timings["ocr"] == 0


@needs_tesseract
def test_shared_scanned_patent_page_yields_its_words() -> None:
    path = shared_path("corpus", "pdf", "pypdf", "resources", "encrypted_doc_no_id.pdf")
    document = parse(path, ocr=OCR)
    page = document.pages[1]
    assert page.ocr_confidence is not None
    for word in ("patent", "abbreviations", "2003/036426"):
        assert word in page.text, page.text[:500]


@needs_tesseract
def test_photographed_page_png_reads_as_its_words() -> None:
    document = parse(shared_path("corpus", "images", "photos", "page.png"), ocr=OCR)
    [page] = document.pages
    text = page.text.lower()
    for words in ("region-based segmentation", "markers of the coins", "background", "histogram"):
        assert words in text, page.text
    assert document.images[0].context_kind == "ocr"


@needs_tesseract
def test_a_photo_is_not_text() -> None:
    document = parse(shared_path("corpus", "images", "photos", "chelsea.png"), ocr=OCR)
    assert document.pages == []
    assert document.images[0].context_kind == "filename"


def test_pypdfium2_reads_what_pypdf_cannot(tmp_path: Path) -> None:
    # A real fuzzed file: pypdf stops at "Stream has ended unexpectedly", PDFium repairs it.
    source = shared_path("corpus", "malformed", "qpdf-pdf", "fuzz", "qpdf_extra", "69969.fuzz")
    path = tmp_path / "69969.pdf"
    shutil.copy(source, path)
    document = parse(path)
    assert document.parser == "pypdfium2"
    assert document.page_count == 30
    assert "Stream has ended unexpectedly" in document.problems[0]
    assert any("Salad" in page.text for page in document.pages)


def test_pypdf_remains_the_reader_of_sound_files(tmp_path: Path) -> None:
    document = parse(docgen.text_pdf(tmp_path / "plain.pdf", ["Sound file."]))
    assert document.parser == "pypdf"


def test_file_neither_parser_opens_names_both_reasons(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.7\n this is not really a pdf \n%%EOF")
    with pytest.raises(ExtractionError, match=r"broken\.pdf: not a PDF.*PDFium"):
        parse(path)


def test_ocr_section_of_the_pipeline() -> None:
    pipeline = Pipeline.from_dict({"ocr": {"enabled": True, "languages": ["eng", "deu"]}})
    settings = pipeline.ocr_settings()
    assert settings.enabled is True and settings.languages == ("eng", "deu")
    assert Pipeline().ocr_settings().enabled == "auto"
    for bad in ({"enabled": "yes"}, {"enabled": 1}, {"dpi": 10}, {"languages": []}):
        with pytest.raises(PipelineError, match="ocr"):
            Pipeline.from_dict({"ocr": bad})


def test_missing_tesseract_is_reported_by_probe() -> None:
    assert "not found" in (probe(OcrSettings(tesseract=MISSING)) or "")
    unknown = probe(OcrSettings(languages=("xyz",)))
    assert unknown is not None and ("no data for xyz" in unknown or "not found" in unknown)


def _text_points(store_path: Path) -> list[dict]:
    with Store.open(StoreSettings(path=str(store_path))) as store:
        payloads = [found.payload for found in store.iter_points()]
    return [payload for payload in payloads if payload["metadata"]["modality"] == "text"]


def test_ingest_without_tesseract_notes_it_once_and_passes(
    scan: Path, tmp_path: Path, tiny_model: JinaClipModel
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(scan, folder / "scan.pdf")
    shutil.copy(scan, folder / "scan-copy.pdf")
    pipeline = Pipeline.from_dict({"ocr": {"tesseract": MISSING}})
    with Store.open(StoreSettings(path=str(tmp_path / "store"))) as store:
        report = ingest([folder], store=store, model=tiny_model, pipeline=pipeline)
    assert report.ok and report.count("ingested") == 2
    [notice] = report.notices
    assert "OCR skipped" in notice and "not found" in notice and "2 pages" in notice
    assert all(outcome.no_text_pages == 1 for outcome in report.files)

    required = Pipeline.from_dict({"ocr": {"enabled": True, "tesseract": MISSING}})
    with (
        Store.open(StoreSettings(path=str(tmp_path / "store2"))) as store,
        pytest.raises(OcrUnavailable, match="enabled = true"),
    ):
        ingest([folder], store=store, model=tiny_model, pipeline=required)


@needs_tesseract
def test_ingested_ocr_chunks_are_marked(scan: Path, tmp_path: Path, tiny_model: JinaClipModel):
    store_path = tmp_path / "store"
    with Store.open(StoreSettings(path=str(store_path))) as store:
        report = ingest([scan], store=store, model=tiny_model)
    assert report.notices == [] and report.files[0].ocr_pages == 1
    [payload] = _text_points(store_path)
    assert "gasket" in payload["page_content"]
    assert payload["metadata"]["ocr"] is True and payload["metadata"]["ocr_confidence"] > 0.8
