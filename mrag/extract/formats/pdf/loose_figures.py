"""Figures without a caption: clusters of drawn objects or pictures covering a good share of a page.

A drawing with no "Figure N" line (a diagram in a manual, a logo block, a chart in a report) is
still something a reader sees. The page's graphics (page furniture left out: running heads and
page numbers in the top and bottom bands, frames and backgrounds covering most of the page) are
joined into clusters of objects closer than :data:`_JOIN_GAP`; a cluster covering at least
:data:`MIN_PAGE_SHARE` of the page, holding something only drawings hold (a picture, a shading, a
curve or a slanted line: a grid of rules and boxes is a table or a form), is a figure, unless it
is a table, a captioned figure already found, or one picture already stored on its own. Its
context is the text nearest to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mrag.extract.formats.pdf.geometry import union
from mrag.extract.formats.pdf.render import Box
from mrag.extract.formats.pdf.vector_figures import PADDING, furniture, page_graphics, plain_path

#: A cluster covering at least this share of the page is a figure.
MIN_PAGE_SHARE = 0.08
#: Graphics closer than this (points) belong to one cluster.
_JOIN_GAP = 12.0
#: Thinner than this (points) a graphic is a rule, not a drawing.
_RULE = 2.0
#: Share of a cluster covered by something already stored (a table, a figure, one picture) above
#: which the cluster is that thing.
_TAKEN_SHARE = 0.5
#: Share of a cluster that drawings (not rules and boxes) must cover for it to be a figure.
_DRAWN_SHARE = 0.1
# Graphics examined per page: a page of a hundred thousand paths is a map, worth one picture at
# most, and the page rendering covers it.
_MAX_GRAPHICS = 3000


@dataclass
class LooseFigure:
    """A figure found without a caption: its box in page space, padded for rendering."""

    box: Box


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _near(a: Box, b: Box) -> bool:
    return (
        a[0] <= b[2] + _JOIN_GAP
        and b[0] <= a[2] + _JOIN_GAP
        and a[1] <= b[3] + _JOIN_GAP
        and b[1] <= a[3] + _JOIN_GAP
    )


def _clusters(boxes: list[Box]) -> list[list[int]]:
    """Indices of boxes joined by nearness, grown until no cluster touches another."""
    clusters: list[tuple[Box, list[int]]] = []
    for index in sorted(range(len(boxes)), key=lambda i: (boxes[i][0], boxes[i][1])):
        box, members = boxes[index], [index]
        merged = True
        while merged:
            merged = False
            for position, (other, other_members) in enumerate(clusters):
                if _near(box, other):
                    box = union([box, other])
                    members = members + other_members
                    del clusters[position]
                    merged = True
                    break
        clusters.append((box, members))
    return [members for _box, members in clusters]


def _within(inner: Box, outer: Box) -> bool:
    return (
        inner[0] >= outer[0] - 2
        and inner[1] >= outer[1] - 2
        and inner[2] <= outer[2] + 2
        and inner[3] <= outer[3] + 2
    )


def _covered(box: Box, taken: list[Box]) -> float:
    inside = 0.0
    for other in taken:
        width = min(box[2], other[2]) - max(box[0], other[0])
        height = min(box[3], other[3]) - max(box[1], other[1])
        if width > 0 and height > 0:
            inside += width * height
    return inside / _area(box) if _area(box) else 1.0


def _drawn(element: Any) -> bool:
    """Something only a drawing holds: a picture, a shading, a curve or a slanted line."""
    box = element.box
    if min(box[2] - box[0], box[3] - box[1]) <= _RULE:
        return False
    return element.kind == "image" or not plain_path(element)


def find_loose_figures(
    page: Any, taken: list[Box], graphics: list[Any] | None = None
) -> list[LooseFigure]:
    """Figures of the page that no caption names, outside the ``taken`` boxes (tables, captioned
    figures). ``graphics`` are the page's graphics from :func:`page_graphics`, when the caller
    has them."""
    page_box: Box = tuple(page.get_cropbox())  # type: ignore[assignment]
    if graphics is None:
        graphics = list(page_graphics(page, page_box))
    if len(graphics) > _MAX_GRAPHICS:
        return []
    elements = []
    for element in graphics:
        # A table's rules and a captioned figure's parts are spoken for already.
        if not furniture(element, page_box) and not any(_within(element.box, t) for t in taken):
            elements.append(element)
    if not elements:
        return []
    boxes = [element.box for element in elements]
    found = []
    page_area = _area(page_box)
    for members in _clusters(boxes):
        whole = union([boxes[i] for i in members])
        # Only what lies on the page counts (drawings may run off it).
        box = (
            max(whole[0], page_box[0]),
            max(whole[1], page_box[1]),
            min(whole[2], page_box[2]),
            min(whole[3], page_box[3]),
        )
        if _area(box) < MIN_PAGE_SHARE * page_area:
            continue
        drawn = sum(_area(boxes[i]) for i in members if _drawn(elements[i]))
        if drawn < _DRAWN_SHARE * _area(box):
            continue  # rules and boxes (and icons): the grid of a table or a form, not a drawing
        pictures = [elements[i].box for i in members if elements[i].kind == "image"]
        if _covered(box, taken) >= _TAKEN_SHARE or _covered(box, pictures) >= _TAKEN_SHARE:
            continue
        found.append(
            LooseFigure(
                (
                    max(page_box[0], box[0] - PADDING),
                    max(page_box[1], box[1] - PADDING),
                    min(page_box[2], box[2] + PADDING),
                    min(page_box[3], box[3] + PADDING),
                )
            )
        )
    return found


def nearest_text(textpage: Any, box: Box, limit: int) -> str:
    """The text right above and below a region (up to ``limit`` characters), else inside it."""
    for margin in (36.0, 96.0):
        above = textpage.get_text_bounded(box[0], box[3], box[2], box[3] + margin)
        below = textpage.get_text_bounded(box[0], box[1] - margin, box[2], box[1])
        text = " ".join(f"{above} {below}".split())
        if text:
            return text[:limit]
    return " ".join(textpage.get_text_bounded(*box).split())[:limit]
