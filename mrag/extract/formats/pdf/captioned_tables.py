"""Tables that no rule draws, found from their "Table N" caption.

Under (or else over) a caption line stands a block of text lines whose words fall into at least
two columns that stay in place from row to row. The block ends at a wide vertical gap, a line of
running text, another caption, a figure or a table found already. On a page set in two columns,
a caption that stays in one column looks in that column only.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from mrag.extract.formats.pdf.geometry import union
from mrag.extract.formats.pdf.render import Box
from mrag.extract.formats.pdf.table_captions import caption_block
from mrag.extract.formats.pdf.table_text import (
    MIN_COLUMN_GAP,
    Word,
    cells,
    gap_edges,
    line_box,
    phrases,
    text_lines,
)
from mrag.extract.tables import clean_rows, is_table, is_table_caption

#: A caption line, not a sentence that starts with a table's name ("Table 2 shows").
_CAPTION = re.compile(
    r"(?:Table|TABLE|Tab\.)\s*(?:\d+(?:\.\d+)*|[IVXLC]+)(?:\s*[:.\u2013\u2014]|\s*$|\s+[A-Z])"
)
#: A gap between two lines wider than this many caption-line heights ends a table.
_ROW_GAP = 2.2
#: The first row may stand this many caption-line heights from its caption.
_FIRST_GAP = 3.0
#: Rows a table found this way may hold.
_MAX_ROWS = 80
#: A line this share of the column wide, with this many words spaced as in running text, is
#: prose.
_PROSE_WIDTH = 0.7
_PROSE_WORDS = 8
#: Widest gap between the words of a justified line of running text, in points.
_JUSTIFIED_GAP = 1.6 * MIN_COLUMN_GAP
#: Share of rows that must fill two cells or more.
_FILLED_SHARE = 0.5
#: Half the narrowest gutter between two columns of text, in points.
_GUTTER = 7.0
#: Lines that cross the middle of the text area in fewer than this share: a two-column page.
_SPANNING_SHARE = 0.35


@dataclass
class CaptionedTable:
    """A table found under or over its caption (boxes as the reader sees the page)."""

    box: Box
    rows: list[list[str]]
    caption: str
    caption_box: Box


def caption_label(text: str) -> str:
    """ "table 3" for "Table 3: Results": what two captions of one table share."""
    return " ".join(text.split()[:2]).rstrip(".:,").lower()


def _column(parts: list[Word], caption: Word) -> list[Word]:
    """The parts of the caption's column: all of them on a page set in one column."""
    left = min(part.box[0] for part in parts)
    right = max(part.box[2] for part in parts)
    middle = (left + right) / 2
    lines = text_lines(parts)
    # Text near the middle of a line: no gutter there (word gaps are narrower than a gutter).
    spanning = sum(
        1
        for line in lines
        if any(p.box[0] < middle + _GUTTER and middle - _GUTTER < p.box[2] for p in line)
    )
    if spanning >= _SPANNING_SHARE * len(lines):
        return parts
    if caption.box[2] <= middle:
        return [part for part in parts if part.box[2] <= middle]
    if caption.box[0] >= middle:
        return [part for part in parts if part.box[0] >= middle]
    return parts


def _captions(lines: list[list[Word]], wanted: set[str]) -> Iterator[tuple[int, Word]]:
    """(line index, caption part) of each caption whose label is in ``wanted``."""
    for index, line in enumerate(lines):
        for position, part in enumerate(line):
            gap = part.box[0] - line[position - 1].box[2] if position else None
            if gap is not None and gap < 3 * MIN_COLUMN_GAP:
                continue
            # Letter-spaced type may part the label from its number: read on to the line's end.
            text = " ".join(other.text for other in line[position:])
            if _CAPTION.match(text) and caption_label(text) in wanted:
                yield index, part


