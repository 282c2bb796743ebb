"""Random-weight jina-clip-v1 checkpoints for tests, notebooks and benchmarks.

:func:`write_random_checkpoint` writes a complete folder in the official layout, so that everything
downstream (loading, tokenising, embedding, storing, retrieving) runs the production code path
without the real weights. ``preset="full"`` has exactly the shapes (and so the cost) of the real
model; ``"tiny"`` is small enough for unit tests.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save_file

from mrag.model.config import JinaClipConfig, TextConfig, VisionConfig
from mrag.model.tokenizer import bert_wordpiece_tokenizer

Preset = Literal["tiny", "full"]

# Common English words (and a few domain words), so that random checkpoints tokenise ordinary
# prose into roughly word-sized pieces instead of single characters.
_WORDS = """
the of and to in is for on with as by that this from are be or an at it which we our not can has
have had was were will would should could may might must do does did done been being its their
there these those they them then than also more most other some such only into over under after
before between about above below each all any both few many much very one two three four five
six seven eight nine ten first second third new old high low large small long short good best
better same different each every part parts use used using make made show shows shown see seen
set sets take given give time year years way day work number numbers case cases point points
system systems model models method methods result results data table figure fig page pages
section chapter report document documents text image images photo picture chart graph plot value
values test tests training train trained learning network networks layer layers input output
inputs outputs feature features vector vectors embedding embeddings search query queries
retrieval retrieve index store stored file files source sources user users question answer
answers language information based approach problem problems analysis process design performance
accuracy error errors rate size level order form group example examples following shown where
when while what who how why because however therefore thus here within without cat dog horse
bird car road tree flower water sky sun house city people person man woman child red green blue
black white yellow color colour light dark left right top bottom center world area state states
government public law health research study studies paper papers university price cost market
company business service services product products support control power energy air fire earth
space rocket astronaut flag camera coffee cup temple motorcycle portrait
""".split()  # noqa: SIM905


def _vocabulary() -> list[str]:
    specials = (
        ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    )
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    pieces = [f"##{c}" for c in string.ascii_lowercase + string.digits]
    suffixes = ["##s", "##es", "##ed", "##ing", "##er", "##ly", "##tion", "##al", "##ment"]
    words = list(dict.fromkeys(w for w in _WORDS if w not in chars))
    return specials + chars + pieces + suffixes + words


def preset_config(preset: Preset) -> JinaClipConfig:
    """The model configuration of a preset: ``"full"`` is jina-clip-v1's own."""
    if preset == "full":
        return JinaClipConfig()
    if preset == "tiny":
        # Real geometry (12 ALiBi heads, 64-wide RoPE heads, 224 px, 16 px patches) at a small
        # width and depth, so that every code path of the full model runs, fast.
        text = TextConfig(
            vocab_size=1024,
            hidden_size=192,
            num_hidden_layers=2,
            num_attention_heads=12,
            intermediate_size=384,
        )
        vision = VisionConfig(width=192, layers=2, head_width=64)
        return JinaClipConfig(text=text, vision=vision, projection_dim=192)
    raise ValueError(f"unknown preset {preset!r}; use 'tiny' or 'full'")


def _random_state_dict(config: JinaClipConfig, seed: int) -> dict[str, torch.Tensor]:
    from mrag.model.clip import JinaClipModel

    generator = torch.Generator().manual_seed(seed)
    model = JinaClipModel(config)
    state = {}
    for key, tensor in model.state_dict().items():
        if key.endswith(("norm1.weight", "norm2.weight", "ln.weight", "norm.weight")):
            value = torch.ones_like(tensor)
        elif key.endswith(("norm1.bias", "norm2.bias", "ln.bias", "norm.bias")):
            value = torch.zeros_like(tensor)
        elif key == "logit_scale":
            value = torch.tensor(config.logit_scale_init_value)
        else:
            value = torch.randn(tensor.shape, generator=generator) * 0.02
        state[key] = value.contiguous()
    return state


def write_random_checkpoint(path: str | Path, preset: Preset = "tiny", seed: int = 0) -> Path:
    """Write a random-weight jina-clip-v1 checkpoint folder in the official layout.

    The folder holds ``config.json``, ``model.safetensors``, ``tokenizer.json``,
    ``tokenizer_config.json``, ``vocab.txt`` and ``preprocessor_config.json``, and loads with
    :meth:`mrag.JinaClipModel.from_pretrained`. The same ``seed`` gives the same weights.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    config = preset_config(preset)
    vocab = _vocabulary()
    if len(vocab) > config.text.vocab_size:
        raise ValueError("the generated vocabulary does not fit the preset's embedding table")
    (folder / "config.json").write_text(json.dumps(config.to_dict(), indent=2), encoding="utf-8")
    save_file(
        _random_state_dict(config, seed),
        str(folder / "model.safetensors"),
        metadata={"format": "pt"},
    )
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = bert_wordpiece_tokenizer({token: i for i, token in enumerate(vocab)})
    tokenizer.save(str(folder / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "model_max_length": 8192,
        "pad_token": "[PAD]",
        "unk_token": "[UNK]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1))
    preprocessor = {
        "image_size": config.preprocess.image_size,
        "resize_mode": "shortest",
        "interpolation": "bicubic",
        "fill_color": 0,
        "mean": list(config.preprocess.mean),
        "std": list(config.preprocess.std),
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=1))
    return folder
