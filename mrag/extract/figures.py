"""Figures: which extracted pictures to keep, and which text explains each one.

Three jobs live here because every format reader needs them:

* recognising figure captions ("Figure 3: ...", "Fig. 2.", "FIGURE 1 —") in page text and pairing
  them with the pictures on that page;
* merging identical pictures (a logo on every page becomes one image listing all its pages);
* dropping pictures that carry no meaning for retrieval (icons, rules, spacer pixels) and capping
  how many one document may contribute.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mrag.extract.document import ExtractedImage

#: Longest context kept for an image; the text tower reads a few hundred tokens at most anyway.
MAX_CONTEXT_CHARS = 500
#: How much page text stands in for a caption when there is none.
NEARBY_CHARS = 300

# A label, a number (or roman numeral), then a separator or the capitalised start of the caption.
# Requiring one of those keeps running text such as "Figure 3 shows ..." from passing as a caption.
# The number is taken whole ("Figure 2.3 shows" is running text, not "Figure 2" and ".3 shows").
_CAPTION_RE = re.compile(
    r"^\s*(?P<label>(?i:fig(?:ure)?)\.?\s*(?:\d+(?:\.\d+)*[a-z]?|[IVXLC]+))(?!\.?\d)"
    r"(?P<rest>\s*(?:[:.|—–-]|$).*|\s+[A-Z(\"'“].*)$"
)
_CONTEXT_RANK = {"caption": 0, "ocr": 1, "nearby": 2, "alt": 3, "filename": 4}


@dataclass(frozen=True)
class ImageFilter:
    """Rules for dropping pictures that would only add noise to the index.

    ``min_side`` drops icons and bullets, ``max_aspect`` drops rules and borders, ``max_images``
    caps what one document contributes (the first ones in reading order are kept).
    """

    min_side: int = 64
    max_aspect: float = 20.0
    max_images: int = 500


@dataclass(frozen=True)
class Caption:
    """A caption found in page text: its label ("Figure 3") and its full text."""

    label: str
    text: str
    line: int


def is_caption_line(line: str) -> bool:
    """True when ``line`` opens a figure caption (tables and running text do not count)."""
    return _CAPTION_RE.match(line) is not None


def find_captions(text: str, *, max_extra_lines: int = 3) -> list[Caption]:
    """Figure captions of one page, in reading order.

    A caption often wraps, so the lines after the label line are added until one ends a sentence,
    another caption starts, a blank line comes, or :data:`NEARBY_CHARS` is reached.
    """
    lines = text.splitlines()
    captions: list[Caption] = []
    for index, line in enumerate(lines):
        match = _CAPTION_RE.match(line)
        if match is None:
            continue
        bare = not match["rest"].strip(" .:|—–-")
        if (
            bare
            and index
            and lines[index - 1].strip()
            and not lines[index - 1].rstrip().endswith((".", "!", "?", ":"))
        ):
            continue  # "... is shown in" / "Figure 1." / "The next paragraph": running text
        parts = [line.strip()]
        for extra in lines[index + 1 : index + 1 + max_extra_lines]:
            joined = " ".join(parts)
            if not extra.strip() or is_caption_line(extra) or len(joined) >= NEARBY_CHARS:
                break
            ends_sentence = joined.rstrip().endswith((".", "!", "?"))
            if ends_sentence and len(parts[0]) > len(match["label"]) + 2:
                break
            parts.append(extra.strip())
        label = re.sub(r"\s+", " ", match["label"]).strip()
        captions.append(Caption(label=label, text=trim_context(" ".join(parts)), line=index))
    return captions


def trim_context(text: str, limit: int = MAX_CONTEXT_CHARS) -> str:
    """Collapse whitespace and cut ``text`` to ``limit`` characters at a word boundary."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit + 1)
    return text[: cut if cut > limit // 2 else limit].rstrip()


def humanize_name(stem: str) -> str:
    """Turn a file or object name into words: "site_plan-2024v2" -> "site plan 2024v2"."""
    words = re.sub(r"[_\-.+~]+", " ", stem)
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", words)
    return " ".join(words.split()) or stem


def pair_captions(
    image_boxes: Sequence[tuple[float, float] | None],
    caption_ys: Sequence[float | None],
) -> list[int | None]:
    """For each image, the index of its caption (or ``None``).

    ``image_boxes`` are (bottom, top) of each image in page space and ``caption_ys`` the baseline of
    each caption, both ``None`` when unknown. With every position known, the closest pairs are
    taken first (a caption below its figure is preferred, as that is the usual layout); otherwise
    images and captions are paired in reading order.
    """
    if not image_boxes or not caption_ys:
        return [None] * len(image_boxes)
    known = all(box is not None for box in image_boxes) and all(y is not None for y in caption_ys)
    if not known:
        return [index if index < len(caption_ys) else None for index in range(len(image_boxes))]
    candidates: list[tuple[float, int, int]] = []
    for image_index, box in enumerate(image_boxes):
        assert box is not None
        bottom, top = min(box), max(box)
        for caption_index, y in enumerate(caption_ys):
            assert y is not None
            if y <= bottom:
                distance = bottom - y
            elif y >= top:
                distance = (y - top) * 1.5
            else:
                distance = 0.0
            candidates.append((distance, image_index, caption_index))
    result: list[int | None] = [None] * len(image_boxes)
    used: set[int] = set()
    for _distance, image_index, caption_index in sorted(candidates):
        if result[image_index] is None and caption_index not in used:
            result[image_index] = caption_index
            used.add(caption_index)
    return result


def merge_duplicates(images: Iterable[ExtractedImage]) -> tuple[list[ExtractedImage], int]:
    """Merge pictures with the same pixels into one, listing every page; returns (kept, merged).

    The merged image keeps the most telling context among its copies (caption over nearby text
    over alt text over a file name).
    """
    by_hash: dict[str, ExtractedImage] = {}
    merged = 0
    for image in images:
        first = by_hash.get(image.content_hash)
        if first is None:
            by_hash[image.content_hash] = image
            continue
        merged += 1
        for page in image.pages:
            if page not in first.pages:
                first.pages.append(page)
        if _CONTEXT_RANK.get(image.context_kind, 9) < _CONTEXT_RANK.get(first.context_kind, 9):
            first.context, first.context_kind = image.context, image.context_kind
        if first.alt_text is None and image.alt_text is not None:
            first.alt_text = image.alt_text
    for image in by_hash.values():
        if all(page is not None for page in image.pages):
            image.pages.sort(key=lambda page: page or 0)
    return list(by_hash.values()), merged


def apply_filter(
    images: Iterable[ExtractedImage], image_filter: ImageFilter | None
) -> tuple[list[ExtractedImage], Counter[str]]:
    """Dedupe ``images`` and drop the ones ``image_filter`` rejects.

    Returns the kept images in their original order and a Counter of why the others went
    ("duplicate", "too_small", "extreme_aspect", "too_many"). With ``image_filter=None`` only
    duplicates are merged.
    """
    reasons: Counter[str] = Counter()
    unique, merged = merge_duplicates(images)
    if merged:
        reasons["duplicate"] = merged
    if image_filter is None:
        return unique, reasons
    kept: list[ExtractedImage] = []
    for image in unique:
        width, height = image.image.size
        # A page picture stands for a whole page that showed something: it is never an icon or a
        # rule, whatever its shape.
        shaped = image.element != "page"
        if shaped and min(width, height) < image_filter.min_side:
            reasons["too_small"] += 1
        elif shaped and max(width, height) / max(1, min(width, height)) > image_filter.max_aspect:
            reasons["extreme_aspect"] += 1
        elif len(kept) >= image_filter.max_images:
            reasons["too_many"] += 1
        else:
            kept.append(image)
    return kept, reasons
