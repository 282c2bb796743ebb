"""Test documents generated on the fly: PDFs, images, Markdown, HTML and DOCX with known content.

Nothing here is stored in the repository; every generator writes into a pytest ``tmp_path``.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RED = (255, 0, 0)
BLUE = (0, 0, 255)
GREEN = (0, 160, 0)


def solid(
    color: tuple[int, ...], size: tuple[int, int] = (160, 120), mode: str = "RGB"
) -> Image.Image:
    """A one-colour picture."""
    return Image.new(mode, size, color)


def marked(color: str, size: tuple[int, int] = (120, 80), mark: int = 0) -> Image.Image:
    """A flat picture with a sparse line of dots whose slope depends on ``mark``.

    Pictures of the same colour but another ``mark`` differ, so they embed differently.
    """
    picture = Image.new("RGB", size, color)
    for x in range(0, size[0], 7):
        picture.putpixel((x, (x * (3 + mark)) % size[1]), (mark * 40 % 256, 0, 0))
    return picture


def noise(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Random RGB pixels: they compress worst, the hard case for byte limits."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def halves(
    left: tuple[int, int, int], right: tuple[int, int, int], size: tuple[int, int] = (200, 100)
) -> Image.Image:
    """A picture whose left half is ``left`` and right half ``right`` (catches channel swaps)."""
    picture = Image.new("RGB", size, left)
    picture.paste(Image.new("RGB", (size[0] // 2, size[1]), right), (size[0] // 2, 0))
    return picture


def encode(picture: Image.Image, fmt: str, **options: object) -> bytes:
    """``picture`` encoded as ``fmt`` bytes."""
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return buffer.getvalue()


def write_image(path: Path, picture: Image.Image, fmt: str, **options: object) -> Path:
    """Save ``picture`` to ``path`` and return the path."""
    path.write_bytes(encode(picture, fmt, **options))
    return path


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (its data is bogus)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def figures_pdf(path: Path, work: Path) -> Path:
    """A 3-page PDF (fpdf2) with captioned pictures of known colours and a logo on every page.

    Page 1: red JPEG over "Figure 1: ...", then a blue/green PNG with alpha over "Figure 2: ...".
    Page 2: a CMYK JPEG (pure cyan) over "Figure 3: ...", a grayscale picture without caption.
    Page 3: body text only. A small logo sits on all three pages.
    """
    from fpdf import FPDF

    red = write_image(work / "red.jpg", solid(RED), "JPEG", quality=95)
    alpha = Image.new("RGBA", (160, 120), (0, 0, 255, 255))
    alpha.paste(Image.new("RGBA", (80, 120), (0, 0, 0, 0)), (80, 0))
    alpha_png = write_image(work / "alpha.png", alpha, "PNG")
    cmyk = write_image(
        work / "cyan.jpg", Image.new("CMYK", (160, 120), (255, 0, 0, 0)), "JPEG", quality=95
    )
    grey = write_image(work / "grey.png", Image.new("L", (150, 100), 128), "PNG")
    logo = write_image(work / "logo.png", halves(GREEN, BLUE, (120, 80)), "PNG")

    pdf = FPDF(unit="pt", format="A4")
    pdf.set_font("Helvetica", size=11)
    # Page 1
    pdf.add_page()
    pdf.image(str(logo), x=480, y=20, w=60)
    pdf.text(60, 60, "Report on coloured squares.")
    pdf.image(str(red), x=60, y=90, w=160)
    pdf.text(60, 230, "Figure 1: A red square used as a test picture.")
    pdf.image(str(alpha_png), x=60, y=300, w=160)
    pdf.text(60, 440, "Figure 2: A blue square that fades to transparent.")
    # Page 2
    pdf.add_page()
    pdf.image(str(logo), x=480, y=20, w=60)
    pdf.text(60, 60, "Printing colours follow.")
    pdf.image(str(cmyk), x=60, y=90, w=160)
    pdf.text(60, 230, "Figure 3: Pure cyan printed in CMYK.")
    pdf.image(str(grey), x=60, y=400, w=150)
    pdf.text(60, 520, "A grey field with no caption sits above this sentence.")
    # Page 3
    pdf.add_page()
    pdf.image(str(logo), x=480, y=20, w=60)
    pdf.text(60, 60, "The last page has only the logo and this text.")
    pdf.output(str(path))
    return path


def inline_image_pdf(path: Path, work: Path) -> Path:
    """A one-page PDF (reportlab) holding a red inline image and a text line."""
    from reportlab.pdfgen import canvas

    red = write_image(work / "inline-red.png", solid(RED, (80, 80)), "PNG")
    drawing = canvas.Canvas(str(path))
    drawing.drawString(72, 760, "Inline picture test page")
    drawing.drawInlineImage(str(red), 72, 600, width=80, height=80)
    drawing.save()
    return path


def text_pdf(path: Path, pages: list[str]) -> Path:
    """A PDF with one line of text per page (reportlab)."""
    from reportlab.pdfgen import canvas

    drawing = canvas.Canvas(str(path))
    for line in pages:
        drawing.drawString(72, 720, line)
        drawing.showPage()
    drawing.save()
    return path


def scan_pdf(path: Path, work: Path, pages: list[list[str]]) -> Path:
    """A PDF of scanned pages: each page one bilevel picture of its lines, no text layer."""
    from fpdf import FPDF
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=34)
    document = FPDF(unit="pt", format="letter")
    for number, lines in enumerate(pages):
        page = Image.new("L", (1700, 2200), 255)  # US letter at 200 dpi
        draw = ImageDraw.Draw(page)
        for row, line in enumerate(lines):
            draw.text((150, 200 + row * 60), line, fill=0, font=font)
        scan = work / f"scan-{number}.png"
        page.convert("1").save(scan)
        document.add_page()
        document.image(str(scan), x=0, y=0, w=612, h=792)
    document.output(str(path))
    return path


def _plot_svg(path: Path, kind: str) -> Path:
    """A matplotlib chart saved as SVG with real text, so it lands in a PDF as vector paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    with plt.rc_context({"svg.fonttype": "none", "axes.unicode_minus": False}):
        figure, axes = plt.subplots(figsize=(4.5, 2.6))
        if kind == "waves":
            x = np.linspace(0, 10, 200)
            axes.plot(x, np.sin(x), label="sine")
            axes.plot(x, np.cos(x), "--", label="cosine")
            axes.set_xlabel("time (s)")
            axes.set_ylabel("amplitude")
            axes.legend()
        else:
            axes.bar(["north", "south", "east", "west"], [4, 7, 3, 5], color="tab:green")
            axes.set_ylabel("pumps")
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)
    return path


