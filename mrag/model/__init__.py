"""Native PyTorch implementation of jina-clip-v1.

Hub names and errors import without torch; the model classes load it on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mrag.model.config import ConfigError, JinaClipConfig, TextConfig, VisionConfig
from mrag.model.hub import DEFAULT_REVISION, HUB_MODEL_ID, CheckpointError

_LAZY = {"JinaClipModel": ".clip", "TextTokenizer": ".tokenizer"}

if TYPE_CHECKING:
    from mrag.model.clip import JinaClipModel
    from mrag.model.tokenizer import TextTokenizer

__all__ = [
    "DEFAULT_REVISION",
    "HUB_MODEL_ID",
    "CheckpointError",
    "ConfigError",
    "JinaClipConfig",
    "JinaClipModel",
    "TextConfig",
    "TextTokenizer",
    "VisionConfig",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mrag.model' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
