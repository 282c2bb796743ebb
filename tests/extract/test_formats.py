"""Images, text, Markdown, HTML and DOCX readers, and the suffix dispatch of ``parse``."""

from __future__ import annotations

from pathlib import Path

import docgen
import pytest
from PIL import Image

from mrag.extract.document import ExtractionError, ExtractionLimits
from mrag.extract.read import SUPPORTED_SUFFIXES, parse


def close(pixel: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


@pytest.mark.parametrize(
    ("suffix", "fmt"),
    [(".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP"), (".gif", "GIF"), (".bmp", "BMP")],
)
def test_single_image_files(tmp_path: Path, suffix: str, fmt: str) -> None:
    path = docgen.write_image(tmp_path / f"site_plan-north{suffix}", docgen.solid(docgen.RED), fmt)
    document = parse(path)
    assert document.kind == "image"
    assert document.pages == []
    assert len(document.images) == 1
    image = document.images[0]
    assert image.pages == [None]
    assert image.context == "site plan north"
    assert image.context_kind == "filename"
    assert image.image.mode == "RGB"
    assert close(image.image.getpixel((80, 60)), docgen.RED, tolerance=20)


def test_png_alpha_is_composited_on_white(tmp_path: Path) -> None:
    picture = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    document = parse(docgen.write_image(tmp_path / "clear.png", picture, "PNG"))
    assert document.images[0].image.getpixel((50, 50)) == (255, 255, 255)


def test_multipage_tiff_gives_one_image_per_frame(tmp_path: Path) -> None:
    document = parse(docgen.multipage_tiff(tmp_path / "scan.tiff"))
    assert document.page_count == 3
    assert [image.pages for image in document.images] == [[1], [2], [3]]
    colours = [image.image.getpixel((10, 10)) for image in document.images]
    assert colours == [docgen.RED, docgen.GREEN, docgen.BLUE]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    picture = docgen.halves(docgen.RED, docgen.BLUE, (200, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    path = docgen.write_image(tmp_path / "phone.jpg", picture, "JPEG", exif=exif, quality=95)
    image = parse(path).images[0].image
    assert image.size == (100, 200)
    assert close(image.getpixel((50, 20)), docgen.RED, tolerance=25)
    assert close(image.getpixel((50, 180)), docgen.BLUE, tolerance=25)


def test_png_bomb_header_is_refused_without_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(docgen.png_bomb())
    with pytest.raises(ExtractionError) as caught:
        parse(path)
    message = str(caught.value)
    assert "bomb" in message
    assert "bomb.png" in message


def test_pixel_limit_applies_to_image_files(tmp_path: Path) -> None:
    path = docgen.write_image(tmp_path / "big.png", docgen.solid(docgen.RED, (300, 300)), "PNG")
    with pytest.raises(ExtractionError, match="over the limit"):
        parse(path, limits=ExtractionLimits(max_pixels=300 * 299))


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "sheet.xyz"
    path.write_text("x")
    with pytest.raises(ExtractionError, match=r"unsupported file type \.xyz"):
        parse(path)
    assert {".pdf", ".png", ".md", ".html", ".docx", ".tiff"} <= SUPPORTED_SUFFIXES


def test_broken_image_is_an_extraction_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ExtractionError, match=r"broken\.png"):
        parse(path)


def test_markdown_sections_keep_heading_paths(tmp_path: Path) -> None:
    document = parse(docgen.markdown_file(tmp_path / "guide.md"))
    assert document.kind == "markdown"
    sections = [(page.headings, page.text) for page in document.pages]
    assert sections[0] == (["Guide"], "Intro paragraph about the guide.")
    assert sections[1] == (["Guide", "Install"], "Run the installer.")
    assert sections[2][0] == ["Guide", "Install", "From source"]
    assert "# not a heading: a shell comment" in sections[2][1]
    assert sections[2][1].endswith("Then restart.")
    assert sections[3] == (["Guide", "Usage"], "Call the tool.")
    assert all(page.page is None for page in document.pages)


def test_text_file_in_a_legacy_encoding_is_detected_and_noted(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    document = parse(path)
    assert document.pages[0].text == "Café crème"
    assert len(document.problems) == 1
    assert "read as cp1252 (detected)" in document.problems[0]
    russian = "Привет, как дела? Это тестовый текст на русском языке."
    path.write_bytes(russian.encode("cp1251"))
    document = parse(path)
    assert document.pages[0].text == russian and "cp1251" in document.problems[0]


def test_html_visible_text_and_local_images(tmp_path: Path) -> None:
    document = parse(docgen.html_site(tmp_path))
    text = "\n\n".join(page.text for page in document.pages)
    assert document.pages[0].headings == ["Colours"]
    assert "First paragraph about colours." in text
    assert "Second paragraph here." in text
    assert "\n\n" in document.pages[0].text  # paragraphs stay apart
    for hidden in ("secret", "Hidden title", "color: red", "Enable scripts"):
        assert hidden not in text

    assert [image.name for image in document.images] == ["red.png", "blue.png"]
    red, blue = document.images
    assert (red.context, red.context_kind, red.alt_text) == ("a red square", "alt", "a red square")
    assert (blue.context, blue.context_kind) == ("Figure 1: A blue square.", "caption")
    assert close(blue.image.getpixel((5, 5)), docgen.BLUE)

    problems = "\n".join(document.problems)
    assert "../../etc/passwd: refused" in problems
    assert "../outside.png: refused" in problems
    assert "https://example.com/x.png: refused" in problems
    assert "img/missing.png: file not found" in problems
    assert len(document.problems) == 4


def test_docx_paragraphs_and_captioned_picture(tmp_path: Path) -> None:
    document = parse(docgen.docx_file(tmp_path / "report.docx", tmp_path))
    assert document.kind == "docx"
    assert document.pages[0].headings == ["Quarterly colours"]
    text = document.pages[0].text
    assert "The first paragraph introduces the colours." in text
    assert "The second paragraph explains the red square below." in text
    assert len(document.images) == 1
    picture = document.images[0]
    assert picture.context == "Figure 1: The red square of the quarter."
    assert picture.context_kind == "caption"
    assert close(picture.image.getpixel((10, 10)), docgen.RED)


def test_pdf_suffix_without_pdf_magic(tmp_path: Path) -> None:
    path = docgen.write_image(tmp_path / "actually.pdf", docgen.solid(docgen.RED), "PNG")
    with pytest.raises(ExtractionError, match="not a PDF"):
        parse(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ExtractionError, match="does not exist"):
        parse(tmp_path / "nothing.md")


def test_an_unreadable_picture_file_is_named_with_a_reason_in_words(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"not really a picture" * 8)  # no format Pillow knows
    with pytest.raises(ExtractionError) as failure:
        parse(path)
    message = str(failure.value)
    assert message.startswith(f"{path}: not a readable image (")
    assert "object at 0x" not in message  # Pillow's message names its BytesIO; people need none
    assert "UnidentifiedImageError: cannot identify image file the image data" in message
