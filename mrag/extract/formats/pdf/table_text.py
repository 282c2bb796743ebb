"""Words, text lines and cells of a table region, read from PDFium's text page.

Shared by the finder of ruled tables and the finder of tables that only their caption and their
aligned columns show.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass
from typing import Any

import pypdfium2.raw as pdfium_c

from mrag.extract.formats.pdf.geometry import union
from mrag.extract.formats.pdf.render import Box

_SPACE_BEFORE_MARK = re.compile(r"\s+([,.;:)])")
#: A column gap is at least this wide (points).
MIN_COLUMN_GAP = 5.0
#: Text boxes whose vertical centres are this close (points) are one line.
_LINE_SLACK = 2.5


@dataclass
class Word:
    box: Box
    text: str
    page_box: Box
    spaced: bool = False  # a space character came before this word


def turn(box: Box, rotation: int) -> Box:
    """A page-space box as the reader sees it on a page shown turned by ``rotation`` degrees
    clockwise (so text lines run left to right); turning by ``360 - rotation`` undoes it."""
    left, bottom, right, top = box
    if rotation == 90:
        return (bottom, -right, top, -left)
    if rotation == 180:
        return (-right, -top, -left, -bottom)
    if rotation == 270:
        return (-top, left, -bottom, right)
    return box


def line_box(line: list[Word]) -> Box:
    """The box around the words of a line."""
    return union([word.box for word in line])


def centre_inside(box: Box, outer: Box) -> bool:
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return outer[0] <= x <= outer[2] and outer[1] <= y <= outer[3]


def overlaps_x(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2]


def read_words(textpage: Any, rotation: int, areas: list[Box]) -> list[Word]:
    """Words inside ``areas`` (page space): characters joined until a space or a gap, turned as
    the reader sees them, read character by character from PDFium's text page in one pass.
    Characters outside every area are passed over without reading what they are."""
    reader = _WordReader(rotation)
    raw = textpage.raw
    left, right, bottom, top = (ctypes.c_double() for _ in range(4))
    where = (ctypes.byref(left), ctypes.byref(right), ctypes.byref(bottom), ctypes.byref(top))
    # This loop runs once per character of every page with a table: names are bound locally.
    char_box, unicode_of = pdfium_c.FPDFText_GetCharBox, pdfium_c.FPDFText_GetUnicode
    for index in range(pdfium_c.FPDFText_CountChars(raw)):
        if not char_box(raw, index, *where):
            reader.space()
            continue
        x0, y0, x1, y1 = left.value, bottom.value, right.value, top.value
        x, y = (x0 + x1) / 2, (y0 + y1) / 2
        for area in areas:
            if area[0] <= x <= area[2] and area[1] <= y <= area[3]:
                break
        else:
            reader.close()
            continue
        code = unicode_of(raw, index)
        char = chr(code) if 0 < code < 0x110000 else ""
        if not char or char.isspace():
            reader.space()
        else:
            reader.add(char, x0, y0, x1, y1)
    reader.close()
    return reader.words


class _WordReader:
    """Characters, in the text page's order, joined into :class:`Word` objects."""

    def __init__(self, rotation: int) -> None:
        self.rotation = rotation
        self.words: list[Word] = []
        self.chars: list[str] = []
        self.box = [0.0, 0.0, 0.0, 0.0]
        self.spaced = False  # a space came before the word being read

    def close(self) -> None:
        if self.chars:
            box = self.box
            page_box = (box[0], box[1], box[2], box[3])
            turned = turn(page_box, self.rotation)
            self.words.append(Word(turned, "".join(self.chars), page_box, self.spaced))
            self.chars = []
            self.spaced = False

    def space(self) -> None:
        self.close()
        self.spaced = True

    def add(self, char: str, x0: float, y0: float, x1: float, y1: float) -> None:
        box = self.box
        if self.chars and not _continues(box, (x0, y0, x1, y1), self.rotation):
            self.close()
        if not self.chars:
            box[0], box[1], box[2], box[3] = x0, y0, x1, y1
        else:
            box[0], box[1] = min(box[0], x0), min(box[1], y0)
            box[2], box[3] = max(box[2], x1), max(box[3], y1)
        self.chars.append(char)


