"""Native PyTorch implementation of jina-clip-v1."""

from .checkpoint import DEFAULT_REVISION, HUB_MODEL_ID, CheckpointError
from .clip import JinaClipModel
from .config import ConfigError, JinaClipConfig, TextConfig, VisionConfig
from .tokenizer import TextTokenizer

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
