"""PDF extraction against PDFs generated at test time (fpdf2, reportlab, pypdf)."""

from __future__ import annotations

from pathlib import Path

import docgen
import pytest
from PIL import Image

from mrag.extract.document import ExtractionError, ExtractionLimits, ParsedDocument
from mrag.extract.figures import ImageFilter
from mrag.extract.read import parse

LOOSE = ImageFilter(min_side=8, max_aspect=50.0)


def close(pixel: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


def at(image: Image.Image, fx: float, fy: float) -> tuple[int, ...]:
    width, height = image.size
    return image.getpixel((int(width * fx), int(height * fy)))


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> ParsedDocument:
    work = tmp_path_factory.mktemp("figures")
    return parse(docgen.figures_pdf(work / "figures.pdf", work), image_filter=LOOSE)


def by_caption(document: ParsedDocument, prefix: str):
    found = [image for image in document.images if image.context.startswith(prefix)]
    assert len(found) == 1, [image.context for image in document.images]
    return found[0]


def test_text_per_page_with_page_numbers(figures: ParsedDocument) -> None:
    assert figures.kind == "pdf"
    assert figures.page_count == 3
    assert [page.page for page in figures.pages] == [1, 2, 3]
    assert "Report on coloured squares." in figures.pages[0].text
    assert "Printing colours follow." in figures.pages[1].text
    assert figures.pages[2].text == "The last page has only the logo and this text."
    assert figures.problems == []


def test_jpeg_colour_and_caption(figures: ParsedDocument) -> None:
    red = by_caption(figures, "Figure 1:")
    assert red.context_kind == "caption"
    assert red.pages == [1]
    assert red.image.mode == "RGB"
    assert close(at(red.image, 0.5, 0.5), docgen.RED)


def test_alpha_is_composited_on_white(figures: ParsedDocument) -> None:
    blue = by_caption(figures, "Figure 2:")
    assert close(at(blue.image, 0.25, 0.5), docgen.BLUE)
    assert close(at(blue.image, 0.75, 0.5), (255, 255, 255))


def test_cmyk_jpeg_is_not_inverted(figures: ParsedDocument) -> None:
    cyan = by_caption(figures, "Figure 3:")
    assert cyan.pages == [2]
    assert close(at(cyan.image, 0.5, 0.5), (0, 255, 255), tolerance=20)


def test_grayscale_image_without_caption_gets_nearby_text(figures: ParsedDocument) -> None:
    grey = [image for image in figures.images if image.image.size == (150, 100)]
    assert len(grey) == 1
    assert grey[0].context_kind == "nearby"
    assert "grey field" in grey[0].context
    assert not grey[0].context.startswith("Figure")
    assert close(at(grey[0].image, 0.5, 0.5), (128, 128, 128), tolerance=3)


def test_repeated_logo_is_one_image_listing_every_page(figures: ParsedDocument) -> None:
    logos = [image for image in figures.images if image.image.size == (120, 80)]
    assert len(logos) == 1
    assert logos[0].pages == [1, 2, 3]
    assert close(at(logos[0].image, 0.25, 0.5), docgen.GREEN)
    assert close(at(logos[0].image, 0.75, 0.5), docgen.BLUE)
    assert len(figures.images) == 5


def test_default_filter_drops_small_images(tmp_path: Path) -> None:
    document = parse(
        docgen.inline_image_pdf(tmp_path / "inline.pdf", tmp_path),
        image_filter=ImageFilter(min_side=100),
    )
    assert document.images == []
    assert document.filtered["too_small"] == 1


def test_inline_image(tmp_path: Path) -> None:
    document = parse(docgen.inline_image_pdf(tmp_path / "inline.pdf", tmp_path), image_filter=None)
    assert "Inline picture test page" in document.pages[0].text
    assert len(document.images) == 1
    assert document.images[0].image.size == (80, 80)
    assert close(at(document.images[0].image, 0.5, 0.5), docgen.RED)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("plain")
    return docgen.text_pdf(work / "plain.pdf", ["alpha page one", "beta page two", "gamma three"])


def test_aes256_encrypted_needs_the_password(plain: Path, tmp_path: Path) -> None:
    locked = docgen.encrypted_pdf(tmp_path / "aes.pdf", plain, "secret", "AES-256")
    with pytest.raises(ExtractionError, match="password required"):
        parse(locked)
    with pytest.raises(ExtractionError, match="wrong password"):
        parse(locked, passwords=["nope"])
    document = parse(locked, passwords=["nope", "secret"])
    assert document.pages[1].text == "beta page two"


def test_rc4_with_empty_user_password_opens_without_one(plain: Path, tmp_path: Path) -> None:
    locked = docgen.encrypted_pdf(tmp_path / "rc4.pdf", plain, "", "RC4-128")
    document = parse(locked)
    assert [page.text for page in document.pages] == [
        "alpha page one",
        "beta page two",
        "gamma three",
    ]


def test_page_limit(plain: Path) -> None:
    document = parse(plain, limits=ExtractionLimits(max_pages=2))
    assert [page.page for page in document.pages] == [1, 2]
    assert document.page_count == 3
    assert any("max_pages" in problem for problem in document.problems)


def test_time_budget_overrun_is_an_error(plain: Path) -> None:
    with pytest.raises(ExtractionError, match="time budget"):
        parse(plain, limits=ExtractionLimits(time_budget_s=0.0))


def test_image_bomb_is_refused_from_its_dictionary(tmp_path: Path) -> None:
    document = parse(docgen.bomb_pdf(tmp_path / "bomb.pdf"), image_filter=None)
    assert document.images == []
    assert len(document.problems) == 1
    assert "page 1 image Im0" in document.problems[0]
    assert "100000x100000" in document.problems[0]
    assert "not decoded" in document.problems[0]


def test_image_count_limit(tmp_path: Path) -> None:
    document = parse(
        docgen.figures_pdf(tmp_path / "f.pdf", tmp_path),
        limits=ExtractionLimits(max_images_per_document=2),
        image_filter=None,
    )
    assert len(document.images) == 2
    assert any("max_images_per_document=2" in problem for problem in document.problems)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "0-byte file"), (b"hello, I am text", "not a PDF"), (b"%PDF-1.7\n garbage", "broken")],
)
def test_unreadable_pdf_is_an_extraction_error(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.pdf"
    path.write_bytes(content)
    with pytest.raises(ExtractionError, match=reason) as caught:
        parse(path)
    message = str(caught.value)
    assert message.count(str(path)) == 1, message
    assert message.count("not a PDF / broken file") <= 1, message


SHARED_PDF = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "pdf"
VICKSBURG = SHARED_PDF / "pypdf" / "resources" / "Seige_of_Vicksburg_Sample_OCR.pdf"


@pytest.mark.skipif(not VICKSBURG.is_file(), reason="shared corpus not present")
def test_pictures_pypdf_cannot_decode_come_from_pdfium_without_jbig2dec(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    # A PATH holding no program at all: no jbig2dec for pypdf to call.
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from mrag.extract.document import ExtractionLimits\n"
        "from mrag.extract.formats.pdf.reader import parse_pdf\n"
        "d = parse_pdf(Path(sys.argv[1]), limits=ExtractionLimits())\n"
        "print(json.dumps({'images': [[i.name, list(i.image.size)] for i in d.images],"
        " 'problems': d.problems}))\n"
    )
    repo = Path(__file__).resolve().parents[2]
    env = {"PATH": str(tmp_path), "PYTHONPATH": str(repo), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(VICKSBURG)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    result = json.loads(done.stdout)
    sizes = {name: tuple(size) for name, size in result["images"]}
    for page in range(1, 7):
        assert sizes[f"p{page}-Im002"] == (600, 900)
        assert sizes[f"p{page}-Im003"] == (450, 675)
    assert not [line for line in result["problems"] if "cannot decode" in line]


def test_decode_failures_are_told_in_words() -> None:
    import io

    from PIL import UnidentifiedImageError

    from mrag.extract.formats.pdf.pictures import decode_reason

    try:
        Image.open(io.BytesIO(b"not a picture"))
    except UnidentifiedImageError as exc:
        reason = decode_reason(exc)
    assert "0x" not in reason and "BytesIO" not in reason
    missing = decode_reason(RuntimeError("jbig2dec binary is not available."))
    assert missing.startswith("JBIG2 image and the jbig2dec program is not installed")
    assert "apt-get install jbig2dec" in missing


def drawing_pdf(path: Path) -> Path:
    """Three pages: a line of text, a vector drawing with no text at all, and a blank page."""
    from reportlab.lib.colors import Color
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=(400, 400))
    pdf.drawString(40, 360, "A page of text before the drawing.")
    pdf.showPage()
    pdf.setFillColor(Color(0.2, 0.4, 0.8))
    pdf.circle(200, 220, 90, stroke=1, fill=1)
    pdf.setLineWidth(6)
    pdf.line(60, 60, 340, 120)
    pdf.showPage()
    pdf.showPage()  # blank
    pdf.save()
    return path


def test_a_page_that_is_only_a_drawing_is_kept_as_a_page_picture(tmp_path: Path) -> None:
    document = parse(drawing_pdf(tmp_path / "drawing.pdf"), image_filter=LOOSE)
    pages = [image for image in document.images if image.element == "page"]
    assert [image.pages for image in pages] == [[2]]  # not the text page, not the blank page
    picture = pages[0].image
    assert close(at(picture, 0.5, 0.45), (51, 102, 204), tolerance=30)  # the disc
    assert close(at(picture, 0.05, 0.05), (255, 255, 255))
    assert pages[0].context == "drawing.pdf, page 2"


SHARED_BLANK = SHARED_PDF / "pdfplumber" / "tests" / "pdfs" / "issue-297-example.pdf"


@pytest.mark.skipif(not SHARED_BLANK.is_file(), reason="shared corpus not present")
def test_a_blank_page_stays_empty() -> None:
    document = parse(SHARED_BLANK)
    assert document.images == []
    assert all(not page.text for page in document.pages)


TINY_PAGE = SHARED_PDF / "pypdf" / "resources" / "imagemagick-lzw.pdf"
MALFORMED = SHARED_PDF.parent / "malformed" / "images" / "trailer_loop.pdf"


@pytest.mark.skipif(not TINY_PAGE.is_file(), reason="shared corpus not present")
def test_a_picture_on_a_page_a_few_points_wide_is_kept_as_a_usable_page_picture() -> None:
    # A 16-pixel picture on a 3.84-point page: too small to keep on its own, and a rendering of
    # the page at its size in points would be a few pixels wide.
    document = parse(TINY_PAGE)
    assert [image.element for image in document.images] == ["page"]
    picture = document.images[0].image
    assert min(picture.size) >= 224
    assert document.images[0].pages == [1]
    # The picture is a white smiley drawn on black: eyes, nose and mouth, not one flat fill.
    histogram = picture.convert("L").histogram()
    white = sum(histogram[200:]) / sum(histogram)
    assert 0.02 < white < 0.2
    assert close(at(picture, 0.05, 0.05), (0, 0, 0))
    assert close(at(picture, 0.22, 0.22), (255, 255, 255))  # an eye


@pytest.mark.skipif(not MALFORMED.is_file(), reason="shared corpus not present")
def test_a_file_pypdf_cannot_open_but_pdfium_renders_yields_its_page() -> None:
    document = parse(MALFORMED)
    assert document.parser == "pypdfium2"
    assert any(page.text for page in document.pages) or document.images
    assert [image.element for image in document.images] == ["page"]
    assert min(document.images[0].image.size) >= 224


def test_a_long_thin_drawn_page_is_kept_whatever_its_shape(tmp_path: Path) -> None:
    from reportlab.pdfgen import canvas

    path = tmp_path / "strip.pdf"
    pdf = canvas.Canvas(str(path), pagesize=(1600, 20))
    pdf.setLineWidth(8)
    for x in range(20, 1580, 40):
        pdf.line(x, 2, x + 20, 18)
    pdf.showPage()
    pdf.save()
    document = parse(path)  # the default image filter drops pictures this thin
    assert [image.element for image in document.images] == ["page"]
    width, height = document.images[0].image.size
    assert width == 4096 and height >= 50  # thinner than the filter keeps, kept all the same


def test_page_pictures_are_sized_in_pixels_not_points() -> None:
    from mrag.extract.formats.pdf.page_pictures import page_scale

    letter = page_scale(612, 792, 50_000_000)
    assert round(792 * letter) == 1024
    tiny = page_scale(3.84, 3.84, 50_000_000)
    assert round(3.84 * tiny) == 1024
    strip = page_scale(1600, 20, 50_000_000)
    assert round(20 * strip) >= 51 and round(1600 * strip) <= 4096
    capped = page_scale(3.84, 3.84, 10_000)
    assert (3.84 * capped) ** 2 <= 10_000 * 1.001


def test_a_drawing_without_a_caption_is_a_figure_with_the_nearest_text(tmp_path: Path) -> None:
    from reportlab.lib.colors import Color
    from reportlab.pdfgen import canvas

    path = tmp_path / "manual.pdf"
    pdf = canvas.Canvas(str(path), pagesize=(400, 500))
    pdf.drawString(40, 460, "Loosen the valve before you open the pump housing.")
    pdf.drawString(40, 440, "The valve sits under the blue cover shown below.")
    pdf.setFillColor(Color(0.2, 0.4, 0.8))
    pdf.circle(200, 280, 100, stroke=1, fill=1)
    pdf.setFillColor(Color(0, 0, 0))
    pdf.drawString(40, 120, "Close the housing again once the valve is loose.")
    # A ruled grid of text is a table or a form, never a drawing.
    for y in (100, 80, 60):
        pdf.line(40, y, 360, y)
    pdf.drawString(50, 86, "part")
    pdf.drawString(200, 86, "count")
    pdf.drawString(50, 66, "valve")
    pdf.drawString(200, 66, "2")
    pdf.showPage()
    pdf.save()
    document = parse(path, image_filter=LOOSE)
    figures = [image for image in document.images if image.element == "figure"]
    assert len(figures) == 1
    figure = figures[0]
    assert figure.context_kind == "nearby"
    assert "blue cover shown below" in figure.context
    assert close(at(figure.image, 0.5, 0.5), (51, 102, 204), tolerance=30)
    width, height = figure.image.size
    assert 0.8 < width / height < 1.25  # the disc, not the page