def _continues(box: list[float], char: Box, rotation: int) -> bool:
    """Whether a character carries on the word in ``box`` (same line, no gap between)."""
    if rotation:
        a, b = turn((box[0], box[1], box[2], box[3]), rotation), turn(char, rotation)
    else:  # the common case, without building turned copies
        a, b = box, char
    height = max(a[3] - a[1], b[3] - b[1], 1.0)
    same_line = abs((a[1] + a[3]) / 2 - (b[1] + b[3]) / 2) <= 0.5 * height
    return same_line and -0.5 * height <= b[0] - a[2] <= 0.6 * height


def text_lines(words: list[Word]) -> list[list[Word]]:
    """Words grouped into lines, top to bottom, each line left to right."""
    lines: list[list[Word]] = []
    for word in sorted(words, key=lambda w: -(w.box[1] + w.box[3]) / 2):
        centre = (word.box[1] + word.box[3]) / 2
        if lines:
            last = lines[-1][0].box
            if abs((last[1] + last[3]) / 2 - centre) <= _LINE_SLACK:
                lines[-1].append(word)
                continue
        lines.append([word])
    for line in lines:
        line.sort(key=lambda w: w.box[0])
    return lines


def phrases(words: list[Word]) -> list[Word]:
    """Words of one line a space apart joined into one phrase ("Long Gun"); a wider gap is a
    column gap."""
    phrases: list[Word] = []
    for line in text_lines(words):
        current: Word | None = None
        for word in line:
            space = 0.6 * (word.box[3] - word.box[1])
            if current is not None and word.box[0] - current.box[2] < min(space, MIN_COLUMN_GAP):
                current.box = union([current.box, word.box])
                current.page_box = union([current.page_box, word.page_box])
                current.text = f"{current.text}{' ' if word.spaced else ''}{word.text}"
                continue
            current = Word(word.box, word.text, word.page_box)
            phrases.append(current)
    return phrases


def gap_edges(rows: list[list[Word]], box: Box) -> list[float]:
    """Middles of the vertical gaps through the table: runs of x where (almost) no row has text.

    A few rows may cross a gap (a wide total, a note): up to one row in twenty is allowed to.
    """
    widest = max((len(row) for row in rows), default=0)
    # Header rows whose cells span several columns would close every gap: the rows with most
    # cells decide where the gaps are, the others fall into the columns their words centre in.
    full = [row for row in rows if len(row) >= 0.6 * widest]
    if not full:
        return []
    origin = int(box[0])
    covered = [0] * (int(box[2]) - origin + 2)
    for row in full:
        for word in row:
            start = max(0, int(word.box[0]) - origin)
            end = min(len(covered), int(word.box[2]) - origin + 1)
            for x in range(start, end):
                covered[x] += 1
    allowed = len(full) // 20
    edges: list[float] = []
    run_start: int | None = None
    seen_text = False
    for x, count in enumerate(covered):
        if count <= allowed:
            if run_start is None:
                run_start = x
            continue
        if run_start is not None and seen_text and x - run_start >= MIN_COLUMN_GAP:
            edges.append(origin + (run_start + x) / 2)
        run_start, seen_text = None, True
    return edges


def cells(rows: list[list[Word]], edges: list[float]) -> list[list[str]]:
    table = []
    for row in rows:
        cells = [""] * (len(edges) + 1)
        for word in row:  # line by line, each left to right
            centre = (word.box[0] + word.box[2]) / 2
            column = sum(1 for x in edges if x < centre)
            cells[column] = f"{cells[column]} {word.text}".strip()
        # Text layers often put a space glyph before a comma or a full stop ("1 ,260").
        table.append([_SPACE_BEFORE_MARK.sub(r"\1", cell) for cell in cells])
    return table
