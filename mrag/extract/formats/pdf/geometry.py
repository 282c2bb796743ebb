"""Groups of page-space boxes that touch, shared by the table finder and the figure finders."""

from __future__ import annotations

from collections.abc import Callable

from mrag.extract.formats.pdf.render import Box


def connected_groups(
    boxes: list[Box], linked: Callable[[Box, Box], bool], reach: float
) -> list[list[Box]]:
    """The connected groups of ``boxes`` under ``linked``, each in the input order, groups in
    the order of their first box.

    ``reach`` bounds how far right of a box's right edge a linked box may start, so a sweep by
    left edge stops early: pages with thousands of paths stay far from quadratic.
    """
    order = sorted(range(len(boxes)), key=lambda i: boxes[i][0])
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for position, i in enumerate(order):
        for j in order[position + 1 :]:
            if boxes[j][0] > boxes[i][2] + reach:
                break
            if linked(boxes[i], boxes[j]):
                parent[root(i)] = root(j)
    found: dict[int, list[Box]] = {}
    for i, box in enumerate(boxes):
        found.setdefault(root(i), []).append(box)
    return list(found.values())
