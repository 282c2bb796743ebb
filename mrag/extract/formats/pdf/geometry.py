"""Page-space boxes: the box around several, and groups of boxes that touch; shared by the table
finder and the figure finders."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mrag.extract.formats.pdf.render import Box


def union(boxes: Sequence[Box]) -> Box:
    """The smallest box around ``boxes``."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def connected_groups(
    boxes: list[Box], linked: Callable[[Box, Box], bool], reach: float
) -> list[list[Box]]:
    """The connected groups of ``boxes`` under ``linked``, each in the input order, groups in
    the order of their first box.

    ``linked`` never links two boxes further apart than ``reach``, across or up and down. That
    lets a sweep by left edge stop early and pass over boxes too far above or below without
    asking ``linked``, and a pair already in one group is not asked either: a page with
    thousands of rules (a long ruled table, a map) stays far from quadratic in calls.
    """
    order = sorted(range(len(boxes)), key=lambda i: boxes[i][0])
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    count = len(order)
    for position, i in enumerate(order):
        box = boxes[i]
        limit, low, high = box[2] + reach, box[1] - reach, box[3] + reach
        for later in range(position + 1, count):
            j = order[later]
            other = boxes[j]
            if other[0] > limit:
                break
            if other[1] > high or other[3] < low:
                continue
            if root(i) != root(j) and linked(box, other):
                parent[root(i)] = root(j)
    found: dict[int, list[Box]] = {}
    for i, box in enumerate(boxes):
        found.setdefault(root(i), []).append(box)
    return list(found.values())
