"""Plain text and Markdown files.

Markdown is cut into sections at its ATX headings (``#`` to ``######``); each section becomes one
:class:`PageText` whose ``headings`` is the path of headings above it, so a chunk deep in a manual
still knows it belongs to "Install > From source". A ``#`` line inside a fenced code block is code,
not a heading.
"""

from __future__ import annotations

import re
from pathlib import Path

from mrag.document import ExtractionLimits, PageText, ParsedDocument, read_source

TEXT_SUFFIXES = (".txt", ".text", ".rst")
MARKDOWN_SUFFIXES = (".md", ".markdown")

_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def read_text_file(path: Path, problems: list[str]) -> str:
    """File contents as text: UTF-8 (BOM allowed), else Latin-1 with a note in ``problems``."""
    data = read_source(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.append(
            f"not valid UTF-8 (byte {exc.start}); read as Latin-1, some characters may be wrong"
        )
        return data.decode("latin-1")


def markdown_sections(text: str) -> list[PageText]:
    """Split Markdown into sections, each with the heading path leading to it."""
    sections: list[PageText] = []
    stack: list[tuple[int, str]] = []
    body: list[str] = []
    fence: str | None = None

    def flush() -> None:
        content = "\n".join(body).strip()
        if content:
            sections.append(PageText(page=None, text=content, headings=[t for _, t in stack]))
        body.clear()

    for line in text.splitlines():
        fence_match = _FENCE.match(line)
        if fence is not None:
            # A fence closes only with the same character, at least as long as the opener.
            if (
                fence_match
                and fence_match.group(1)[0] == fence[0]
                and len(fence_match.group(1)) >= len(fence)
                and not line.strip()[len(fence_match.group(1)) :].strip()
            ):
                fence = None
            body.append(line)
            continue
        if fence_match:
            fence = fence_match.group(1)
            body.append(line)
            continue
        heading = _ATX_HEADING.match(line)
        if heading:
            flush()
            level = len(heading.group(1))
            title = (heading.group(2) or "").strip()
            while stack and stack[-1][0] >= level:
                stack.pop()
            if title:
                stack.append((level, title))
            continue
        body.append(line)
    flush()
    return sections


def parse_text_file(path: Path, *, limits: ExtractionLimits) -> ParsedDocument:
    """Read a text or Markdown file into sections (one section for plain text)."""
    problems: list[str] = []
    text = read_text_file(path, problems)
    markdown = path.suffix.lower() in MARKDOWN_SUFFIXES
    if markdown:
        pages = markdown_sections(text)
    else:
        stripped = text.strip()
        pages = [PageText(page=None, text=stripped)] if stripped else []
    return ParsedDocument(
        source=str(path),
        kind="markdown" if markdown else "text",
        pages=pages,
        images=[],
        problems=problems,
        page_count=1,
    )
