"""Optical character recognition with Tesseract, for pages that carry no usable text layer.

Tesseract runs as a program (Debian ``tesseract-ocr`` plus a language pack such as
``tesseract-ocr-eng``), driven through ``pytesseract``. Whether it is there is checked once per
process and command (:func:`probe`): with ``enabled = "auto"`` a missing Tesseract turns OCR off
with one notice for the run, while ``enabled = true`` makes it a hard requirement.

Words come back with Tesseract's confidence (0-100); a page's text keeps Tesseract's blocks,
paragraphs and lines, and its confidence is the mean over its words weighted by their length, as
a fraction.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageFilter

#: Words Tesseract is less sure of than this (0-100) are dropped as noise (specks, rules, photos).
MIN_WORD_CONFIDENCE = 30
#: Fewer words than this on a page is not text, whatever the confidence says.
MIN_WORDS = 3
# The background is estimated on a copy whose shorter side is about this many pixels: small
# enough that a 5-pixel maximum filter spans any stroke, large enough to follow a shadow.
_BACKGROUND_SIDE = 96

Enabled = Literal["auto"] | bool


class OcrUnavailable(ValueError):
    """Tesseract, or a language it was asked for, is not installed; the message says which."""


@dataclass(frozen=True)
class OcrSettings:
    """The ``[ocr]`` section of a pipeline.

    ``languages`` are Tesseract language codes ("eng", "deu", "chi_sim"), tried together;
    ``dpi`` is the resolution PDF pages are rendered at for OCR; ``page_timeout_s`` bounds one
    page; ``tesseract`` is the program to run (empty: ``tesseract`` on the ``PATH``).
    """

    enabled: Enabled = "auto"
    languages: tuple[str, ...] = ("eng",)
    dpi: int = 300
    page_timeout_s: float = 60.0
    tesseract: str = ""

    @property
    def command(self) -> str:
        return self.tesseract or "tesseract"


@dataclass(frozen=True)
class OcrText:
    """Text recognised on one picture; ``confidence`` is 0..1, ``words`` counts kept words."""

    text: str
    confidence: float
    words: int


_PROBED: dict[str, tuple[str, ...] | str] = {}


def _installed_languages(command: str) -> tuple[str, ...] | str:
    """The languages ``command`` knows, or why it cannot run (cached per command)."""
    if command not in _PROBED:
        import pytesseract

        module = pytesseract.pytesseract
        module.tesseract_cmd = command
        try:
            # get_languages caches its first answer whatever the command; ask afresh.
            found = tuple(module.get_languages.__wrapped__())
            _PROBED[command] = found if found else f"{command} lists no language data"
        except module.TesseractNotFoundError:
            _PROBED[command] = f"Tesseract not found ({command!r} is not installed or not on PATH)"
        except OSError as exc:
            _PROBED[command] = f"Tesseract cannot run ({command!r}: {exc.strerror or exc})"
    return _PROBED[command]


def probe(settings: OcrSettings) -> str | None:
    """Why OCR with ``settings`` cannot run here, or ``None`` when it can."""
    found = _installed_languages(settings.command)
    if isinstance(found, str):
        return found
    missing = [language for language in settings.languages if language not in found]
    if missing:
        return (
            f"Tesseract has no data for {', '.join(missing)} (installed: {', '.join(found)}); "
            f"install tesseract-ocr-{missing[0].replace('_', '-')}"
        )
    return None


def resolve(settings: OcrSettings) -> tuple[bool, str | None]:
    """Whether to OCR, and the notice to give when ``auto`` finds Tesseract missing.

    Raises :class:`OcrUnavailable` when OCR is required (``enabled = true``) but cannot run.
    """
    if settings.enabled is False:
        return False, None
    problem = probe(settings)
    if problem is None:
        return True, None
    if settings.enabled is True:
        raise OcrUnavailable(f"[ocr] enabled = true, but {problem}")
    return False, problem


_THREADS_LOCK = threading.Lock()
_threads_users = 0
_threads_before: str | None = None


@contextmanager
def _one_thread() -> Iterator[None]:
    # Tesseract's OpenMP threads fight the embedding model for the same cores and make one page
    # slower, not faster (measured 2-3x on a dense page with two cores). Pages may be read on
    # several threads at once (:mod:`mrag.extract.ocr_slots`), and the environment is the
    # process's: the first to come sets the limit, the last to leave restores it.
    global _threads_users, _threads_before
    with _THREADS_LOCK:
        if _threads_users == 0:
            _threads_before = os.environ.get("OMP_THREAD_LIMIT")
            os.environ["OMP_THREAD_LIMIT"] = "1"
        _threads_users += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _threads_users -= 1
            if _threads_users == 0:
                if _threads_before is None:
                    os.environ.pop("OMP_THREAD_LIMIT", None)
                else:
                    os.environ["OMP_THREAD_LIMIT"] = _threads_before


def flatten_background(image: Image.Image) -> Image.Image:
    """Greyscale with uneven lighting divided out: a photographed page becomes black on white.

    Tesseract binarises with one global threshold, so a page with a shadow across it loses the
    words in the shadow; dividing by the local background (the brightest nearby paper) fixes it.
    """
    grey = image.convert("L")
    factor = max(1.0, min(grey.size) / _BACKGROUND_SIDE)
    small = grey.resize(
        (max(1, round(grey.width / factor)), max(1, round(grey.height / factor))),
        Image.Resampling.BOX,
    )
    background = (
        small.filter(ImageFilter.MaxFilter(5))
        .filter(ImageFilter.GaussianBlur(2))
        .resize(grey.size, Image.Resampling.BILINEAR)
    )
    pixels = np.asarray(grey, dtype=np.float32)
    paper = np.asarray(background, dtype=np.float32) + 1.0
    return Image.fromarray(np.clip(pixels / paper * 255.0, 0, 255).astype(np.uint8))


def recognise(
    image: Image.Image,
    settings: OcrSettings,
    *,
    timeout_s: float | None = None,
    flatten: bool = False,
) -> OcrText:
    """OCR one picture (a rendered page, a scan, a screenshot).

    ``flatten`` evens out the lighting first (:func:`flatten_background`): right for photos and
    screenshots, not needed for rendered PDF pages. Raises ``RuntimeError`` when Tesseract fails
    or runs past ``timeout_s`` (default: the settings' ``page_timeout_s``).
    """
    import pytesseract

    pytesseract.pytesseract.tesseract_cmd = settings.command
    if flatten:
        image = flatten_background(image)
    else:
        image = image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode)
    # A raw PNM file is the cheapest hand-over: no compression to spend time on. (Set on a copy:
    # the caller's picture keeps its own format.)
    image.format = "PPM"
    timeout = settings.page_timeout_s if timeout_s is None else timeout_s
    with _one_thread():
        data = pytesseract.image_to_data(
            image,
            lang="+".join(settings.languages),
            config="--psm 3",
            timeout=max(1, int(timeout)),
            output_type=pytesseract.Output.DICT,
        )
    return _assemble(data)


def _assemble(data: dict[str, list[Any]]) -> OcrText:
    """Rebuild text from Tesseract's word table: lines by newline, paragraphs by a blank line."""
    paragraphs: list[list[str]] = []
    lines: list[str] = []
    words: list[str] = []
    where: tuple[int, int, int] | None = None
    weighted = characters = kept = 0

    def end_line() -> None:
        if words:
            lines.append(" ".join(words))
            words.clear()

    def end_paragraph() -> None:
        end_line()
        if lines:
            paragraphs.append(list(lines))
            lines.clear()

    for text, confidence, block, paragraph, line in zip(
        data["text"],
        data["conf"],
        data["block_num"],
        data["par_num"],
        data["line_num"],
        strict=True,
    ):
        word = str(text).strip()
        score = float(confidence)
        if not word or score < MIN_WORD_CONFIDENCE:
            continue
        here = (int(block), int(paragraph), int(line))
        if where is not None and here[:2] != where[:2]:
            end_paragraph()
        elif where is not None and here != where:
            end_line()
        where = here
        words.append(word)
        kept += 1
        weighted += score * len(word)
        characters += len(word)
    end_paragraph()
    if kept < MIN_WORDS:
        return OcrText("", 0.0, 0)
    text = "\n\n".join("\n".join(paragraph) for paragraph in paragraphs)
    return OcrText(text, round(weighted / characters / 100, 3), kept)
