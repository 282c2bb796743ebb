"""Finding tables on a PDF page from PDFium's page objects and text boxes, and reading their cells.

A table is found from its rules: the horizontal lines (thin paths, and the top and bottom edges of
cell boxes) that form a connected group at least two long rules tall, with text between them and
nothing drawn inside but rules (a chart with gridlines holds curves, bars or pictures). Its rows
are its text lines (lines between two rules of a fully ruled grid are one row), and its columns
come from the vertical rules when the table has them, else from the gaps that run down the whole
table between the text boxes of every row (the aligned columns of a booktabs table).

A "Table N" caption within a short distance above (or else below) the table names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pypdfium2.raw as pdfium_c

from mrag.extract.formats.pdf.captioned_tables import caption_label, captioned_tables, is_prose_line
from mrag.extract.formats.pdf.geometry import connected_groups, union
from mrag.extract.formats.pdf.render import Box
from mrag.extract.formats.pdf.table_captions import (
    CAPTION_GAP,
    SIDE_CAPTION_GAP,
    assign_captions,
    caption_options,
)
from mrag.extract.formats.pdf.table_text import (
    MIN_COLUMN_GAP,
    Word,
    cells,
    centre_inside,
    gap_edges,
    line_box,
    overlaps_x,
    phrases,
    read_words,
    text_lines,
    turn,
)
from mrag.extract.formats.pdf.vector_figures import page_graphics, plain_path, unfilled_path
from mrag.extract.tables import clean_rows, is_table, is_table_caption

#: Drawings inside a table smaller than this share of it are icons in cells (a tick, a smiley).
_ICON_SHARE = 0.02
#: A path thinner than this (points) is a rule.
_RULE = 2.0
#: A table's long rules span at least this many points.
_MIN_TABLE_WIDTH = 60.0
#: Two rules this close (points) touch.
_JOIN = 2.5
#: Header lines over a table's first rule: at most this many, this close (points).
_HEADER_LINES = 2
_HEADER_GAP = 4.0
#: Height of a header line and the gap over it, at most (points): how far up header lines are read.
_HEADER_REACH = 24.0
#: Furthest a header rule may be from the rule that closes its table, in points.
_MAX_TABLE_DROP = 400.0
#: A region whose cells are this often long sentences is running text between two rules.
_PROSE_CELL_SHARE = 0.3
#: A line this share of a ruled area wide runs across all its columns.
_FULL_LINE = 0.95
#: Drawings at least this large (square points) end a table found from its caption.
_WALL_AREA = 400.0
# Paths looked at per page; a map of a hundred thousand paths holds no table worth the time.
_MAX_PATHS = 5000

#: A ruled area: its box, its horizontal rules, its vertical rules.
_Region = tuple[Box, list[Box], list[Box]]


@dataclass
class PdfTable:
    """A table found on a page: its box in page space, its cells, its caption."""

    box: Box
    rows: list[list[str]]
    caption: str | None = None
    caption_box: Box | None = None


@dataclass
class _Rules:
    horizontal: list[Box] = field(default_factory=list)
    vertical: list[Box] = field(default_factory=list)
    # Coloured boxes: shaded cells hold text, a chart's bars and tiles do not.
    shaded: list[Box] = field(default_factory=list)


def _rules(graphics: list[Any], rotation: int) -> tuple[_Rules, list[Box]]:
    """Horizontal and vertical rules of the page, and the boxes of everything else drawn."""
    rules = _Rules()
    drawn: list[Box] = []
    for element in graphics[:_MAX_PATHS]:
        box = turn(element.box, rotation)
        width, height = box[2] - box[0], box[3] - box[1]
        if width < _RULE and height < _RULE:
            continue  # a dot or a glyph piece: neither a rule nor a drawing that matters
        is_path = element.kind == "graphic" and element.obj.type == pdfium_c.FPDF_PAGEOBJ_PATH
        # A thin path is a line whatever its segments: the costlier shape check is for boxes.
        if is_path and height <= _RULE:
            rules.horizontal.append(box)
        elif is_path and width <= _RULE:
            rules.vertical.append(box)
        elif not is_path or not plain_path(element):
            drawn.append(box)
        elif width > 3 * _RULE and height > 3 * _RULE and not unfilled_path(element):
            rules.shaded.append(box)  # a shaded cell, or a chart's bar or tile
        elif width > 3 * _RULE and height > 3 * _RULE:
            # A cell box or a frame: its four edges are rules.
            left, bottom, right, top = box
            rules.horizontal += [(left, bottom, right, bottom), (left, top, right, top)]
            rules.vertical += [(left, bottom, left, top), (right, bottom, right, top)]
    return rules, drawn


def _touch(a: Box, b: Box) -> bool:
    return (
        a[0] <= b[2] + _JOIN
        and b[0] <= a[2] + _JOIN
        and a[1] <= b[3] + _JOIN
        and b[1] <= a[3] + _JOIN
    )


def _stacked_rules(horizontal: list[Box]) -> list[list[Box]]:
    """Long horizontal rules that start and end together (booktabs: top, middle, bottom), each
    stack closed by the nearest wider rule below when its own rules only frame the header."""
    long = [b for b in horizontal if b[2] - b[0] >= _MIN_TABLE_WIDTH]
    stacks: list[list[Box]] = []
    for box in sorted(long, key=lambda b: -b[3]):
        for stack in stacks:
            if abs(stack[0][0] - box[0]) <= 6 and abs(stack[0][2] - box[2]) <= 6:
                stack.append(box)
                break
        else:
            stacks.append([box])
    found = []
    for stack in stacks:
        lowest = min(b[1] for b in stack)
        below = [
            b
            for b in long
            if b[3] < lowest - _JOIN
            and b[0] <= stack[0][0] + 6
            and b[2] >= stack[0][2] - 6
            and lowest - b[3] <= _MAX_TABLE_DROP
        ]
        if len(stack) == 2 and below:
            # Top rule and header rule: the table runs down to the next rule as wide.
            bottom = max(below, key=lambda b: b[3])
            stack.append((stack[0][0], bottom[1], stack[0][2], bottom[3]))
        if len(stack) >= 2:
            found.append(stack)
    return found


def _candidate_regions(rules: _Rules) -> list[tuple[Box, list[Box], list[Box]]]:
    """(box, horizontal rules, vertical rules) of each ruled area that may be a table."""
    regions: list[tuple[Box, list[Box], list[Box]]] = []
    for group in connected_groups(rules.horizontal + rules.vertical, _touch, _JOIN):
        horizontal = [b for b in group if b[3] - b[1] <= _RULE + 0.01 and b[2] - b[0] > _RULE]
        long = [b for b in horizontal if b[2] - b[0] >= _MIN_TABLE_WIDTH]
        if len(long) >= 2:
            vertical = [b for b in group if b not in horizontal]
            regions.append((union(group), horizontal, vertical))
    grids = [box for box, _h, _v in regions]
    for stack in _stacked_rules(rules.horizontal):
        box = union(stack)
        # Stacks may nest (a table between two page-wide rules): running text fails as a table.
        if not any(_inside(box, other) for other in grids):
            regions.append((box, stack, []))
    return regions


def _inside(inner: Box, outer: Box, slack: float = 2.0) -> bool:
    return (
        inner[0] >= outer[0] - slack
        and inner[1] >= outer[1] - slack
        and inner[2] <= outer[2] + slack
        and inner[3] <= outer[3] + slack
    )


def _merge_by_rules(lines: list[list[Word]], horizontal: list[Box], box: Box) -> list[list[Word]]:
    """In a grid ruled between every row, lines with no rule between them are one row (a cell
    whose text wraps)."""
    width = box[2] - box[0]
    ys = sorted({round(b[1], 1) for b in horizontal if b[2] - b[0] >= 0.5 * width})
    if len(ys) < len(lines) // 2 + 1:
        return lines  # rules between some rows only: every text line is a row

    def band(line: list[Word]) -> int:
        centre = (line[0].box[1] + line[0].box[3]) / 2
        return sum(1 for y in ys if y < centre)

    rows: list[list[Word]] = []
    previous = None
    for line in lines:
        current = band(line)
        if rows and current == previous:
            rows[-1] = rows[-1] + line
        else:
            rows.append(list(line))
        previous = current
    return rows


def _column_edges(rows: list[list[Word]], vertical: list[Box], box: Box) -> list[float]:
    """x positions that separate columns: inner vertical rules, else gaps through every row."""
    height = box[3] - box[1]
    inner = sorted(
        {
            round((b[0] + b[2]) / 2, 1)
            for b in vertical
            if b[3] - b[1] >= 0.3 * height and box[0] + _JOIN < b[0] < box[2] - _JOIN
        }
    )
    # Vertical rules may divide groups of columns only: the gaps between the text divide the rest.
    return _dedupe(sorted(inner + gap_edges(rows, box)))


def _dedupe(xs: list[float]) -> list[float]:
    kept: list[float] = []
    for x in xs:
        if not kept or x - kept[-1] > 2 * MIN_COLUMN_GAP:
            kept.append(x)
    return kept


def _read(textpage: Any, words: list[Word], box: Box, horizontal: list[Box], vertical: list[Box]):
    inside = phrases([w for w in words if centre_inside(w.box, box)])
    if len(inside) < 3:
        return None
    rows = _merge_by_rules(text_lines(inside), horizontal, box)
    return clean_rows(cells(rows, _column_edges(rows, vertical, box)))


def _holds_drawing(drawn: list[Box], box: Box) -> bool:
    """A picture or a curve inside, bigger than an icon in a cell: a chart with gridlines, not a
    table."""
    area = (box[2] - box[0]) * (box[3] - box[1])
    return any(
        _inside(other, box)
        and other[2] - other[0] > _RULE
        and (other[2] - other[0]) * (other[3] - other[1]) > _ICON_SHARE * area
        for other in drawn
    )


def _holds_bars(shaded: list[Box], words: list[Word], box: Box) -> bool:
    """A coloured box inside with no text in it: a bar or a tile of a chart, not a shaded cell."""
    for other in shaded:
        if _inside(other, box) and not any(centre_inside(w.box, other) for w in words):
            return True
    return False


def _reads_as_prose(rows: list[list[str]]) -> bool:
    """Running text between two rules (a page frame, a boxed note): many cells are sentences."""
    cells = [cell for row in rows for cell in row if cell]
    sentences = sum(1 for cell in cells if len(cell.split()) >= 10)
    return sentences > _PROSE_CELL_SHARE * len(cells)


def _title_rows(rows: list[list[str]]) -> tuple[str | None, list[list[str]]]:
    """Leading rows that fill few cells (a title inside the table's frame) and the rest."""
    width = max((len(row) for row in rows), default=0)
    first = 0
    while first < len(rows) - 2 and sum(1 for cell in rows[first] if cell) < max(2, 0.3 * width):
        first += 1
    title = " ".join(cell for row in rows[:first] for cell in row if cell)
    return title or None, clean_rows(rows[first:])


def _split_region(region: _Region, words: list[Word], horizontal: list[Box]) -> list[_Region]:
    """A ruled area cut at the lines inside it that no table holds: a "Table N" caption or a
    line of running text (two tables, one over the other, whose rules start and end together).
    A part left with a top and a header rule runs down to the next rule as wide (``horizontal``
    holds the page's rules)."""
    box, rules, vertical = region
    if sum(1 for rule in rules if rule[2] - rule[0] >= _MIN_TABLE_WIDTH) < 3:
        return [region]  # one table's top and foot at most: nothing to cut apart
    lines = text_lines(phrases([w for w in words if centre_inside(w.box, box)]))
    width = box[2] - box[0]
    cuts = [
        (line_box(line)[1] + line_box(line)[3]) / 2
        for line in lines
        # A caption in the margin shares its line with a row: only a caption alone cuts.
        if (len(line) <= 2 and is_table_caption(line[0].text)) or _full_prose(line, width)
    ]
    if not cuts:
        return [region]
    parts: dict[int, list[Box]] = {}
    for rule in rules:
        parts.setdefault(sum(1 for y in cuts if y > rule[3]), []).append(rule)
    split = []
    for part_rules in parts.values():
        widest = max(part_rules, key=lambda rule: rule[2] - rule[0])
        # Rules off to one side (under a margin note) are not this table's.
        part_rules = [rule for rule in part_rules if _under(rule, widest)]
        long = [rule for rule in part_rules if rule[2] - rule[0] >= _MIN_TABLE_WIDTH]
        if len(long) == 2 and not vertical:
            part_rules += _closing_rule(long, horizontal, cuts)
        if len(part_rules) >= 2:
            part = union(part_rules)
            split += _grids((part, part_rules, [v for v in vertical if _inside(v, part, _JOIN)]))
    return split


def _grids(part: _Region) -> list[_Region]:
    """A part of a cut grid, as the groups of its rules that still touch (a rule far below, a
    page's foot rule, is no longer tied to the table by the frame that was cut away)."""
    _box, horizontal, vertical = part
    if not vertical:
        return [part]
    regions = []
    for group in connected_groups(horizontal + vertical, _touch, _JOIN):
        rules = [rule for rule in group if rule in horizontal]
        if sum(1 for rule in rules if rule[2] - rule[0] >= _MIN_TABLE_WIDTH) >= 2:
            regions.append((union(group), rules, [rule for rule in group if rule not in rules]))
    return regions


def _with_header(region: _Region, words: list[Word]) -> _Region:
    """A table ruled only under its header and at its foot: the header lines right over its top
    rule (cells in columns, not a caption, not running text) belong to it."""
    box, horizontal, vertical = region
    if vertical:
        return region
    width = box[2] - box[0]
    reach = box[3] + _HEADER_LINES * _HEADER_REACH
    above = [w for w in words if box[3] - 1 <= w.box[1] <= reach and overlaps_x(w.box, box)]
    top = box[3]
    for line in text_lines(phrases(above))[::-1][:_HEADER_LINES]:
        found = line_box(line)
        if found[1] - top > _HEADER_GAP or len(line) < 2:
            break
        if found[0] < box[0] - 2 or found[2] > box[2] + 2:
            break  # wider than the table: a caption or running text
        if is_table_caption(" ".join(part.text for part in line)) or is_prose_line(line, width):
            break
        if any(len(part.text.split()) >= 6 for part in line):
            break
        top = found[3]
    return ((box[0], box[1], box[2], top), horizontal, vertical)


def _full_prose(line: list[Word], width: float) -> bool:
    """Running text across the whole area; a table's wrapped cell text fills one column only."""
    box = line_box(line)
    return box[2] - box[0] >= _FULL_LINE * width and is_prose_line(line, width)


def _under(rule: Box, widest: Box) -> bool:
    return min(rule[2], widest[2]) - max(rule[0], widest[0]) > (rule[2] - rule[0]) / 2


def _closing_rule(pair: list[Box], horizontal: list[Box], cuts: list[float]) -> list[Box]:
    """The rule under a table's top and header rules that closes it: the nearest as wide below,
    with no cut between."""
    left, right = min(r[0] for r in pair), max(r[2] for r in pair)
    lowest = min(r[1] for r in pair)
    below = [
        r
        for r in horizontal
        if r[3] < lowest - _JOIN
        and r[0] <= left + 6
        and r[2] >= right - 6
        and lowest - r[3] <= _MAX_TABLE_DROP
        and not any(r[3] < y < lowest for y in cuts)
    ]
    if not below:
        return []
    bottom = max(below, key=lambda r: r[3])
    return [(left, bottom[1], right, bottom[3])]


def _ruled_tables(
    textpage: Any, regions: list[_Region], rules: _Rules, drawn: list[Box], rotation: int
) -> list[PdfTable]:
    """Tables drawn with rules, boxes as the reader sees the page."""
    # Only the text in and around the regions is read: cells, and captions above or beside.
    margin = SIDE_CAPTION_GAP + CAPTION_GAP
    areas = [
        turn((b[0] - margin, b[1] - margin, b[2] + margin, b[3] + margin), (360 - rotation) % 360)
        for b, _h, _v in regions
    ]
    words = read_words(textpage, rotation, areas)
    regions = [
        _with_header(part, words)
        for region in regions
        for part in _split_region(region, words, rules.horizontal)
    ]
    # A piece of a cut stack inside a grid is rules of that grid (under a header group).
    grids = [box for box, _h, vertical in regions if vertical]
    regions = [r for r in regions if r[2] or not any(_inside(r[0], box) for box in grids)]
    tables: list[PdfTable] = []
    titles: list[str | None] = []
    options = []
    for box, horizontal, vertical in regions:
        if _holds_drawing(drawn, box) or _holds_bars(rules.shaded, words, box):
            continue
        rows = _read(textpage, words, box, horizontal, vertical)
        if rows is None:
            continue
        title, rows = _title_rows(rows)
        if not is_table(rows) or _reads_as_prose(rows):
            continue
        tables.append(PdfTable(box, rows))
        titles.append(title)
        options.append(caption_options(words, box))
    for table, title, caption in zip(tables, titles, assign_captions(options), strict=True):
        table.caption = caption.text if caption else title
        table.caption_box = caption.box if caption else None
    return _without_nested(tables)


def _without_nested(tables: list[PdfTable]) -> list[PdfTable]:
    """A frame around a table (two page-wide rules) is not a table of its own."""
    return [
        table
        for table in tables
        if not any(other is not table and _inside(other.box, table.box) for other in tables)
    ]


def _unruled_tables(
    page: Any, textpage: Any, text: str, tables: list[PdfTable], drawn: list[Box], rotation: int
) -> list[PdfTable]:
    """Tables under or over the "Table N" captions of ``text`` that no table found has."""
    named = {caption_label(table.caption) for table in tables if table.caption}
    wanted = {caption_label(line) for line in text.splitlines() if is_table_caption(line)}
    wanted -= named
    if not wanted:
        return []
    width, height = page.get_size()
    words = read_words(textpage, rotation, [(-width, -height, 2 * width, 2 * height)])
    walls = [box for box in drawn if (box[2] - box[0]) * (box[3] - box[1]) >= _WALL_AREA]
    walls += [table.box for table in tables]
    return [
        PdfTable(found.box, found.rows, found.caption, found.caption_box)
        for found in captioned_tables(words, wanted, walls)
    ]


def find_tables(
    page: Any,
    textpage: Any | None = None,
    graphics: list[Any] | None = None,
    text: str | None = None,
) -> list[PdfTable]:
    """The tables of a PDFium page, top to bottom, with their cells and captions.

    ``graphics`` are the page's graphics from :func:`page_graphics`, and ``text`` its text, when
    the caller has them.
    """
    rotation = page.get_rotation() % 360
    if graphics is None:
        graphics = list(page_graphics(page, tuple(page.get_cropbox())))
    rules, drawn = _rules(graphics, rotation)
    regions = _candidate_regions(rules) if len(rules.horizontal) >= 2 else []
    if text is None or regions or any(map(is_table_caption, text.splitlines())):
        textpage = textpage or page.get_textpage()
    tables = _ruled_tables(textpage, regions, rules, drawn, rotation) if regions else []
    if text is None:
        text = textpage.get_text_range()
    # Only a page with a "Table N" caption that no ruled table took is read whole.
    tables += _unruled_tables(page, textpage, text, tables, drawn, rotation)
    tables.sort(key=lambda table: -table.box[3])
    for table in tables:
        table.box = turn(table.box, (360 - rotation) % 360)
    return tables
