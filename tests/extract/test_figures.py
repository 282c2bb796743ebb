"""Caption recognition, caption pairing, duplicate merging and image filtering."""

from __future__ import annotations

import pytest
from PIL import Image

from mrag.extract.document import ExtractedImage, image_content_hash
from mrag.extract.figures import (
    ImageFilter,
    apply_filter,
    find_captions,
    humanize_name,
    is_caption_line,
    pair_captions,
    trim_context,
)


@pytest.mark.parametrize(
    "line",
    [
        "Figure 3: Growth of the index",
        "Fig. 2. Sample layout",
        "FIGURE 1 — Overview",
        "Figure 3. Results",
        "Fig 4 The pipeline",
        "Figure 1.2: Nested numbering",
        "Figure 12",
    ],
)
def test_caption_lines(line: str) -> None:
    assert is_caption_line(line)


@pytest.mark.parametrize(
    "line",
    [
        "Figure 3 shows the growth",
        "Figure 2.3 shows the curves",
        "Figure 29): > plot(x)",
        "Table 1: Results",
        "Configure 3: no",
        "See Figure 2: later",
        "",
    ],
)
def test_not_caption_lines(line: str) -> None:
    assert not is_caption_line(line)


def test_find_captions_follows_wrapped_lines() -> None:
    text = "Body text.\nFigure 1: A long caption that\nwraps onto a second line.\nMore body text.\n"
    captions = find_captions(text + "Fig. 2. Short one.\nNext paragraph.")
    assert [caption.label for caption in captions] == ["Figure 1", "Fig. 2"]
    assert captions[0].text == "Figure 1: A long caption that wraps onto a second line."
    assert captions[1].text == "Fig. 2. Short one."


def test_pair_captions_by_position_prefers_caption_below() -> None:
    # Two images stacked; captions listed bottom one first.
    boxes = [(500.0, 700.0), (100.0, 300.0)]
    assert pair_captions(boxes, [80.0, 480.0]) == [1, 0]


def test_pair_captions_in_order_without_positions() -> None:
    assert pair_captions([None, None, None], [None, None]) == [0, 1, None]
    assert pair_captions([(0.0, 1.0)], []) == [None]


def make(color: tuple[int, int, int], size: tuple[int, int], page: int, kind: str = "nearby"):
    picture = Image.new("RGB", size, color)
    return ExtractedImage(
        image=picture,
        pages=[page],
        name=f"p{page}",
        context=f"{kind} {page}",
        context_kind=kind,
        content_hash=image_content_hash(picture),
    )


def test_duplicates_merge_pages_and_keep_best_context() -> None:
    images = [
        make((1, 2, 3), (100, 100), 3),
        make((9, 9, 9), (100, 100), 1),
        make((1, 2, 3), (100, 100), 1, kind="caption"),
        make((1, 2, 3), (100, 100), 2),
    ]
    kept, reasons = apply_filter(images, ImageFilter())
    assert len(kept) == 2
    assert kept[0].pages == [1, 2, 3]
    assert (kept[0].context, kept[0].context_kind) == ("caption 1", "caption")
    assert reasons == {"duplicate": 2}


def test_filter_reasons() -> None:
    images = [
        make((10, 0, 0), (30, 200), 1),  # too small
        make((20, 0, 0), (2100, 100), 1),  # 21:1
        make((30, 0, 0), (100, 100), 1),
        make((40, 0, 0), (100, 100), 1),
        make((50, 0, 0), (100, 100), 1),  # over max_images
    ]
    kept, reasons = apply_filter(images, ImageFilter(min_side=64, max_aspect=20, max_images=2))
    assert [image.image.getpixel((0, 0))[0] for image in kept] == [30, 40]
    assert reasons == {"too_small": 1, "extreme_aspect": 1, "too_many": 1}


def test_no_filter_keeps_everything_but_duplicates() -> None:
    images = [make((1, 1, 1), (2, 2), 1), make((1, 1, 1), (2, 2), 2)]
    kept, reasons = apply_filter(images, None)
    assert len(kept) == 1
    assert kept[0].pages == [1, 2]
    assert reasons == {"duplicate": 1}


def test_content_hash_depends_on_pixels_mode_and_size() -> None:
    base = Image.new("RGB", (4, 4), (1, 2, 3))
    assert image_content_hash(base) == image_content_hash(base.copy())
    assert image_content_hash(base) != image_content_hash(Image.new("RGB", (4, 4), (1, 2, 4)))
    assert image_content_hash(base) != image_content_hash(Image.new("RGB", (2, 8), (1, 2, 3)))


def test_trim_and_humanize() -> None:
    assert trim_context("  a \n b  ") == "a b"
    trimmed = trim_context("word " * 200, limit=50)
    assert len(trimmed) <= 50
    assert trimmed.endswith("word")
    assert humanize_name("site_plan-2024") == "site plan 2024"
    assert humanize_name("siteplanNorthWing") == "siteplan North Wing"
