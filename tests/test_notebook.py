"""``notebooks/explore.ipynb`` runs top to bottom on the tiny checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from helpers import REPO
from nbclient import NotebookClient

NOTEBOOK = REPO / "notebooks" / "explore.ipynb"


def test_explore_notebook_runs(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MRAG_MODEL", str(tiny_checkpoint))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel inherits this process's environment, so it sees MRAG_MODEL.
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()

    outputs = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]
    assert not [output for output in outputs if output.output_type == "error"]
    # No library warnings (or anything else) on stderr.
    assert [o.get("text") for o in outputs if o.get("name") == "stderr"] == []
    text = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    # Hits are labelled `file name:page` (the name alone without pages), one line each.
    shown = [o.text for o in outputs if o.get("name") == "stdout" and o.text.startswith("Q: ")]
    assert len(shown) == 4  # three questions and one picture
    rows = [line for block in shown for line in block.splitlines()[1:]]
    assert len(rows) == 3 * 6 + 4
    assert all(re.match(r" *\d+  (text|image) +[+-]\d\.\d{3}  \S", row) for row in rows), rows
    assert ":None" not in text and str(tmp_path) not in "\n".join(rows)
    assert any(re.search(r" brand\.html +Figure 2", row) for row in rows)
    assert f"model: {tiny_checkpoint}" in text
    assert "13 points stored" in text and "10 files ingested: 6 passages, 7 images" in text
    assert "image block: image/" in text
    figures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(figures) >= 4  # sample, image hits, score histogram, fusion ranks
