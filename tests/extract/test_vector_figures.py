"""Figures drawn with vector paths, found from their captions and rendered (real PDFs)."""

from __future__ import annotations

from pathlib import Path

import docgen
import pypdfium2 as pdfium
import pytest
from helpers import shared_path

from mrag.extract.document import ParsedDocument
from mrag.extract.figures import ImageFilter
from mrag.extract.formats.pdf.vector_figures import find_figure_regions
from mrag.extract.read import parse

# The matplotlib default colours of the two lines of the wave plot.
BLUE_LINE = (31, 119, 180)
ORANGE_LINE = (255, 127, 14)


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("paper")
    return docgen.vector_paper_pdf(work / "paper.pdf", work)


@pytest.fixture(scope="module")
def parsed(paper: Path) -> ParsedDocument:
    return parse(paper)


def has_colour(image, colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    small = image.copy()
    small.thumbnail((256, 256))
    return any(
        all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))
        for pixel in small.get_flattened_data()
    )


def test_each_vector_figure_is_one_captioned_picture(parsed: ParsedDocument) -> None:
    found = {image.pages[0]: image for image in parsed.images if image.element == "figure"}
    assert sorted(found) == sorted(docgen.VECTOR_PAPER_CAPTIONS)  # nothing from the table page
    # The tables are pictures too, but as tables: never taken for a figure.
    tables = [image for image in parsed.images if image.element == "table"]
    assert tables and all(image.context.startswith("Table ") for image in tables)
    for page, caption in docgen.VECTOR_PAPER_CAPTIONS.items():
        assert (found[page].context, found[page].context_kind) == (caption, "caption")


def test_rendering_shows_the_plot_at_model_resolution(parsed: ParsedDocument) -> None:
    waves = next(image for image in parsed.images if image.pages == [1])
    assert 1020 <= max(waves.image.size) <= 1024 and min(waves.image.size) >= 224
    assert has_colour(waves.image, BLUE_LINE) and has_colour(waves.image, ORANGE_LINE)


def test_raster_and_vector_parts_of_a_figure_are_one_picture(parsed: ParsedDocument) -> None:
    on_page = [image for image in parsed.images if image.pages == [4]]
    [heat_map] = on_page  # the embedded raster is not stored a second time
    assert heat_map.name == "p4-figure3"
    width, height = heat_map.image.size
    # The axes, ticks and labels around the 260x160 pt raster are in the picture too.
    assert width / height < 260 / 160


def test_figure_next_to_a_table_leaves_the_table_out(paper: Path) -> None:
    document = pdfium.PdfDocument(paper)
    try:
        page = document[1]
        textpage = page.get_textpage()
        [region] = find_figure_regions(page, textpage)
        searcher = textpage.search("Pressure", match_case=True)
        index, _count = searcher.get_next()
        cell_bottom = textpage.get_charbox(index)[1]
        assert region.caption.label == "Figure 2"
        assert region.box[3] < cell_bottom  # the whole region lies below the table's text
    finally:
        document.close()


def test_born_digital_page_without_captions_is_not_examined(tmp_path: Path) -> None:
    document = parse(docgen.text_pdf(tmp_path / "plain.pdf", ["Just text, no figure."] * 2))
    assert document.images == [] and document.timings["figures"] == 0


def test_shared_paper_with_vector_diagrams_gets_captioned_pictures() -> None:
    path = shared_path(
        "corpus", "pdf", "pdfplumber", "tests", "pdfs", "issue-71-duplicate-chars-2.pdf"
    )
    document = parse(path)
    captions = {
        image.context.split(".")[0]: image.pages[0]
        for image in document.images
        if image.context_kind == "caption"
    }
    # Flow charts and curves drawn as paths; pypdf alone finds none of them.
    assert {"Figure 1": 4, "Figure 4": 11, "Figure 5": 15, "Figure 6": 17}.items() <= (
        captions.items()
    )


def test_shared_page_with_only_a_table_yields_no_figure() -> None:
    path = shared_path(
        "corpus", "pdf", "pdfplumber", "tests", "pdfs", "nics-background-checks-2015-11.pdf"
    )
    document = parse(path, image_filter=ImageFilter(min_side=1, max_aspect=1000.0))
    assert [image.element for image in document.images] == ["table"]