VECTOR_PAPER_CAPTIONS = {
    1: "Figure 1: Sine and cosine waves over ten seconds.",
    2: "Figure 2: Pumps per district.",
    4: "Figure 3: Heat map of the pressure field.",
}


def vector_paper_pdf(path: Path, work: Path) -> Path:
    """A four-page paper: a vector line plot (page 1), a table right above a vector bar chart
    (page 2), a page with only a table (page 3), a raster heat map inside vector axes (page 4)."""
    from fpdf import FPDF

    rows = [["District", "Pressure", "Pumps"], ["north", "4.1 bar", "4"], ["south", "3.8 bar", "7"]]
    rows += [["east", "4.4 bar", "3"], ["west", "3.9 bar", "5"]]
    document = FPDF(unit="pt", format="letter")
    document.set_margins(72, 72, 72)
    document.set_font("Helvetica", size=11)

    def body(text: str) -> None:
        document.multi_cell(468, 14, text)
        document.ln(6)

    def caption(text: str) -> None:
        document.multi_cell(468, 14, text, align="C")
        document.ln(10)

    def table(title: str) -> None:
        caption(title)
        with document.table(width=300, col_widths=(100, 100, 100)) as grid:
            for row in rows:
                cells = grid.row()
                for value in row:
                    cells.cell(value)
        document.ln(14)

    document.add_page()
    body("The station log records the water level every hour. " * 8)
    top = document.get_y() + 6
    document.image(str(_plot_svg(work / "waves.svg", "waves")), x=126, y=top, w=360)
    document.set_y(top + 360 * 2.6 / 4.5 + 10)
    caption(VECTOR_PAPER_CAPTIONS[1])
    body("The waves repeat with a period of about six seconds. " * 6)

    document.add_page()
    body("Each district runs its own pumps; the table lists them. " * 3)
    table("Table 1: Pressure and pumps per district.")
    top = document.get_y()
    document.image(str(_plot_svg(work / "bars.svg", "bars")), x=126, y=top, w=360)
    document.set_y(top + 360 * 2.6 / 4.5 + 10)
    caption(VECTOR_PAPER_CAPTIONS[2])

    document.add_page()
    body("The pump inventory of the last survey follows. " * 4)
    table("Table 2: Pumps counted in the last survey.")

    document.add_page()
    body("The pressure field was measured on a grid of sensors. " * 6)
    heat = Image.new("RGB", (64, 40))
    heat.putdata([(4 * (i % 64), 60, 255 - 4 * (i % 64)) for i in range(64 * 40)])
    heat_path = work / "heat.png"
    heat.save(heat_path)
    left, top, width, height = 180.0, document.get_y() + 10, 260.0, 160.0
    document.image(str(heat_path), x=left, y=top, w=width, h=height)
    document.set_line_width(1)
    document.rect(left, top, width, height)
    document.set_font("Helvetica", size=8)
    for step in range(5):
        x = left + step * width / 4
        document.line(x, top + height, x, top + height + 5)
        document.text(x - 3, top + height + 14, str(step * 25))
        y = top + step * height / 4
        document.line(left - 5, y, left, y)
        document.text(left - 22, y + 3, f"{100 - step * 25}")
    document.text(left + width / 2 - 20, top + height + 28, "distance (m)")
    document.set_font("Helvetica", size=11)
    document.set_y(top + height + 40)
    caption(VECTOR_PAPER_CAPTIONS[4])
    document.output(str(path))
    return path


