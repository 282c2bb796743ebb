"""Tables as Markdown: the one text form every format's tables take (PDF, DOCX, HTML).

A table is stored as its own text unit (a :class:`~mrag.extract.document.PageText` whose
``element`` is "table"): a Markdown pipe table whose first row is the header. Its caption ("Table
3: ...") becomes the unit's last heading, so every chunk of the table is embedded with it, and the
chunker (:mod:`mrag.ingestion.chunking`) splits a long table between rows only, repeating the
header row in each piece.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from mrag.extract.document import PageText

#: The Markdown line between the header row and the body rows starts like this.
_SEPARATOR_CELL = "---"
#: Cells longer than this are cut (a table cell is a value or a phrase, not a passage).
MAX_CELL_CHARS = 400
_CAPTION = re.compile(r"^\s*(?i:tab(?:le)?)\.?\s*(?:\d+(?:\.\d+)*|[IVXLC]+)\b")


@dataclass
class Table:
    """Cells read into rows and columns (``rows[0]`` is the header), and the caption, if any."""

    rows: list[list[str]]
    caption: str | None = None
    page: int | None = None
    headings: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns), counting the header row."""
        return len(self.rows), max((len(row) for row in self.rows), default=0)


def is_table_caption(line: str) -> bool:
    """Whether a line starts like a table caption ("Table 3:", "Tab. 2", "TABLE IV")."""
    return _CAPTION.match(line) is not None


def _cell(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - 1].rstrip() + "…"
    # A pipe inside a cell would start a new column.
    return text.replace("|", "\\|")


def clean_rows(rows: Sequence[Sequence[str | None]]) -> list[list[str]]:
    """Rows padded to one width, with empty rows and empty columns dropped."""
    cells = [[_cell(value or "") for value in row] for row in rows]
    cells = [row for row in cells if any(row)]
    if not cells:
        return []
    width = max(len(row) for row in cells)
    cells = [row + [""] * (width - len(row)) for row in cells]
    keep = [column for column in range(width) if any(row[column] for row in cells)]
    return [[row[column] for column in keep] for row in cells]


def to_markdown(rows: Sequence[Sequence[str]]) -> str:
    """A Markdown pipe table: the header row, the separator line, then one line per body row."""
    if not rows:
        return ""
    width = max(len(row) for row in rows)

    def line(row: Sequence[str]) -> str:
        padded = list(row) + [""] * (width - len(row))
        return "| " + " | ".join(padded) + " |"

    lines = [line(rows[0]), "| " + " | ".join([_SEPARATOR_CELL] * width) + " |"]
    lines.extend(line(row) for row in rows[1:])
    return "\n".join(lines)


def is_table(rows: Sequence[Sequence[str]]) -> bool:
    """At least two rows and two columns with text in more than one cell: a table, not a box."""
    if len(rows) < 2 or max((len(row) for row in rows), default=0) < 2:
        return False
    return sum(1 for row in rows for value in row if value) >= 3


def header_lines(markdown: str) -> int:
    """How many leading lines of a Markdown table are its header (header row and separator)."""
    lines = markdown.split("\n", 2)
    if len(lines) >= 2 and lines[1].startswith("| " + _SEPARATOR_CELL):
        return 2
    return 0


def table_unit(table: Table) -> PageText:
    """The text unit a table is stored as."""
    headings = list(table.headings)
    if table.caption:
        headings.append(" ".join(table.caption.split()))
    return PageText(
        page=table.page, text=to_markdown(table.rows), headings=headings, element="table"
    )
