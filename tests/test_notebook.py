"""``notebooks/explore.ipynb`` runs top to bottom on the tiny checkpoint."""

from __future__ import annotations

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
    text = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    assert f"model: {tiny_checkpoint}" in text
    assert "13 points stored" in text and "10 files ingested: 6 passages, 7 images" in text
    assert "image block: image/" in text
    figures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(figures) >= 4  # sample, image hits, score histogram, fusion ranks
