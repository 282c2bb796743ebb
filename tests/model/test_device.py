"""``device = "auto"``: CUDA when torch sees a GPU, else the CPU; shown where mrag computes."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import run_cli

from mrag.ingestion.pipeline import Pipeline
from mrag.model import JinaClipModel
from mrag.model.device import AUTO_DEVICE, resolve_device

#: Where "auto" computes on this machine.
HERE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize(
    ("given", "gpu", "expected"),
    [
        (None, True, "cuda"),
        (None, False, "cpu"),
        ("auto", True, "cuda"),
        ("AUTO", False, "cpu"),
        ("cpu", True, "cpu"),
        ("cuda:1", False, "cuda:1"),
        (torch.device("cpu"), True, "cpu"),
    ],
)
def test_auto_is_cuda_when_there_is_a_gpu(given: object, gpu: bool, expected: str) -> None:
    assert resolve_device(given, cuda_available=lambda: gpu) == expected  # type: ignore[arg-type]


def test_auto_is_the_default_everywhere(tiny_checkpoint: Path) -> None:
    assert Pipeline.default().model.device == AUTO_DEVICE
    assert resolve_device(None) == HERE
    model = JinaClipModel.from_pretrained(tiny_checkpoint, dtype="float32")
    assert model.device.type == HERE


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd, env={"HF_HUB_OFFLINE": "1"})


def test_summary_and_stats_show_the_device(tmp_path: Path, tiny_checkpoint: Path) -> None:
    (tmp_path / "notes.md").write_text("# Pumps\n\nPrime the pump before the first start.\n")
    store = str(tmp_path / "store")
    result = _cli(
        "ingest", "notes.md", "--model", str(tiny_checkpoint), "--qdrant-path", store, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert re.search(rf"^model: (float32|bfloat16) \(.+\) on {HERE}$", result.stdout, re.M), (
        result.stdout
    )
    (tmp_path / "valves.md").write_text("# Valves\n\nThe valve opens at three bar.\n")
    result = _cli(
        "ingest",
        "valves.md",
        "--json",
        "--model",
        str(tiny_checkpoint),
        "--qdrant-path",
        store,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["device"] == HERE and report["dtype"].split()[0] in ("float32", "bfloat16")

    shown = _cli("stats", "--qdrant-path", store, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert re.search(rf"^compute: (float32|bfloat16) \(auto: .+\) on {HERE}$", shown.stdout, re.M)
    info = json.loads(_cli("stats", "--json", "--qdrant-path", store, cwd=tmp_path).stdout)
    assert info["device"] == HERE and info["auto_dtype"].split()[0] in ("float32", "bfloat16")
