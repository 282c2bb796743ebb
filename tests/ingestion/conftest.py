"""Fixtures of the ingestion tests: a folder of generated documents of every kind."""

from __future__ import annotations

from pathlib import Path

import docgen
import pytest


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A folder of real documents of every kind, plus a broken and an encrypted PDF."""
    folder = tmp_path / "docs"
    work = tmp_path / "work"
    folder.mkdir()
    work.mkdir()
    docgen.figures_pdf(folder / "report.pdf", work)
    docgen.markdown_file(folder / "notes.md")
    docgen.write_image(folder / "photo.png", docgen.halves((200, 30, 30), (30, 30, 200)), "PNG")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n this is not really a pdf \n%%EOF")
    plain = docgen.text_pdf(work / "plain.pdf", ["The secret plan is to embed everything."])
    docgen.encrypted_pdf(folder / "locked.pdf", plain, "secret", "AES-256")
    (folder / "ignored.xyz").write_text("not a supported type")
    return folder
