"""Loading checkpoints: strict keys and shapes, clear errors, Hub resolution and offline use."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mrag.model import DEFAULT_REVISION, CheckpointError, ConfigError, JinaClipModel


@pytest.fixture
def checkpoint(tmp_path: Path, tiny_checkpoint: Path) -> Path:
    """A private copy of the tiny checkpoint that a test may break."""
    return Path(shutil.copytree(tiny_checkpoint, tmp_path / "checkpoint"))


def _edit_weights(folder: Path, edit) -> None:
    state = load_file(folder / "model.safetensors")
    edit(state)
    save_file(state, folder / "model.safetensors")


def test_missing_key_is_named(checkpoint: Path) -> None:
    key = "vision_model.blocks.1.attn.v_bias"
    _edit_weights(checkpoint, lambda state: state.pop(key))
    with pytest.raises(CheckpointError, match=rf"missing key {key}"):
        JinaClipModel.from_pretrained(checkpoint)


def test_unexpected_key_is_named(checkpoint: Path) -> None:
    key = "text_model.transformer.pooler.dense.weight"
    _edit_weights(checkpoint, lambda state: state.update({key: torch.zeros(2, 2)}))
    with pytest.raises(CheckpointError, match=rf"unexpected key {key}"):
        JinaClipModel.from_pretrained(checkpoint)


def test_wrong_shape_names_the_key_and_both_shapes(checkpoint: Path) -> None:
    key = "text_model.transformer.encoder.layers.0.mlp.wo.weight"
    _edit_weights(checkpoint, lambda state: state.update({key: torch.zeros(192, 100)}))
    with pytest.raises(
        CheckpointError,
        match=r"mlp\.wo\.weight: checkpoint has shape \(192, 100\), model expects \(192, 384\)",
    ):
        JinaClipModel.from_pretrained(checkpoint)


def test_rope_tables_in_the_checkpoint_are_ignored(checkpoint: Path) -> None:
    before = JinaClipModel.from_pretrained(checkpoint).encode_text(["a cat"])
    _edit_weights(
        checkpoint,
        lambda state: state.update(
            {
                "vision_model.rope.freqs_cos": torch.zeros(196, 64),
                "vision_model.rope.freqs_sin": torch.zeros(196, 64),
            }
        ),
    )
    after = JinaClipModel.from_pretrained(checkpoint).encode_text(["a cat"])
    assert (before == after).all()


def test_missing_weights_file(checkpoint: Path) -> None:
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors: file not found"):
        JinaClipModel.from_pretrained(checkpoint)


def test_pickled_weights_are_never_read(checkpoint: Path) -> None:
    state = load_file(checkpoint / "model.safetensors")
    (checkpoint / "model.safetensors").unlink()
    torch.save(state, checkpoint / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="only safetensors"):
        JinaClipModel.from_pretrained(checkpoint)


def test_corrupt_weights_file(checkpoint: Path) -> None:
    (checkpoint / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        JinaClipModel.from_pretrained(checkpoint)


def test_missing_config(checkpoint: Path) -> None:
    (checkpoint / "config.json").unlink()
    with pytest.raises(ConfigError, match=r"config\.json: file not found"):
        JinaClipModel.from_pretrained(checkpoint)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(model_type="bert"), "model_type is 'bert'"),
        (lambda c: c["vision_config"].update(post_norm=True), "post_norm"),
        (
            lambda c: c["text_config"]["hf_model_config_kwargs"].update(hidden_size="wide"),
            "not a number",
        ),
        (
            lambda c: c["text_config"]["hf_model_config_kwargs"].update(num_attention_heads=7),
            "divide",
        ),
        (lambda c: c.update(add_projections=True), "add_projections"),
    ],
)
def test_bad_config(checkpoint: Path, edit, message: str) -> None:
    config = json.loads((checkpoint / "config.json").read_text())
    edit(config)
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=message):
        JinaClipModel.from_pretrained(checkpoint)


def test_invalid_json_config(checkpoint: Path) -> None:
    (checkpoint / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        JinaClipModel.from_pretrained(checkpoint)


def test_missing_tokenizer(checkpoint: Path) -> None:
    (checkpoint / "tokenizer.json").unlink()
    (checkpoint / "vocab.txt").unlink()
    with pytest.raises(CheckpointError, match="tokenizer"):
        JinaClipModel.from_pretrained(checkpoint)


def test_vocab_txt_is_a_fallback_for_tokenizer_json(checkpoint: Path) -> None:
    expected = JinaClipModel.from_pretrained(checkpoint).tokenize(["A Photo of the cat, running!"])
    (checkpoint / "tokenizer.json").unlink()
    assert (
        JinaClipModel.from_pretrained(checkpoint).tokenize(["A Photo of the cat, running!"])
        == expected
    )


def test_a_path_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        JinaClipModel.from_pretrained(tmp_path / "nowhere" / "deeper" / "model")


def _run_isolated(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter, as Hub settings are read when huggingface_hub loads."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=120
    )


def test_offline_without_a_cached_model_says_how_to_provide_one(tmp_path: Path) -> None:
    code = (
        "from mrag import JinaClipModel, CheckpointError\n"
        "try:\n"
        "    JinaClipModel.from_pretrained('jinaai/jina-clip-v1')\n"
        "except CheckpointError as exc:\n"
        "    print(exc)\n"
    )
    result = _run_isolated(code, {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 0, result.stderr
    message = result.stdout.strip()
    assert "\n" not in message
    assert "jinaai/jina-clip-v1" in message and "HF_HUB_OFFLINE=1" in message
    assert "local checkpoint folder" in message


def test_offline_hub_id_loads_from_the_hugging_face_cache(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    # The cache layout huggingface_hub writes: blobs are referenced from snapshots/<commit>/.
    repo = tmp_path / "hub" / "models--jinaai--jina-clip-v1"
    shutil.copytree(tiny_checkpoint, repo / "snapshots" / DEFAULT_REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(DEFAULT_REVISION)
    code = (
        "from mrag import JinaClipModel\n"
        "model = JinaClipModel.from_pretrained('jinaai/jina-clip-v1')\n"
        "print(model.encode_text(['a cat']).shape)\n"
    )
    result = _run_isolated(code, {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 192)"
