"""Shared fixtures: a tiny random-weight checkpoint of the real architecture, and the real model."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrag.model import JinaClipModel
from mrag.testing import write_random_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("tiny-checkpoint"), preset="tiny")


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint: Path) -> JinaClipModel:
    # float32 whatever the CPU: tests compare its outputs at float32 tolerances.
    return JinaClipModel.from_pretrained(tiny_checkpoint, dtype="float32")
