"""Finding figures on a PDF page from its caption: charts and diagrams drawn with paths included.

Most plots (matplotlib, R, gnuplot, TikZ exports) and the diagrams of manuals are not pictures in
the PDF at all but paths, so a figure is found from its caption instead. PDFium lists every page
object with its bounds, and every line of text with its rectangle. From a "Figure N" / "Fig. N"
caption line, :func:`find_figure_regions` walks away from the caption (up first, where figures
usually are, and down) gathering graphics (paths, pictures, form XObjects) and the short text
between them (tick and axis labels, legends, sub-captions), and stops at a line of body text,
another caption, or a wide gap. What it gathered is one figure, raster and vector parts alike.

Page furniture is left out before the walk: anything inside the header and footer bands, frames
and backgrounds covering most of the page. Tables are found first and stand as walls no figure
grows into: a grid of touching, uncoloured boxes that hold text, or a stack of equally long rules
with dense text between them, either with nothing drawn inside but rules (no curve, no picture,
no coloured bar or tile). A table right at a "Figure" caption is what the caption names, though:
a figure drawn as a grid of boxes.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from mrag.extract.figures import Caption, find_captions
from mrag.extract.formats.pdf.geometry import connected_groups
from mrag.extract.formats.pdf.render import Box
from mrag.extract.hygiene import clean_text

#: Widest whitespace between a caption and its figure, in points (R and gnuplot leave plenty).
MAX_CAPTION_GAP = 120.0
#: Widest whitespace between two parts of one figure.
MAX_INNER_GAP = 36.0
#: Share of the page height at the top and bottom that holds running heads and page numbers.
_FURNITURE_BAND = 0.06
#: Graphics covering more of the page than this are frames or backgrounds, not figures.
_BACKGROUND_SHARE = 0.8
#: A form XObject covering more of the page than this is a wrapper around the page: look inside.
_WRAPPER_SHARE = 0.5
#: Thinner than this (points) a path is a rule or a tick, not a shape.
_RULE_THICKNESS = 2.0
#: A line of text at least this share of the figure (or caption) width is body text.
_BODY_LINE_SHARE = 0.6
#: Boxes-and-rules regions whose area is at least this share text are tables.
_TABLE_TEXT_SHARE = 0.12
#: Rules at least this long (points) can be the rules of a table.
_MIN_RULE_WIDTH = 100.0
# Paths looked at when searching a page for tables.
_MAX_TABLE_PATHS = 3000
#: Before the drawing starts, a line this wide (points, or the caption's width if wider) is body
#: text: the figure is not on this side.
_BODY_LINE_MIN = 200.0
#: Body text has at least this many visible characters per point of line width.
_BODY_DENSITY = 0.12
#: Lines narrower than this (points) are labels whatever they say.
_LABEL_WIDTH = 60.0
#: Text pieces of one line closer than this (points) are one run of text.
_WORD_GAP = 4.0
#: Smallest figure side, in points.
_MIN_SIDE = 24.0
#: Margin added around a found region before rendering, in points.
PADDING = 4.0
# Objects examined per page; a page of a hundred thousand paths is a map, not worth the time.
_MAX_OBJECTS = 20000
_MAX_FORM_DEPTH = 4
_SHAPE_CHECKS = 400

_SUBCAPTION = re.compile(r"^\s*\(?[a-z]\)\s")
_TABLE_CAPTION = re.compile(r"^\s*(?i:tab(?:le)?)\.?\s*(?:\d+(?:\.\d+)*|[IVXLC]+)\b")


@dataclass
class FigureRegion:
    """A figure found on a page: its box in page space and the caption that names it.

    ``image_boxes`` are the pictures (raster images) the region contains, so the reader can drop
    them as separate images: the rendered region shows them already; ``drawn`` counts the other
    graphics (paths, shadings, forms): a region with pictures and nothing drawn is a plain
    picture, best kept as its own pixels.
    """

    box: Box
    caption: Caption
    image_boxes: list[Box] = field(default_factory=list)
    drawn: int = 0


@dataclass
class _Element:
    box: Box
    kind: str  # "text", "stop" (another caption), "graphic", "image"
    obj: Any = None
    matrix: Any = None
    # Whether a line of text reads like body text (see _reads_as_body); labels do not. A
    # sub-caption ("(a) ...") reads like prose but belongs to its figure.
    prose: bool = False
    subcaption: bool = False
    plain: bool | None = None  # a path of straight axis-parallel lines only; computed on need


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _overlap_x(a: Box, b: Box, margin: float = 0.0) -> bool:
    return a[0] < b[2] + margin and b[0] < a[2] + margin


def _overlap_y(a: Box, b: Box, margin: float = 0.0) -> bool:
    return a[1] < b[3] + margin and b[1] < a[3] + margin


def _inside(inner: Box, outer: Box, tolerance: float = 2.0) -> bool:
    return (
        inner[0] >= outer[0] - tolerance
        and inner[1] >= outer[1] - tolerance
        and inner[2] <= outer[2] + tolerance
        and inner[3] <= outer[3] + tolerance
    )


def _is_unfilled(obj: Any) -> bool:
    """Stroked only, or filled white: how table cells are drawn (a mosaic plot's tiles and a
    diagram's boxes are coloured)."""
    fill = ctypes.c_int()
    stroke = ctypes.c_int()
    if not pdfium_c.FPDFPath_GetDrawMode(obj, ctypes.byref(fill), ctypes.byref(stroke)):
        return False
    if fill.value == pdfium_c.FPDF_FILLMODE_NONE:
        return True
    r, g, b, a = (ctypes.c_uint() for _ in range(4))
    if not pdfium_c.FPDFPageObj_GetFillColor(
        obj, ctypes.byref(r), ctypes.byref(g), ctypes.byref(b), ctypes.byref(a)
    ):
        return False
    return min(r.value, g.value, b.value) >= 245 or a.value == 0


def _draws_something(obj: Any) -> bool:
    fill = ctypes.c_int()
    stroke = ctypes.c_int()
    if not pdfium_c.FPDFPath_GetDrawMode(obj, ctypes.byref(fill), ctypes.byref(stroke)):
        return True
    return fill.value != pdfium_c.FPDF_FILLMODE_NONE or bool(stroke.value)


def _is_plain(obj: Any) -> bool:
    """Whether a path is only straight axis-parallel lines (a rule, a box, a table border)."""
    segments = pdfium_c.FPDFPath_CountSegments(obj)
    if segments <= 0 or segments > 12:
        return segments <= 0
    x = ctypes.c_float()
    y = ctypes.c_float()
    previous: tuple[float, float] | None = None
    for index in range(segments):
        segment = pdfium_c.FPDFPath_GetPathSegment(obj, index)
        if pdfium_c.FPDFPathSegment_GetType(segment) == pdfium_c.FPDF_SEGMENT_BEZIERTO:
            return False
        if not pdfium_c.FPDFPathSegment_GetPoint(segment, ctypes.byref(x), ctypes.byref(y)):
            return False
        point = (x.value, y.value)
        kind = pdfium_c.FPDFPathSegment_GetType(segment)
        diagonal = (
            previous is not None
            and abs(point[0] - previous[0]) > 0.5
            and abs(point[1] - previous[1]) > 0.5
        )
        if kind == pdfium_c.FPDF_SEGMENT_LINETO and diagonal:
            return False
        previous = point
    return True


def _transformed(box: Box, matrix: Any) -> Box:
    if matrix is None:
        return box
    left, bottom, right, top = matrix.on_rect(*box)
    return (left, bottom, right, top)


def _drawn_objects(page: Any, form: Any, level: int) -> Iterator[Any]:
    """The page's (or a form's) objects other than text, one level deep. Text objects, most of
    a page, are skipped before any Python wrapper is made for them."""
    if form is None:
        count, get, parent = pdfium_c.FPDFPage_CountObjects, pdfium_c.FPDFPage_GetObject, page
    else:
        count, get, parent = pdfium_c.FPDFFormObj_CountObjects, pdfium_c.FPDFFormObj_GetObject, form
    for index in range(max(0, count(parent))):
        raw = get(parent, index)
        if not raw or pdfium_c.FPDFPageObj_GetType(raw) == pdfium_c.FPDF_PAGEOBJ_TEXT:
            continue
        yield pdfium.PdfObject(raw, page=page, pdf=page.pdf, container=form, level=level)


def _graphics(page: Any, page_box: Box) -> Iterator[_Element]:
    """Paths, pictures and form XObjects of the page, wrappers opened, in page space."""
    page_area = _area(page_box)
    count = 0

    def walk(form: Any, matrix: Any, depth: int) -> Iterator[_Element]:
        nonlocal count
        for obj in _drawn_objects(page, form, depth):
            count += 1
            if count > _MAX_OBJECTS:
                return
            kind = obj.type
            if kind == pdfium_c.FPDF_PAGEOBJ_TEXT:
                continue
            try:
                box = _transformed(obj.get_bounds(), matrix)
            except pdfium.PdfiumError:
                continue
            if kind == pdfium_c.FPDF_PAGEOBJ_FORM:
                if _area(box) > _WRAPPER_SHARE * page_area and depth < _MAX_FORM_DEPTH:
                    inner = obj.get_matrix()
                    combined = inner if matrix is None else inner.multiply(matrix)
                    yield from walk(obj, combined, depth + 1)
                else:
                    yield _Element(box, "graphic", obj, matrix)
            elif kind == pdfium_c.FPDF_PAGEOBJ_IMAGE:
                yield _Element(box, "image", obj, matrix)
            elif kind == pdfium_c.FPDF_PAGEOBJ_PATH:
                if _draws_something(obj):
                    yield _Element(box, "graphic", obj, matrix)
            elif kind == pdfium_c.FPDF_PAGEOBJ_SHADING:
                yield _Element(box, "graphic", obj, matrix)

    yield from walk(None, None, 0)


def page_graphics(page: Any, page_box: Box) -> Iterator[_Element]:
    """Paths, pictures, shadings and form XObjects of the page in page space (wrappers around
    the whole page opened); each has ``box``, ``kind`` ("graphic" or "image") and ``obj``."""
    return _graphics(page, page_box)


def furniture(element: _Element, page_box: Box) -> bool:
    """Whether a graphic is page furniture: in the running-head or page-number bands, or a frame
    or background covering most of the page."""
    return _is_furniture(element, page_box)


def unfilled_path(element: _Element) -> bool:
    """Whether a path is stroked only or filled white (a cell box, not a bar or a tile)."""
    return _is_unfilled(element.obj)


def plain_path(element: _Element) -> bool:
    """Whether a graphic is a path of straight axis-parallel lines only (rules and boxes)."""
    return _ruled(element)


def _is_furniture(element: _Element, page_box: Box) -> bool:
    _left, bottom, _right, top = page_box
    height = top - bottom
    box = element.box
    if box[1] >= top - _FURNITURE_BAND * height or box[3] <= bottom + _FURNITURE_BAND * height:
        return True
    if element.kind != "text" and _area(box) > _BACKGROUND_SHARE * _area(page_box):
        return True
    return _area(box) <= 0 and element.kind == "text"


def _reads_as_body(text: str, width: float) -> bool:
    """Dense words, few of them numbers: body text. A row of tick labels is sparse or numeric."""
    tokens = text.split()
    if len(tokens) < 4:
        return False
    visible = sum(len(token) for token in tokens)
    numeric = sum(1 for token in tokens if any(ch.isdigit() for ch in token))
    return visible / width >= _BODY_DENSITY and numeric / len(tokens) < 0.3


def _line_offsets(lines: Sequence[str]) -> list[int]:
    """Where each line starts in PDFium's text, counted in UTF-16 units as PDFium counts chars."""
    offsets = []
    position = 0
    for line in lines:
        offsets.append(position)
        position += len(line.encode("utf-16-le", "surrogatepass")) // 2 + 2  # "\r\n"
    return offsets


def _text_boxes(textpage: Any, start: int, count: int) -> list[Box]:
    boxes = []
    for index in range(textpage.count_rects(start, count)):
        boxes.append(tuple(textpage.get_rect(index)))
    return boxes


def _line_boxes(boxes: list[Box]) -> list[Box]:
    """Text rectangles joined into runs along a line: PDFium splits a line at every font change
    (an italic word, a subscript), and a fragment must not pass for a label."""
    ordered = sorted(boxes, key=lambda box: (-round((box[1] + box[3]) / 2), box[0]))
    runs: list[Box] = []
    for box in ordered:
        if runs:
            last = runs[-1]
            height = min(last[3] - last[1], box[3] - box[1])
            same_line = _overlap_y(last, box) and (
                min(last[3], box[3]) - max(last[1], box[1]) >= 0.5 * height
            )
            if same_line and -1.0 <= box[0] - last[2] <= _WORD_GAP:
                runs[-1] = _union(last, box)
                continue
        runs.append(box)
    return runs


@dataclass
class CaptionAnchor:
    """A figure caption found in PDFium's text, with the box of its lines in page space."""

    caption: Caption
    box: Box
    line_boxes: list[Box]


def caption_anchors(textpage: Any) -> list[CaptionAnchor]:
    """The figure captions of a page, in reading order, with where they are."""
    return _caption_lines(textpage)[0]


def _caption_lines(textpage: Any) -> tuple[list[CaptionAnchor], list[Box]]:
    """Figure captions with their boxes, and the line boxes of table captions (walls)."""
    raw = textpage.get_text_range()
    lines = raw.split("\r\n")
    offsets = _line_offsets(lines)
    cleaned = [clean_text(line) for line in lines]
    anchors: list[CaptionAnchor] = []
    walls: list[Box] = []
    for caption in find_captions("\n".join(cleaned)):
        first = caption.line
        last = first
        # The caption's wrapped lines are the ones whose text it took in.
        while (
            last + 1 < len(cleaned)
            and cleaned[last + 1].strip()
            and (cleaned[last + 1].strip() in caption.text)
        ):
            last += 1
        line_boxes: list[Box] = []
        for number in range(first, last + 1):
            line_boxes.extend(_text_boxes(textpage, offsets[number], len(lines[number])))
        if not line_boxes:
            continue
        box = line_boxes[0]
        for other in line_boxes[1:]:
            box = _union(box, other)
        anchors.append(CaptionAnchor(caption, box, line_boxes))
    for number, line in enumerate(cleaned):
        if _TABLE_CAPTION.match(line):
            walls.extend(_text_boxes(textpage, offsets[number], len(lines[number])))
    return anchors, walls


@dataclass
class _Walk:
    region: Box
    gap: float
    members: list[_Element]


def _walk(anchor: CaptionAnchor, elements: list[_Element], upward: bool) -> _Walk | None:
    """Gather the figure on one side of a caption; ``None`` when nothing graphic is there."""
    cap = anchor.box
    if upward:
        side = [e for e in elements if e.box[1] >= cap[3] - 2.0]
        side.sort(key=lambda e: e.box[1])
    else:
        side = [e for e in elements if e.box[3] <= cap[1] + 2.0]
        side.sort(key=lambda e: -e.box[3])

    def distance(box: Box, edge: float) -> float:
        return box[1] - edge if upward else edge - box[3]

    region: Box | None = None
    members: list[_Element] = []
    pending: list[_Element] = []
    edge = cap[3] if upward else cap[1]
    first_gap = 0.0
    graphics = [e for e in side if e.kind in ("graphic", "image")]
    for element in side:
        span = _union(region, cap) if region is not None else cap
        if not _overlap_x(element.box, span):
            continue
        gap = distance(element.box, edge)
        if region is None:
            verdict = _before_drawing(element, gap, cap)
            if verdict == "grid":
                # A grid right at a "Figure" caption: a figure drawn as a grid of boxes.
                return _Walk(element.box, gap, list(element.obj))
            if verdict == "nothing":
                return None
            if verdict == "label":
                pending.append(element)
                edge = element.box[3] if upward else element.box[1]
                continue
            region = element.box
            first_gap = distance(element.box, cap[3] if upward else cap[1])
            members.append(element)
            edge = element.box[3] if upward else element.box[1]
            continue
        if gap > MAX_INNER_GAP or element.kind == "stop":
            break
        if element.kind == "text" and _is_body_beside(element, region, cap, graphics):
            break
        region = _union(region, element.box)
        members.append(element)
        edge = max(edge, element.box[3]) if upward else min(edge, element.box[1])
    if region is None:
        return None
    # Labels between the caption and the drawing (sub-captions, an x-axis title) belong to it.
    for element in pending:
        if _overlap_x(element.box, region):
            region = _union(region, element.box)
            members.append(element)
    return _Walk(region, first_gap, members)


def _before_drawing(element: _Element, gap: float, cap: Box) -> str:
    """What an element met before any graphic says: "nothing" (too far, another caption, body
    text: no figure on this side), "grid" (a table-like grid at the caption), "label" (short text
    kept in case a drawing follows) or "drawing" (the figure starts here)."""
    if gap > MAX_CAPTION_GAP:
        return "nothing"
    if element.kind == "stop":
        grid = isinstance(element.obj, list) and gap <= MAX_INNER_GAP
        return "grid" if grid else "nothing"
    if element.kind == "text":
        width = element.box[2] - element.box[0]
        wide = width >= max(_BODY_LINE_MIN, _BODY_LINE_SHARE * (cap[2] - cap[0]))
        return "nothing" if wide and element.prose and not element.subcaption else "label"
    return "drawing"


def _is_body_beside(element: _Element, region: Box, cap: Box, graphics: list[_Element]) -> bool:
    """A wide line of prose with no graphic level with it: body text, the figure ends before."""
    width = max(region[2] - region[0], cap[2] - cap[0])
    wide = element.box[2] - element.box[0] >= _BODY_LINE_SHARE * width and element.prose
    level = (g.box for g in graphics if g is not element and _overlap_x(g.box, element.box))
    return wide and not any(_overlap_y(box, element.box, 1.0) for box in level)


def _add_side_labels(walk: _Walk, texts: list[_Element]) -> None:
    """Tick labels and axis titles just left or right of the drawing."""
    region = walk.region
    for element in texts:
        box = element.box
        if element in walk.members or box[1] < region[1] - 1 or box[3] > region[3] + 1:
            continue
        near = box[2] >= region[0] - 24.0 and box[0] <= region[2] + 24.0
        if near and box[2] - box[0] <= 60.0:
            region = _union(region, box)
            walk.members.append(element)
    walk.region = region


def _ruled(element: _Element) -> bool:
    """Whether an element is a plain path: rules and boxes, nothing curved or slanted."""
    if element.plain is None:
        obj = element.obj
        element.plain = (
            element.kind == "graphic"
            and obj is not None
            and obj.type == pdfium_c.FPDF_PAGEOBJ_PATH
            and _is_plain(obj)
        )
    return element.plain


#: How far apart (in points) two cells may be and still touch.
_TOUCH_MARGIN = 1.5


def _touching(a: Box, b: Box) -> bool:
    """Boxes that share an edge (or overlap a little) without one holding the other."""
    if not (_overlap_x(a, b, _TOUCH_MARGIN) and _overlap_y(a, b, _TOUCH_MARGIN)):
        return False
    return _area(_intersection(a, b)) < 0.2 * min(_area(a), _area(b))


def _find_tables(elements: list[_Element]) -> list[Box]:
    """Tables on the page: grids of touching cells that hold text, and stacks of full-width
    rules with dense text between them and nothing drawn but rules."""
    texts = [e for e in elements if e.kind == "text"]
    plain = [e for e in elements if e.kind == "graphic"][:_MAX_TABLE_PATHS]
    plain = [e for e in plain if _ruled(e)]
    tables: list[Box] = []
    cells = [
        e.box
        for e in plain
        if min(e.box[2] - e.box[0], e.box[3] - e.box[1]) > _RULE_THICKNESS
        and _is_unfilled(e.obj)
        and any(_inside(t.box, e.box) for t in texts)
    ][:_SHAPE_CHECKS]
    for group in connected_groups(cells, _touching, _TOUCH_MARGIN):
        if len(group) >= 4:
            box = group[0]
            for other in group[1:]:
                box = _union(box, other)
            if not _holds_drawing(elements, box):
                tables.append(box)
    stacks: dict[tuple[int, int], list[Box]] = {}
    for e in plain:
        box = e.box
        if box[3] - box[1] <= _RULE_THICKNESS and box[2] - box[0] >= _MIN_RULE_WIDTH:
            stacks.setdefault((round(box[0] / 3), round(box[2] / 3)), []).append(box)
    for rules in stacks.values():
        if len(rules) < 2:
            continue
        box = rules[0]
        for other in rules[1:]:
            box = _union(box, other)
        words = [e for e in elements if e.kind == "text" and _inside(e.box, box)]
        dense = sum(_area(e.box) for e in words) >= _TABLE_TEXT_SHARE * _area(box)
        if len(words) >= 2 and dense and not _holds_drawing(elements, box):
            tables.append(box)
    return tables


def _holds_drawing(elements: list[_Element], box: Box) -> bool:
    """Whether anything inside ``box`` is drawn rather than ruled: a curve, a picture, a coloured
    shape narrower than the box (a bar, a tile; a shaded table row spans the width)."""
    width = box[2] - box[0]
    for e in elements:
        if e.kind not in ("graphic", "image") or not _inside(e.box, box):
            continue
        if not _ruled(e):
            return True
        shape = min(e.box[2] - e.box[0], e.box[3] - e.box[1]) > _RULE_THICKNESS
        if shape and e.box[2] - e.box[0] < 0.8 * width and not _is_unfilled(e.obj):
            return True
    return False


def _is_figure(walk: _Walk) -> bool:
    box = walk.region
    if box[2] - box[0] < _MIN_SIDE or box[3] - box[1] < _MIN_SIDE:
        return False
    # Tables were walled off before the walk: what a "Figure" caption names here is a figure,
    # even when it is drawn as boxes and text only (a block diagram, a layout sketch).
    return any(e.kind in ("graphic", "image") for e in walk.members)


def find_figure_regions(page: Any, textpage: Any | None = None) -> list[FigureRegion]:
    """Figures of a PDFium page that have a "Figure N" caption, each with its region.

    Each caption is paired with at most one region and each region with one caption; when a
    caption has graphics on both sides, the nearer side wins (the side above by a margin, the
    usual layout).
    """
    textpage = textpage or page.get_textpage()
    anchors, walls = _caption_lines(textpage)
    if not anchors:
        return []
    page_box: Box = tuple(page.get_cropbox())  # type: ignore[assignment]
    caption_boxes = [box for anchor in anchors for box in anchor.line_boxes]
    elements: list[_Element] = []
    for box in _line_boxes(_text_boxes(textpage, 0, -1)):
        is_caption = any(_inside(box, wall, 1.0) for wall in (*caption_boxes, *walls))
        element = _Element(box, "stop" if is_caption else "text")
        width = box[2] - box[0]
        if not is_caption and width >= _LABEL_WIDTH:
            line = textpage.get_text_bounded(*box)
            element.prose = _reads_as_body(line, width)
            element.subcaption = _SUBCAPTION.match(line) is not None
        elements.append(element)
    elements.extend(_graphics(page, page_box))
    elements = [e for e in elements if not _is_furniture(e, page_box)]
    # A table is a wall: no figure grows into it.
    tables = _find_tables(elements)
    if tables:
        walls = [
            _Element(box, "stop", [e for e in elements if _inside(e.box, box)]) for box in tables
        ]
        elements = [e for e in elements if not any(_inside(e.box, box) for box in tables)]
        elements.extend(walls)
    texts = [e for e in elements if e.kind == "text"]
    candidates: list[tuple[float, int, _Walk]] = []
    for index, anchor in enumerate(anchors):
        for upward, weight in ((True, 1.0), (False, 1.5)):
            walk = _walk(anchor, elements, upward)
            if walk is None:
                continue
            _add_side_labels(walk, texts)
            if _is_figure(walk):
                candidates.append((walk.gap * weight, index, walk))
    regions: list[FigureRegion] = []
    taken: set[int] = set()
    for _score, index, walk in sorted(candidates, key=lambda item: (item[0], item[1])):
        if index in taken:
            continue
        overlapping = any(
            _area(_intersection(walk.region, other.box)) > 0.3 * _area(walk.region)
            for other in regions
        )
        if overlapping:
            continue
        taken.add(index)
        padded = (
            max(page_box[0], walk.region[0] - PADDING),
            max(page_box[1], walk.region[1] - PADDING),
            min(page_box[2], walk.region[2] + PADDING),
            min(page_box[3], walk.region[3] + PADDING),
        )
        images = [e.box for e in walk.members if e.kind == "image"]
        drawn = sum(1 for e in walk.members if e.kind == "graphic")
        regions.append(FigureRegion(padded, anchors[index].caption, images, drawn))
    regions.sort(key=lambda region: -region.box[3])
    return regions


def _intersection(a: Box, b: Box) -> Box:
    return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