def is_prose_line(line: list[Word], width: float) -> bool:
    """Whether a line of phrases is running text in a column ``width`` wide."""
    words = sum(len(part.text.split()) for part in line)
    wide = line_box(line)[2] - line_box(line)[0] >= _PROSE_WIDTH * width
    if not wide or words < _PROSE_WORDS:
        return False
    # Justified text spreads its words a little; a table's columns stand further apart.
    gaps = [b.box[0] - a.box[2] for a, b in itertools.pairwise(line)]
    return len(line) <= 2 or max(gaps) < _JUSTIFIED_GAP


def _grow(
    lines: list[list[Word]], edge: float, height: float, width: float, walls: list[Box]
) -> list[list[Word]]:
    """The lines of a table, in ``lines`` order (moving away from its caption at ``edge``)."""
    rows: list[list[Word]] = []
    for line in lines:
        box = line_box(line)
        gap = min(abs(edge - box[3]), abs(box[1] - edge))
        if gap > (_ROW_GAP if rows else _FIRST_GAP) * height:
            break
        text = " ".join(part.text for part in line)
        if is_table_caption(text) or is_prose_line(line, width):
            break
        if any(_meets(box, wall) for wall in walls):
            break
        rows.append(line)
        edge = box[1] if edge > box[1] else box[3]
        if len(rows) >= _MAX_ROWS:
            break
    return rows


def _meets(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _read(rows: list[list[Word]]) -> tuple[list[list[Word]], list[list[str]]] | None:
    """The lines kept and their cells, when they fall into at least two steady columns."""
    while rows and len(rows[-1]) < 2:
        rows = rows[:-1]  # a trailing line of one phrase: a note or a paragraph's end
    if len(rows) < 2:
        return None
    ordered = sorted(rows, key=lambda line: -line_box(line)[3])
    box = union([line_box(line) for line in ordered])
    table = clean_rows(cells(ordered, gap_edges(ordered, box)))
    if not is_table(table):
        return None
    filled = [sum(1 for cell in row if cell) >= 2 for row in table]
    if sum(filled) < 2 or sum(filled) < _FILLED_SHARE * len(table):
        return None
    sentences = sum(1 for row in table for cell in row if len(cell.split()) >= 10)
    return None if sentences > 0.3 * sum(filled) else (rows, table)


def captioned_tables(words: list[Word], wanted: set[str], walls: list[Box]) -> list[CaptionedTable]:
    """Tables under or over the captions labelled ``wanted`` ("table 2"), none reaching into
    ``walls`` (figures, tables found already)."""
    parts = [part for part in phrases(words) if not any(_meets(part.box, wall) for wall in walls)]
    if not parts:
        return []
    found: list[CaptionedTable] = []
    for _index, caption in _captions(text_lines(parts), wanted):
        column = _column(parts, caption)
        lines = text_lines(column)
        at = next(i for i, line in enumerate(lines) if any(p is caption for p in line))
        block = caption_block(lines, at)
        caption_box = union([line_box(line) for line in block])
        height = caption.box[3] - caption.box[1]
        width = max(p.box[2] for p in column) - min(p.box[0] for p in column)
        blocked = walls + [table.box for table in found]
        below = _grow(lines[at + len(block) :], caption_box[1], height, width, blocked)
        above = _grow(lines[:at][::-1], caption_box[3], height, width, blocked)
        chosen = _choose(below, above, caption_box)
        if chosen is None:
            continue
        rows, table = chosen
        text = " ".join(part.text for line in block for part in line)
        page_box = union([part.page_box for line in block for part in line])
        box = union([line_box(line) for line in rows])
        found.append(CaptionedTable(box, table, text, page_box))
        wanted.discard(caption_label(text))
    return found


def _choose(
    below: list[list[Word]], above: list[list[Word]], caption: Box
) -> tuple[list[list[Word]], list[list[str]]] | None:
    """The block under the caption or the one over it, whichever reads as a table (the nearer
    when both do)."""
    options = []
    for lines in (below, above):
        read = _read(lines)
        if read is not None:
            first = line_box(read[0][0])
            gap = caption[1] - first[3] if first[3] <= caption[1] else first[1] - caption[3]
            options.append((gap, read))
    if not options:
        return None
    return min(options, key=lambda option: option[0])[1]
