"""HTML files: the visible text, cut into sections at headings, and the local pictures they show.

Only what a reader sees is kept: ``script``, ``style``, ``head``, ``template`` and ``noscript``
content is dropped, and block elements become paragraph breaks. ``<img src>`` is treated as
hostile input: only files inside the HTML file's own folder tree are opened (after resolving
symlinks and ``..``), never URLs, and ``data:`` URIs only up to :data:`MAX_DATA_URI_CHARS`.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from mrag.extract.document import (
    ExtractedImage,
    ExtractionLimits,
    PageText,
    ParsedDocument,
    image_content_hash,
)
from mrag.extract.figures import humanize_name, trim_context
from mrag.extract.formats.text import read_text_file
from mrag.extract.tables import Table, clean_rows, is_table, table_unit
from mrag.images import ImageError, load_image

HTML_SUFFIXES = (".html", ".htm", ".xhtml")
#: Largest ``data:`` image URI accepted (characters, about 6 MB of image once decoded).
MAX_DATA_URI_CHARS = 8 * 1024 * 1024

_SKIPPED = frozenset({"script", "style", "head", "template", "noscript", "svg", "math"})
_BLOCKS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
        "caption",
        "details",
        "summary",
    }
)
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
# Elements that never have an end tag, so they must not open a skipped region or a figure.
_VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    }
)


@dataclass
class _ImageRef:
    src: str
    alt: str | None
    caption: str | None = None


@dataclass
class _Figure:
    images: list[_ImageRef] = field(default_factory=list)
    caption: list[str] = field(default_factory=list)


@dataclass
class _HtmlTable:
    rows: list[list[str]] = field(default_factory=list)
    cell: list[str] | None = None
    caption: list[str] = field(default_factory=list)
    in_caption: bool = False
    depth: int = 1  # nested tables are read as text of the outer table's cell

    def start(self, tag: str) -> None:
        if tag == "table":
            self.depth += 1
        elif self.depth > 1:
            return
        elif tag == "tr":
            self.end_row()
            self.rows.append([])
        elif tag in ("td", "th"):
            self.end_cell()
            if not self.rows:
                self.rows.append([])
            self.cell = []
        elif tag == "caption":
            self.in_caption = True

    def end(self, tag: str) -> bool:
        """Handle an end tag; True when the table itself ended."""
        if tag == "table":
            self.depth -= 1
            if self.depth == 0:
                self.end_row()
                return True
        elif self.depth > 1:
            return False
        elif tag in ("td", "th"):
            self.end_cell()
        elif tag == "tr":
            self.end_row()
        elif tag == "caption":
            self.in_caption = False
        return False

    def data(self, text: str) -> None:
        if self.in_caption:
            self.caption.append(text)
        elif self.cell is not None:
            self.cell.append(text)

    def end_cell(self) -> None:
        if self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def end_row(self) -> None:
        self.end_cell()


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[PageText] = []
        self.images: list[_ImageRef] = []
        self._headings: list[tuple[int, str]] = []
        self._paragraphs: list[str] = []
        self._current: list[str] = []
        self._skip_depth = 0
        self._heading_level: int | None = None
        self._heading_text: list[str] = []
        self._figures: list[_Figure] = []
        self._caption_depth = 0
        self._pre_depth = 0
        self._table: _HtmlTable | None = None

    def _break(self) -> None:
        text = "".join(self._current)
        text = text.strip() if self._pre_depth else " ".join(text.split())
        if text:
            self._paragraphs.append(text)
        self._current = []

    def _flush_section(self) -> None:
        self._break()
        if self._paragraphs:
            self.sections.append(
                PageText(
                    page=None,
                    text="\n\n".join(self._paragraphs),
                    headings=[title for _, title in self._headings],
                )
            )
        self._paragraphs = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_depth:
            if tag in _SKIPPED:
                self._skip_depth += 1
            return
        if tag in _SKIPPED:
            self._skip_depth = 1
            return
        if self._table is not None:
            self._table.start(tag)
        elif tag == "table":
            self._break()
            self._table = _HtmlTable()
            return
        if tag in _HEADINGS:
            self._flush_section()
            self._heading_level = _HEADINGS[tag]
            self._heading_text = []
            return
        if tag in _BLOCKS:
            self._break()
        if tag == "pre":
            self._pre_depth += 1
        if tag == "figure":
            self._figures.append(_Figure())
        elif tag == "figcaption":
            self._caption_depth += 1
        elif tag == "img":
            values = dict(attrs)
            src = (values.get("src") or "").strip()
            if src:
                ref = _ImageRef(src=src, alt=(values.get("alt") or "").strip() or None)
                self.images.append(ref)
                if self._figures:
                    self._figures[-1].images.append(ref)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID or tag == "img":
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self._skip_depth:
            if tag in _SKIPPED:
                self._skip_depth -= 1
            return
        if self._table is not None and self._table.end(tag):
            self._end_table(self._table)
            self._table = None
            return
        if tag in _HEADINGS and self._heading_level is not None:
            title = " ".join("".join(self._heading_text).split())
            level = self._heading_level
            self._heading_level = None
            while self._headings and self._headings[-1][0] >= level:
                self._headings.pop()
            if title:
                self._headings.append((level, title))
            return
        if tag in _BLOCKS:
            self._break()
        if tag == "pre" and self._pre_depth:
            self._pre_depth -= 1
        if tag == "figcaption" and self._caption_depth:
            self._caption_depth -= 1
        elif tag == "figure" and self._figures:
            figure = self._figures.pop()
            caption = " ".join(" ".join(figure.caption).split())
            if caption:
                for ref in figure.images:
                    ref.caption = caption

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._heading_level is not None:
            self._heading_text.append(data)
            return
        if self._table is not None:
            self._table.data(data)
            return
        self._current.append(data)
        if self._caption_depth and self._figures:
            self._figures[-1].caption.append(data)

    def _end_table(self, found: _HtmlTable) -> None:
        rows = clean_rows(found.rows)
        caption = " ".join("".join(found.caption).split()) or None
        if not is_table(rows):
            # A layout table: its cells are running text.
            self._paragraphs.extend(" ".join(cell for cell in row if cell) for row in rows)
            return
        self._flush_section()
        headings = [title for _, title in self._headings]
        self.sections.append(table_unit(Table(rows, caption, None, headings)))

    def close(self) -> None:
        if self._table is not None:
            self._end_table(self._table)
            self._table = None
        super().close()
        self._flush_section()


def _resolve_local(src: str, folder: Path) -> Path:
    """The file ``src`` names inside ``folder``'s tree; ValueError for anything else."""
    parts = urllib.parse.urlsplit(src)
    if parts.scheme or parts.netloc:
        kind = parts.scheme or "network"
        raise ValueError(f"refused: only local files are loaded, not {kind} URLs")
    relative = urllib.parse.unquote(parts.path)
    if not relative or "\x00" in relative:
        raise ValueError("refused: empty or invalid path")
    root = folder.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root):
        raise ValueError("refused: path leads outside the document's folder")
    if not candidate.is_file():
        raise ValueError("file not found")
    return candidate


