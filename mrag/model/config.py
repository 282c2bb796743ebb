"""Configuration of jina-clip-v1, read from the checkpoint's ``config.json``.

The official config describes the text tower only by the name of its code repository plus a few
overrides (``text_config.hf_model_config_kwargs``); the sizes themselves are JinaBERT's defaults,
which :class:`TextConfig` spells out. The vision sizes come from ``vision_config``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """``config.json`` is missing, unreadable or describes a model mrag does not implement."""


@dataclass(frozen=True)
class TextConfig:
    """JinaBERT v2: BERT with ALiBi attention, GEGLU MLP and post-LayerNorm."""

    vocab_size: int = 30528
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


@dataclass(frozen=True)
class VisionConfig:
    """EVA-02 ViT with 2-D RoPE, SwiGLU and sub-LayerNorms."""

    width: int = 768
    layers: int = 12
    head_width: int = 64
    mlp_ratio: float = 2.6667
    image_size: int = 224
    patch_size: int = 16
    pt_hw_seq_len: int = 14
    layer_norm_eps: float = 1e-6

    @property
    def num_heads(self) -> int:
        return self.width // self.head_width

    @property
    def mlp_hidden(self) -> int:
        return int(self.width * self.mlp_ratio)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size


@dataclass(frozen=True)
class PreprocessConfig:
    """Image preprocessing: shortest-side bicubic resize, centre crop, CLIP normalisation."""

    image_size: int = 224
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class JinaClipConfig:
    text: TextConfig = field(default_factory=TextConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    projection_dim: int = 768
    logit_scale_init_value: float = 2.6592

    @property
    def embedding_dim(self) -> int:
        return self.text.hidden_size

    @classmethod
    def from_folder(cls, folder: str | Path) -> JinaClipConfig:
        """Read ``config.json`` (and ``preprocessor_config.json`` if present) from a folder."""
        folder = Path(folder)
        raw = _read_json(folder / "config.json")
        preprocess = PreprocessConfig()
        if (folder / "preprocessor_config.json").is_file():
            preprocess = _preprocess_from_dict(
                _read_json(folder / "preprocessor_config.json"), folder / "preprocessor_config.json"
            )
        return cls.from_dict(raw, preprocess=preprocess, name=str(folder / "config.json"))

    @classmethod
    def from_dict(
        cls,
        raw: dict[str, Any],
        *,
        preprocess: PreprocessConfig | None = None,
        name: str = "config.json",
    ) -> JinaClipConfig:
        if not isinstance(raw, dict):
            raise ConfigError(f"{name}: expected a JSON object")
        if raw.get("model_type") != "jina_clip":
            raise ConfigError(
                f"{name}: model_type is {raw.get('model_type')!r}, expected 'jina_clip'"
            )
        if raw.get("add_projections", False):
            raise ConfigError(f"{name}: add_projections=true is not supported (v1 has none)")
        text_raw = raw.get("text_config") or {}
        vision_raw = raw.get("vision_config") or {}
        if not isinstance(text_raw, dict) or not isinstance(vision_raw, dict):
            raise ConfigError(f"{name}: text_config and vision_config must be objects")
        pooler = text_raw.get("pooler_type", "mean_pooler")
        if pooler not in (None, "mean_pooler"):
            raise ConfigError(f"{name}: text pooler_type {pooler!r} is not supported")
        if text_raw.get("proj_type") is not None or vision_raw.get("proj_type") is not None:
            raise ConfigError(f"{name}: tower projections (proj_type) are not supported")
        overrides = text_raw.get("hf_model_config_kwargs") or {}
        text = _dataclass_from(TextConfig, overrides, name, "text_config.hf_model_config_kwargs")
        for flag, wanted in (
            ("rope_embeddings", True),
            ("subln", True),
            ("naive_swiglu", True),
            ("qkv_bias", True),
            ("post_norm", False),
            ("intp_freq", False),
        ):
            if flag in vision_raw and bool(vision_raw[flag]) != wanted:
                raise ConfigError(
                    f"{name}: vision_config.{flag}={vision_raw[flag]!r} is not supported"
                )
        if vision_raw.get("ls_init_value") is not None:
            raise ConfigError(f"{name}: vision_config.ls_init_value (layer scale) is not supported")
        vision = _dataclass_from(VisionConfig, vision_raw, name, "vision_config")
        config = cls(
            text=text,
            vision=vision,
            preprocess=preprocess or PreprocessConfig(image_size=vision.image_size),
            projection_dim=int(raw.get("projection_dim", text.hidden_size)),
            logit_scale_init_value=float(raw.get("logit_scale_init_value", 2.6592)),
        )
        config.validate(name)
        return config

    def validate(self, name: str = "config") -> None:
        """Check that the sizes fit together; raise :class:`ConfigError` naming the problem."""
        t, v = self.text, self.vision
        checks = [
            (t.hidden_size % t.num_attention_heads == 0, "text hidden_size must divide by heads"),
            (v.width % v.head_width == 0, "vision width must divide by head_width"),
            (v.head_width % 4 == 0, "vision head_width must divide by 4 for 2-D RoPE"),
            (v.image_size % v.patch_size == 0, "image_size must divide by patch_size"),
            (t.hidden_size == v.width, "text hidden_size and vision width must match"),
            (self.projection_dim == t.hidden_size, "projection_dim must equal the tower width"),
            (self.preprocess.image_size == v.image_size, "preprocessor image_size must match"),
        ]
        for size in (t.vocab_size, t.num_hidden_layers, v.layers, t.intermediate_size, v.layers):
            checks.append((size > 0, "sizes must be positive"))
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{name}: {message}")

    def to_dict(self) -> dict[str, Any]:
        """The official ``config.json`` layout for this configuration."""
        text_defaults = TextConfig()
        overrides = {
            key: value
            for key, value in asdict(self.text).items()
            if value != getattr(text_defaults, key)
        }
        return {
            "model_type": "jina_clip",
            "architectures": ["JinaCLIPModel"],
            "add_projections": False,
            "projection_dim": self.projection_dim,
            "logit_scale_init_value": self.logit_scale_init_value,
            "text_config": {
                "model_type": "jina_clip_text",
                "embed_dim": self.text.hidden_size,
                "hf_model_name_or_path": "jinaai/jina-bert-flash-implementation",
                "hf_model_config_kwargs": {"use_flash_attn": False, **overrides},
                "pooler_type": "mean_pooler",
                "proj_type": None,
                "proj_bias": False,
            },
            "vision_config": {
                "model_type": "jina_clip_vision",
                "embed_dim": self.vision.width,
                **{k: v for k, v in asdict(self.vision).items() if k != "layer_norm_eps"},
                "rope_embeddings": True,
                "subln": True,
                "naive_swiglu": True,
                "qkv_bias": True,
                "post_norm": False,
                "intp_freq": False,
                "ls_init_value": None,
                "proj_type": None,
            },
            "torch_dtype": "float32",
        }


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None


def _dataclass_from(kind: type, raw: dict[str, Any], name: str, section: str) -> Any:
    values = {}
    for spec in fields(kind):
        if spec.name not in raw:
            continue
        value = raw[spec.name]
        expected = type(spec.default)
        try:
            if expected is int:
                if isinstance(value, bool) or int(value) != value:
                    raise TypeError
                value = int(value)
            elif expected is float:
                value = float(value)
                if not math.isfinite(value):
                    raise TypeError
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: {section}.{spec.name}={value!r} is not a number") from None
        values[spec.name] = value
    return kind(**values)


def _preprocess_from_dict(raw: Any, path: Path) -> PreprocessConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    try:
        size = raw.get("image_size", 224)
        if isinstance(size, (list, tuple)):
            size = size[0]
        mean = tuple(float(x) for x in raw.get("mean", PreprocessConfig.mean))
        std = tuple(float(x) for x in raw.get("std", PreprocessConfig.std))
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: image_size, mean and std must be numbers") from None
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise ConfigError(f"{path}: mean and std need three values (std > 0)")
    mode = raw.get("resize_mode", "shortest")
    if mode != "shortest" or raw.get("interpolation", "bicubic") != "bicubic":
        raise ConfigError(f"{path}: only bicubic shortest-side resizing is supported")
    return PreprocessConfig(image_size=int(size), mean=mean, std=std)  # type: ignore[arg-type]