def encrypted_pdf(path: Path, source: Path, user_password: str, algorithm: str) -> Path:
    """``source`` re-written encrypted with pypdf."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(str(source)))
    writer.encrypt(user_password, owner_password="owner-secret", algorithm=algorithm)
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def bomb_pdf(path: Path) -> Path:
    """A PDF whose only image claims 100000 x 100000 pixels in its dictionary."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject, NumberObject

    writer = PdfWriter()
    page = writer.add_blank_page(200, 200)
    image = DecodedStreamObject()
    image.set_data(b"\x00" * 30)
    image.update(
        {
            NameObject("/Type"): NameObject("/XObject"),
            NameObject("/Subtype"): NameObject("/Image"),
            NameObject("/Width"): NumberObject(100_000),
            NameObject("/Height"): NumberObject(100_000),
            NameObject("/ColorSpace"): NameObject("/DeviceRGB"),
            NameObject("/BitsPerComponent"): NumberObject(8),
        }
    )
    reference = writer._add_object(image)
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/XObject"): DictionaryObject({NameObject("/Im0"): reference})}
    )
    content = DecodedStreamObject()
    content.set_data(b"q 100 0 0 100 0 0 cm /Im0 Do Q")
    page[NameObject("/Contents")] = writer._add_object(content)
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def multipage_tiff(path: Path) -> Path:
    """A three-frame TIFF: red, green, blue."""
    frames = [solid(RED), solid(GREEN), solid(BLUE)]
    frames[0].save(path, "TIFF", save_all=True, append_images=frames[1:])
    return path


MARKDOWN = """\
# Guide

Intro paragraph about the guide.

## Install

Run the installer.

### From source

```bash
# not a heading: a shell comment
make install
```

Then restart.

## Usage

Call the tool.
"""


def markdown_file(path: Path) -> Path:
    """A Markdown file with nested headings and a fenced block holding a ``#`` line."""
    path.write_text(MARKDOWN, encoding="utf-8")
    return path


def html_site(folder: Path) -> Path:
    """An HTML page with local pictures, a figure caption, a script and hostile image sources."""
    (folder / "img").mkdir(parents=True, exist_ok=True)
    write_image(folder / "img" / "red.png", solid(RED), "PNG")
    write_image(folder / "img" / "blue.png", solid(BLUE), "PNG")
    (folder / "outside.png").write_bytes(encode(solid(GREEN), "PNG"))
    page = folder / "site" / "index.html"
    page.parent.mkdir(exist_ok=True)
    (page.parent / "img").mkdir(exist_ok=True)
    write_image(page.parent / "img" / "red.png", solid(RED), "PNG")
    write_image(page.parent / "img" / "blue.png", solid(BLUE), "PNG")
    page.write_text(
        """<!doctype html><html><head><title>Hidden title</title>
<style>body { color: red }</style></head>
<body>
<h1>Colours</h1>
<p>First paragraph about colours.</p>
<script>var secret = "do not index";</script>
<p>Second <b>paragraph</b> here.</p>
<img src="img/red.png" alt="a red square">
<figure><img src="img/blue.png" alt="blue alt">
<figcaption>Figure 1: A blue square.</figcaption></figure>
<img src="../../etc/passwd" alt="escape">
<img src="../outside.png" alt="outside the folder">
<img src="https://example.com/x.png" alt="remote">
<img src="img/missing.png" alt="missing">
<noscript>Enable scripts</noscript>
</body></html>
""",
        encoding="utf-8",
    )
    return page


def docx_file(path: Path, work: Path) -> Path:
    """A DOCX with two paragraphs, an embedded red PNG and a caption paragraph after it."""
    import docx
    from docx.shared import Inches

    picture = write_image(work / "docx-red.png", solid(RED), "PNG")
    document = docx.Document()
    document.add_heading("Quarterly colours", level=1)
    document.add_paragraph("The first paragraph introduces the colours.")
    document.add_paragraph("The second paragraph explains the red square below.")
    document.add_picture(str(picture), width=Inches(2))
    document.add_paragraph("Figure 1: The red square of the quarter.")
    document.save(str(path))
    return path