def parse_html(path: Path, *, limits: ExtractionLimits) -> ParsedDocument:
    """Read an HTML file's visible text (sections per heading) and its local images."""
    problems: list[str] = []
    parser = _VisibleText()
    parser.feed(read_text_file(path, problems))
    parser.close()
    images: list[ExtractedImage] = []
    for ref in parser.images:
        shown = ref.src if len(ref.src) <= 80 else ref.src[:77] + "..."
        if len(images) >= limits.max_images_per_document:
            problems.append(f"image {shown}: skipped, max_images_per_document reached")
            continue
        try:
            if ref.src.lower().startswith("data:"):
                if len(ref.src) > MAX_DATA_URI_CHARS:
                    raise ValueError(f"refused: data URI over {MAX_DATA_URI_CHARS:,} characters")
                source: str | Path = ref.src
                name = "inline data image"
            else:
                source = _resolve_local(ref.src, path.parent)
                name = source.name
            picture = load_image(source, max_pixels=limits.max_pixels, allow_urls=False)
        except (ValueError, ImageError) as exc:
            problems.append(f"image {shown}: {exc}")
            continue
        if ref.caption:
            context, kind = trim_context(ref.caption), "caption"
        elif ref.alt:
            context, kind = trim_context(ref.alt), "alt"
        else:
            context, kind = humanize_name(Path(name).stem), "filename"
        images.append(
            ExtractedImage(
                image=picture,
                pages=[None],
                name=name,
                context=context,
                context_kind=kind,
                content_hash=image_content_hash(picture),
                alt_text=ref.alt,
            )
        )
    return ParsedDocument(
        source=str(path),
        kind="html",
        pages=parser.sections,
        images=images,
        problems=problems,
        page_count=1,
    )
