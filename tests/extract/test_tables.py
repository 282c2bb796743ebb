"""Tables: found in real public records (the pdfplumber corpus) and stored as Markdown."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrag.extract.read import parse
from mrag.extract.tables import clean_rows, header_lines, to_markdown

PDFPLUMBER = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "pdf" / "pdfplumber"
PDFS = PDFPLUMBER / "tests" / "pdfs"

needs_corpus = pytest.mark.skipif(not PDFS.is_dir(), reason="shared corpus not present")


def rows_of(markdown: str) -> list[list[str]]:
    lines = markdown.split("\n")
    del lines[1]  # the separator line
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def test_markdown_rows_and_header() -> None:
    rows = clean_rows([["Name", None, "Value"], ["a|b", None, " 1 "], [None, None, None]])
    assert rows == [["Name", "Value"], ["a\\|b", "1"]]
    markdown = to_markdown(rows)
    assert markdown == "| Name | Value |\n| --- | --- |\n| a\\|b | 1 |"
    assert header_lines(markdown) == 2


@needs_corpus
def test_ruled_table_cells_from_a_public_record() -> None:
    # Checked by hand against the rendered page: one row per state, 25 numeric columns.
    document = parse(PDFS / "nics-background-checks-2015-11.pdf")
    tables = [page for page in document.pages if page.element == "table"]
    assert len(tables) == 1
    table = tables[0]
    assert table.page == 1
    assert "NICS Firearm Background Checks" in table.headings[-1]
    rows = rows_of(table.text)
    assert rows[0][0] == "State / Territory" and rows[0][-1] == "Totals"
    by_state = {row[0]: row for row in rows[1:]}
    assert by_state["Alabama"][1:4] == ["18,870", "23,022", "22,650"]
    assert by_state["Alaska"][1:4] == ["209", "3,062", "3,209"]
    assert len(by_state["Wyoming"]) == len(rows[0])
    # The cells are the table's now, not loose text in the page's passage.
    page_text = next(page.text for page in document.pages if page.element == "text")
    assert "18,870" not in page_text
    pictures = [image for image in document.images if image.element == "table"]
    assert len(pictures) == 1 and pictures[0].context.startswith("NICS Firearm")
    assert all(image.element != "figure" for image in document.images)


@needs_corpus
def test_rotated_page_table_reads_across() -> None:
    # The page is turned by /Rotate: rows run across the page as the reader sees it.
    document = parse(PDFS / "senate-expenditures.pdf")
    tables = [page for page in document.pages if page.element == "table"]
    assert tables
    rows = rows_of(tables[0].text)
    assert rows[0][:3] == ["DOCUMENT NO.", "DATE", "PAYEE NAME"]
    assert rows[0][-1] == "AMOUNT ($)"
    assert any(row[2].startswith("BAIN") and row[-1] == "37,499.96" for row in rows)


def test_html_table_becomes_markdown_with_its_caption(tmp_path: Path) -> None:
    page = tmp_path / "prices.html"
    page.write_text(
        "<h1>Prices</h1><p>Intro text.</p><table><caption>Table 1: Fruit prices</caption>"
        "<tr><th>Fruit</th><th>Price</th></tr><tr><td>Apple</td><td>1.20</td></tr>"
        "<tr><td>Pear <b>big</b></td><td>2.10</td></tr></table><p>After.</p>"
        "<table><tr><td>layout only</td></tr></table>"
    )
    document = parse(page)
    tables = [unit for unit in document.pages if unit.element == "table"]
    assert len(tables) == 1
    assert tables[0].headings == ["Prices", "Table 1: Fruit prices"]
    assert rows_of(tables[0].text) == [["Fruit", "Price"], ["Apple", "1.20"], ["Pear big", "2.10"]]
    loose = " ".join(unit.text for unit in document.pages if unit.element == "text")
    assert "Apple" not in loose and "layout only" in loose and "After." in loose


def test_docx_table_becomes_markdown_with_its_caption(tmp_path: Path) -> None:
    import docx

    word = docx.Document()
    word.add_heading("Results", level=1)
    word.add_paragraph("Table 2: Scores by team")
    table = word.add_table(rows=3, cols=3)
    for r, values in enumerate([["Team", "Won", "Lost"], ["Red", "5", "1"], ["Blue", "2", "4"]]):
        for c, value in enumerate(values):
            table.cell(r, c).text = value
    merged = word.add_table(rows=2, cols=2)
    merged.cell(0, 0).merge(merged.cell(0, 1)).text = "Span"
    merged.cell(1, 0).text, merged.cell(1, 1).text = "x", "y"
    path = tmp_path / "scores.docx"
    word.save(str(path))
    document = parse(path)
    tables = [unit for unit in document.pages if unit.element == "table"]
    assert len(tables) == 2
    assert tables[0].headings == ["Results", "Table 2: Scores by team"]
    assert rows_of(tables[0].text) == [
        ["Team", "Won", "Lost"],
        ["Red", "5", "1"],
        ["Blue", "2", "4"],
    ]
    assert rows_of(tables[1].text) == [["Span", ""], ["x", "y"]]


@needs_corpus
def test_two_tables_sharing_their_rules_are_two_tables() -> None:
    # Checked by hand: page 11 holds Table III and Table IV, one over the other, their rules
    # starting and ending together, a paragraph between them, captions in the margin.
    document = parse(PDFS / "issue-316-example.pdf")
    tables = [page for page in document.pages if page.element == "table" and page.page == 11]
    assert [table.headings[-1].split()[:2] for table in tables] == [
        ["Table", "III."],
        ["Table", "IV."],
    ]
    third, fourth = ({row[0]: row for row in rows_of(table.text)} for table in tables)
    assert third["Missed family events"][1:] == ["36/38", "24/20", "51/28"]
    assert fourth["Fights about work schedule"][1:] == ["60/51", "44/20", "48/0"]
    assert "Fights about work schedule" not in third and "Missed family events" not in fourth
    assert all(len(row) == 4 for row in rows_of(tables[0].text))
    assert "Table III" not in " ".join(t.headings[-1] for t in tables[1:])


def test_unruled_table_is_found_from_its_caption(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="letter")
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    pdf.set_xy(72, 72)
    pdf.multi_cell(460, 13, "Intro. " + "Some running text about the results below. " * 8)
    pdf.set_xy(72, 170)
    pdf.cell(0, 13, "Table 1: Yields by variety and year.")
    rows = [["Variety", "2019", "2020", "2021"], ["Svansota", "35.1", "28.9", "30.2"]]
    rows += [["Manchuria", "27.0", "31.4", "26.8"], ["Glabron", "40.2", "33.7", "36.5"]]
    for index, row in enumerate(rows):
        for column, value in enumerate(row):
            pdf.set_xy(120 + 90 * column, 195 + 14 * index)
            pdf.cell(0, 13, value)
    pdf.set_xy(72, 290)
    pdf.multi_cell(460, 13, "After the table the text goes on with more words. " * 6)
    path = tmp_path / "yields.pdf"
    pdf.output(str(path))
    document = parse(path)
    tables = [unit for unit in document.pages if unit.element == "table"]
    assert len(tables) == 1
    assert tables[0].headings[-1] == "Table 1: Yields by variety and year."
    assert rows_of(tables[0].text) == rows
    loose = " ".join(unit.text for unit in document.pages if unit.element == "text")
    assert "Glabron" not in loose and "goes on" in loose
    assert all(image.element != "figure" for image in document.images)
