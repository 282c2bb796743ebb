"""Word documents (.docx) through python-docx: paragraphs, tables and embedded pictures.

Paragraphs styled "Heading N" (or "Title") start sections, like Markdown headings. Each embedded
picture is explained by, in order of preference: a neighbouring "Figure N ..." caption paragraph,
the text of the paragraphs around it, its alt text (``wp:docPr/@descr``), its file name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrag.extract.document import (
    ExtractedImage,
    ExtractionError,
    ExtractionLimits,
    PageText,
    ParsedDocument,
    image_content_hash,
)
from mrag.extract.figures import NEARBY_CHARS, humanize_name, is_caption_line, trim_context
from mrag.extract.formats.archive import check_archive
from mrag.extract.tables import Table, clean_rows, is_table, is_table_caption, table_unit
from mrag.images import ImageError, decode_image_bytes, to_rgb

DOCX_SUFFIXES = (".docx",)

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_WP = "http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing"
_HEADING_STYLE = re.compile(r"^(?:heading\s*(\d)|title)$", re.IGNORECASE)


@dataclass
class _Block:
    text: str
    # (relationship id, alt text, drawing name) of each picture anchored in this paragraph.
    pictures: list[tuple[str, str | None, str | None]]
    heading_level: int | None = None
    # A table's cells, rows of columns (the text is then empty).
    table: list[list[str]] | None = None


def _paragraph_block(element: Any, style_name: str | None) -> _Block:
    texts = [node.text or "" for node in element.iter(f"{{{_W}}}t")]
    pictures: list[tuple[str, str | None, str | None]] = []
    for drawing in element.iter(f"{{{_W}}}drawing"):
        doc_pr = next(drawing.iter(f"{{{_WP}}}docPr"), None)
        alt = doc_pr.get("descr") if doc_pr is not None else None
        name = doc_pr.get("name") if doc_pr is not None else None
        for blip in drawing.iter(f"{{{_A}}}blip"):
            rel_id = blip.get(f"{{{_R}}}embed")
            if rel_id:
                pictures.append((rel_id, (alt or "").strip() or None, name))
    level = None
    match = _HEADING_STYLE.match((style_name or "").strip())
    if match:
        level = int(match.group(1)) if match.group(1) else 1
    return _Block(text=" ".join("".join(texts).split()), pictures=pictures, heading_level=level)


def _blocks(document: Any) -> list[_Block]:
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    blocks: list[_Block] = []
    for child in document.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(child, document)
            try:
                style = paragraph.style.name if paragraph.style is not None else None
            except Exception:  # a dangling style id must not cost the paragraph
                style = None
            blocks.append(_paragraph_block(child, style))
        elif tag == "tbl":
            blocks.append(_Block(text="", pictures=[], table=_table_rows(Table(child, document))))
    return blocks


def _table_rows(table: Any) -> list[list[str]]:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            # A merged cell is listed once per grid column it spans; its text goes in the first.
            cells.append("" if cell._tc is previous else cell.text)
            previous = cell._tc
        rows.append(cells)
    return clean_rows(rows)


def _table_caption(blocks: list[_Block], index: int) -> str | None:
    """The paragraph right before (or else right after) a table, when it reads as its caption."""
    for neighbour in (index - 1, index + 1):
        if 0 <= neighbour < len(blocks) and is_table_caption(blocks[neighbour].text):
            return blocks[neighbour].text
    return None


def _picture_context(blocks: list[_Block], index: int) -> tuple[str, str] | None:
    """Caption (the paragraph right after or before) or nearby text for a picture's paragraph."""
    own = blocks[index].text
    for neighbour in (index + 1, index - 1):
        if 0 <= neighbour < len(blocks) and is_caption_line(blocks[neighbour].text):
            return trim_context(blocks[neighbour].text), "caption"
    if is_caption_line(own):
        return trim_context(own), "caption"
    parts: list[str] = [own] if own else []
    for step in range(1, 4):
        for neighbour in (index - step, index + step):
            if 0 <= neighbour < len(blocks) and blocks[neighbour].text:
                parts.append(blocks[neighbour].text)
        if sum(len(part) for part in parts) >= NEARBY_CHARS:
            break
    nearby = trim_context(" ".join(parts), NEARBY_CHARS)
    return (nearby, "nearby") if nearby else None


def _loose(table: Table) -> PageText:
    """A one-row or one-column "table" (a layout box) is text, a line per row."""
    text = "\n".join(" | ".join(cell for cell in row if cell) for row in table.rows)
    return PageText(page=None, text=text, headings=table.headings)


def parse_docx(path: Path, *, limits: ExtractionLimits) -> ParsedDocument:
    """Read a .docx file's sections and embedded pictures."""
    import docx

    if path.stat().st_size == 0:
        raise ExtractionError(f"{path}: 0-byte file")
    check_archive(path)
    try:
        document = docx.Document(str(path))
        blocks = _blocks(document)
    except Exception as exc:
        raise ExtractionError(
            f"{path}: not a Word document / broken file: {type(exc).__name__}: {exc}"
        ) from None

    sections: list[PageText] = []
    headings: list[tuple[int, str]] = []
    body: list[str] = []

    def flush() -> None:
        if body:
            sections.append(
                PageText(page=None, text="\n\n".join(body), headings=[t for _, t in headings])
            )
            body.clear()

    problems: list[str] = []
    images: list[ExtractedImage] = []
    related = document.part.related_parts
    for index, block in enumerate(blocks):
        if block.table:
            flush()
            caption = _table_caption(blocks, index)
            table = Table(block.table, caption, None, [t for _, t in headings])
            sections.append(table_unit(table) if is_table(block.table) else _loose(table))
            continue
        if block.heading_level is not None and block.text:
            flush()
            while headings and headings[-1][0] >= block.heading_level:
                headings.pop()
            headings.append((block.heading_level, block.text))
        elif block.text:
            body.append(block.text)
        for rel_id, alt, drawing_name in block.pictures:
            if len(images) >= limits.max_images_per_document:
                problems.append(f"picture {rel_id}: skipped, max_images_per_document reached")
                continue
            part = related.get(rel_id)
            if part is None:
                problems.append(f"picture {rel_id}: relationship points to no embedded part")
                continue
            part_name = Path(str(part.partname)).name
            try:
                picture = to_rgb(
                    decode_image_bytes(part.blob, name=part_name, max_pixels=limits.max_pixels)
                )
            except ImageError as exc:
                problems.append(f"picture {part_name}: {exc}")
                continue
            found = _picture_context(blocks, index)
            if found is None:
                found = (
                    (trim_context(alt), "alt")
                    if alt
                    else (humanize_name(Path(drawing_name or part_name).stem), "filename")
                )
            context, kind = found
            images.append(
                ExtractedImage(
                    image=picture,
                    pages=[None],
                    name=part_name,
                    context=context,
                    context_kind=kind,
                    content_hash=image_content_hash(picture),
                    alt_text=alt,
                )
            )
    flush()
    return ParsedDocument(
        source=str(path),
        kind="docx",
        pages=sections,
        images=images,
        problems=problems,
        page_count=1,
    )
