"""The "Table N" caption of a table region: the nearest caption line above it (or below it, or
beside it in the margin) and the lines under that line which carry the caption on."""

from __future__ import annotations

from dataclasses import dataclass

from mrag.extract.formats.pdf.geometry import union
from mrag.extract.formats.pdf.render import Box
from mrag.extract.formats.pdf.table_text import Word, line_box, overlaps_x, text_lines
from mrag.extract.tables import is_table_caption

#: Furthest a caption beside a table (in the margin) may be from it, in points.
SIDE_CAPTION_GAP = 150.0
#: Furthest a caption may be from its table, in points.
CAPTION_GAP = 40.0
#: A line under a table this much smaller than the caption's is a note of the table.
_NOTE_SCALE = 0.9
#: Lines a caption may run to.
_CAPTION_LINES = 6


@dataclass
class CaptionOption:
    """A caption that may name a table: where it stands from it, how far, its text and box."""

    side: str  # "above", "below" or "beside"
    distance: float
    text: str
    box: Box  # page space


def caption_options(words: list[Word], box: Box) -> dict[str, CaptionOption]:
    """The nearest "Table N" caption above the table in ``box``, below it and beside it."""
    # A line above or below is taken whole (a caption may start left of the table); lines of
    # the margin are built apart: a side caption shares its height with table rows.
    off_level = [w for w in words if not box[1] <= (w.box[1] + w.box[3]) / 2 <= box[3]]
    above_below = [line for line in text_lines(off_level) if overlaps_x(line_box(line), box)]
    beside = [w for w in words if w.box[2] <= box[0] or w.box[0] >= box[2]]
    lines = above_below + text_lines(beside)
    best: dict[str, CaptionOption] = {}
    for index, line in enumerate(lines):
        if not is_table_caption(" ".join(word.text for word in line)):
            continue
        block = caption_block(lines, index)
        first, whole = line_box(line), union([line_box(row) for row in block])
        distance = _caption_distance(first, whole, box, lines)
        if distance is None:
            continue
        side = (
            "beside"
            if not overlaps_x(first, box)
            else "above"
            if whole[1] >= box[3] - 1
            else "below"
        )
        if side not in best or distance < best[side].distance:
            text = " ".join(word.text for row in block for word in row)
            page_box = union([word.page_box for row in block for word in row])
            best[side] = CaptionOption(side, distance, text, page_box)
    return best


def assign_captions(options: list[dict[str, CaptionOption]]) -> list[CaptionOption | None]:
    """A caption for each table of a page, each caption naming one table: the page's captions
    stand either all above their tables or all below (beside where neither is), whichever
    names more tables, the nearer on a tie."""
    best: list[CaptionOption | None] = [None] * len(options)
    best_score = (0, 0.0)
    for side in ("above", "below"):
        chosen: list[CaptionOption | None] = []
        for found in options:
            option = found.get(side) or found.get("beside")
            if option is not None and any(o is not None and o.box == option.box for o in chosen):
                option = None
            chosen.append(option)
        named = [option for option in chosen if option is not None]
        score = (len(named), -sum(option.distance for option in named))
        if score > best_score:
            best, best_score = chosen, score
    return best


def _caption_distance(line: Box, block: Box, box: Box, lines: list[list[Word]]) -> float | None:
    """How far a caption (its first line, its whole block) is from the table, or ``None`` where
    it is not the table's caption."""
    if overlaps_x(line, box):
        if block[1] >= box[3] - 1:
            gap = block[1] - box[3]  # above: from the caption's last line
        elif line[3] <= box[1] + 1:
            # Below, after the table's notes; counts a little further than a caption above.
            gap = _below_notes(box, line, lines) - line[3] + 10
        else:
            return None
        return gap if gap <= CAPTION_GAP else None
    level = line[3] >= box[1] - CAPTION_GAP and line[1] <= box[3] + CAPTION_GAP
    side = box[0] - line[2] if line[2] <= box[0] else line[0] - box[2]
    return side + 20 if level and 0 <= side <= SIDE_CAPTION_GAP else None


def _below_notes(box: Box, caption: Box, lines: list[list[Word]]) -> float:
    """The bottom of the table's notes: lines right under it set smaller than the caption."""
    height = caption[3] - caption[1]
    bottom = box[1]
    boxes = (line_box(line) for line in lines)
    between = sorted(
        (found for found in boxes if caption[3] < found[1] and found[3] < box[1]),
        key=lambda found: -found[3],
    )
    for found in between:
        if bottom - found[3] > CAPTION_GAP / 2 or found[3] - found[1] >= _NOTE_SCALE * height:
            break
        bottom = found[1]
    return bottom


def caption_block(lines: list[list[Word]], first: int) -> list[list[Word]]:
    """The caption line and the lines right under it that carry it on."""
    block = [lines[first]]
    top = line_box(lines[first])
    following = sorted(
        (line for line in lines if line_box(line)[3] < top[1]), key=lambda line: -line_box(line)[3]
    )
    for line in following[: 2 * _CAPTION_LINES]:
        last = union([line_box(row) for row in block])
        current = line_box(line)
        height = top[3] - top[1]
        # A line split in two by raised or lowered symbols (a formula) goes on regardless.
        split = current[3] > last[1] + 0.3 * height
        if not split and (
            last[1] - current[3] > 0.8 * height
            or (abs(current[0] - top[0]) > 2 * height and abs(current[2] - top[2]) > 2 * height)
            or top[3] - current[1] > 1.5 * _CAPTION_LINES * height
        ):
            break
        if is_table_caption(" ".join(w.text for w in line)):
            break
        block.append(line)
    return block
