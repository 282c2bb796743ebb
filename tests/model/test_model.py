"""The native jina-clip-v1 model: reference outputs, batching invariance, options, dtypes."""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import pytest
import torch
from helpers import shared_path
from PIL import Image

from mrag.model import JinaClipConfig, JinaClipModel, fused
from mrag.model.processing import preprocess_images
from mrag.model.text import alibi_slopes
from mrag.model.vision import rope_for_all_tokens, rope_tables, rotate_pairs, turn_query_key
from mrag.testing import preset_config, write_random_checkpoint

TEXTS = [
    "x",
    "a portrait of an astronaut with the american flag",
    "the cat sat on the mat while the dog looked at the cat and the model learned nothing " * 4,
    "figure 3: retrieval results",
    "",
]


def _pattern_image(width: int = 320, height: int = 240) -> Image.Image:
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    array = np.stack([x % 256, y % 256, (x * y) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(array)


# -- the reference: an independent implementation's outputs for the golden checkpoint ------------


@pytest.fixture(scope="module")
def golden() -> tuple[JinaClipModel, dict]:
    folder = shared_path("golden", "jina-clip-tiny")
    expected = json.loads((folder / "expected.json").read_text())
    return JinaClipModel.from_pretrained(folder, dtype="float32"), expected


def test_golden_token_ids_and_text_features(golden: tuple[JinaClipModel, dict]) -> None:
    model, expected = golden
    assert expected["texts"]
    for case in expected["texts"]:
        ids = model.tokenize([case["text"]])[0]
        assert ids == case["input_ids"], case["text"]
        features = model.get_text_features(torch.tensor([ids])).detach().numpy()[0]
        np.testing.assert_allclose(features, case["features"], atol=expected["tolerance_abs"])


def test_golden_image_preprocessing_and_features(golden: tuple[JinaClipModel, dict]) -> None:
    from mrag.images import load_image

    model, expected = golden
    assert expected["images"]
    for case in expected["images"]:
        if case["file"]:
            image = load_image(shared_path(*case["file"].split("/")))
        else:  # the synthetic pattern the reference describes by formula
            image = _pattern_image()
        pixels = preprocess_images([image], model.config.preprocess)
        assert pixels.mean().item() == pytest.approx(case["pixel_mean"], abs=1e-5)
        assert pixels.std().item() == pytest.approx(case["pixel_std"], abs=1e-5)
        features = model.get_image_features(pixels).detach().numpy()[0]
        np.testing.assert_allclose(features, case["features"], atol=expected["tolerance_abs"])


# -- architecture facts that hold without any checkpoint ------------------------------------------


def test_alibi_slopes_for_twelve_heads() -> None:
    expected = [2.0**-i for i in range(1, 9)] + [2.0**-0.5, 2.0**-1.5, 2.0**-2.5, 2.0**-3.5]
    np.testing.assert_allclose(alibi_slopes(12).numpy(), expected, rtol=1e-7)
    np.testing.assert_allclose(alibi_slopes(8).numpy(), [2.0**-i for i in range(1, 9)])


def test_rope_tables_follow_the_patch_grid() -> None:
    config = JinaClipConfig().vision
    cos, sin = rope_tables(config)
    assert cos.shape == (196, 64)
    row, col = 3, 11
    index = row * 14 + col
    for k in range(16):
        frequency = 10000 ** (-k / 16)
        for offset, position in ((0, row), (32, col)):
            for repeat in (0, 1):
                angle = position * frequency
                assert cos[index, offset + 2 * k + repeat].item() == pytest.approx(
                    math.cos(angle), abs=1e-6
                )
                assert sin[index, offset + 2 * k + repeat].item() == pytest.approx(
                    math.sin(angle), abs=1e-6
                )


def test_rotate_pairs() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert rotate_pairs(x).tolist() == [-2.0, 1.0, -4.0, 3.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rope_turns_q_and_k_as_the_rotation_formula_says(dtype: torch.dtype) -> None:
    config = preset_config("tiny").vision
    cos, sin = rope_tables(config)
    tokens = cos.shape[0] + 1
    qkv = torch.randn(
        2, tokens, 3, 2, config.head_width, generator=torch.Generator().manual_seed(3)
    )
    qk = qkv[:, :, :2]
    # The textbook form: x·cos + rotate_pairs(x)·sin, with the CLS token left as it is.
    expected = qk.clone()
    turned = qk[:, 1:] * cos[:, None, None, :] + rotate_pairs(qk[:, 1:]) * sin[:, None, None, :]
    expected[:, 1:] = turned
    full_cos, full_sin = rope_for_all_tokens(cos.to(dtype), sin.to(dtype))
    got = turn_query_key(qkv.to(dtype)[:, :, :2], full_cos, full_sin)
    tolerance = 1e-6 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(got.float(), expected, atol=tolerance, rtol=tolerance)


def test_full_checkpoint_has_the_official_parameter_count_and_keys(tmp_path) -> None:
    folder = write_random_checkpoint(tmp_path / "full", preset="full", seed=1)
    model = JinaClipModel.from_pretrained(folder, dtype="float32")
    assert sum(p.numel() for p in model.parameters()) == 222_647_041
    state = model.state_dict()
    assert tuple(
        state["text_model.transformer.encoder.layers.11.mlp.gated_layers.weight"].shape
    ) == (6144, 768)
    assert tuple(state["vision_model.pos_embed"].shape) == (1, 197, 768)
    assert model.encode_text(["hello"]).shape == (1, 768)
    # At full size bfloat16 stays within 5e-3 of float32 (normalised), as at the golden size,
    # with the fast paths (fused products, packed batches) and without them.
    bf16 = JinaClipModel.from_pretrained(folder, dtype="bfloat16")
    text = TEXTS[1:4]
    images = [_pattern_image(), Image.new("RGB", (64, 64), "red")]
    reference = (model.encode_text(text), model.encode_image(images))
    for fast in (True, False):
        bf16.text_model.transformer.pack_sequences = fast
        with contextlib.nullcontext() if fast else fused.disabled():
            ours = (bf16.encode_text(text), bf16.encode_image(images))
        for a, b in zip(reference, ours, strict=True):
            assert np.abs(a - b).max() < 5e-3, fast


def test_model_keys_match_the_official_key_list() -> None:
    table = shared_path("docs", "jina-clip-v1-keys.tsv").read_text().splitlines()[1:]
    official = {}
    for line in table:
        key, shape = line.split("\t")
        official[key] = () if shape == "scalar" else tuple(int(n) for n in shape.split("x"))
    with torch.device("meta"):
        model = JinaClipModel(JinaClipConfig())
    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert ours == official


# -- behaviour on a tiny random checkpoint --------------------------------------------------------


def test_text_embedding_is_the_same_alone_and_in_a_padded_batch(tiny_model: JinaClipModel) -> None:
    batch = tiny_model.encode_text(TEXTS, batch_size=3, normalize_embeddings=False)
    for index, text in enumerate(TEXTS):
        alone = tiny_model.encode_text([text], normalize_embeddings=False)[0]
        np.testing.assert_allclose(batch[index], alone, atol=1e-5)


def test_image_embedding_is_the_same_alone_and_in_a_batch(tiny_model: JinaClipModel) -> None:
    images = [_pattern_image(), _pattern_image(100, 300), Image.new("RGB", (50, 50), "red")]
    batch = tiny_model.encode_image(images, batch_size=2)
    for index, image in enumerate(images):
        np.testing.assert_allclose(batch[index], tiny_model.encode_image([image])[0], atol=1e-5)


def test_order_is_restored_after_length_sorting(tiny_model: JinaClipModel) -> None:
    forward = tiny_model.encode_text(TEXTS)
    backward = tiny_model.encode_text(TEXTS[::-1])
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-5)
    assert not np.allclose(forward[0], forward[1])


def test_normalised_outputs_are_unit_length_float32(tiny_model: JinaClipModel) -> None:
    texts = tiny_model.encode_text(TEXTS)
    images = tiny_model.encode_image([_pattern_image()])
    for array in (texts, images):
        assert array.dtype == np.float32
        assert array.shape[1] == tiny_model.embedding_dim
        np.testing.assert_allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-5)
    raw = tiny_model.encode_text(TEXTS, normalize_embeddings=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


def test_single_inputs_give_one_dimensional_vectors(tiny_model: JinaClipModel) -> None:
    assert tiny_model.encode_text("one text").shape == (tiny_model.embedding_dim,)
    assert tiny_model.encode_image(_pattern_image()).shape == (tiny_model.embedding_dim,)
    assert tiny_model.encode_text([]).shape == (0, tiny_model.embedding_dim)


def test_truncate_dim_warns_slices_and_renormalises(tiny_model: JinaClipModel) -> None:
    full = tiny_model.encode_text(TEXTS, normalize_embeddings=False)
    with pytest.warns(UserWarning, match="not trained"):
        short = tiny_model.encode_text(TEXTS, truncate_dim=32)
    assert short.shape == (len(TEXTS), 32)
    expected = full[:, :32] / np.linalg.norm(full[:, :32], axis=1, keepdims=True)
    np.testing.assert_allclose(short, expected, atol=1e-5)
    with pytest.raises(ValueError, match="truncate_dim"):
        tiny_model.encode_text(TEXTS, truncate_dim=10_000)


def test_max_length_truncates_keeping_the_closing_separator(tiny_model: JinaClipModel) -> None:
    long_text = "the model " * 400
    ids = tiny_model.tokenize([long_text], max_length=16)[0]
    assert len(ids) == 16 and ids[0] == 101 and ids[-1] == 102
    default = tiny_model.tokenize([long_text])[0]
    assert len(default) == 512
    a = tiny_model.encode_text([long_text], max_length=16)
    b = tiny_model.encode_text([long_text])
    assert not np.allclose(a, b)


def test_bfloat16_is_close_to_float32(tiny_checkpoint) -> None:
    fp32 = JinaClipModel.from_pretrained(tiny_checkpoint, dtype="float32")
    bf16 = JinaClipModel.from_pretrained(tiny_checkpoint, dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16
    for encode in ("encode_text", "encode_image"):
        inputs = TEXTS if encode == "encode_text" else [_pattern_image()]
        a = getattr(fp32, encode)(inputs)
        b = getattr(bf16, encode)(inputs)
        assert b.dtype == np.float32
        cosine = (a * b).sum(axis=1)
        assert cosine.min() > 0.99


def test_padding_tokens_do_not_change_the_text_features(tiny_model: JinaClipModel) -> None:
    ids = tiny_model.tokenize(["a photo of a cat"])[0]
    padded = torch.tensor([ids + [0] * 9])
    plain = torch.tensor([ids])
    with torch.inference_mode():
        np.testing.assert_allclose(
            tiny_model.get_text_features(padded).numpy(),
            tiny_model.get_text_features(plain).numpy(),
            atol=1e-5,
        )


def test_encode_text_rejects_non_strings(tiny_model: JinaClipModel) -> None:
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        tiny_model.encode_text(["ok", 3])  # type: ignore[list-item]


def test_batch_plan_covers_every_text_once_and_keeps_padding_low() -> None:
    from mrag.model.clip import MAX_PADDING, MIN_BATCH_TOKENS, batch_plan

    rng = np.random.default_rng(3)
    lengths = [int(n) for n in rng.integers(3, 513, size=500)] + [512] * 40 + [5] * 30
    plan = batch_plan(lengths, 32)
    assert sorted(i for batch in plan for i in batch) == list(range(len(lengths)))
    assert all(1 <= len(batch) <= 32 for batch in plan)
    for batch in plan:
        real = sum(lengths[i] for i in batch)
        padded = max(lengths[i] for i in batch) * len(batch) - real
        if real - min(lengths[i] for i in batch) >= MIN_BATCH_TOKENS:
            assert padded <= MAX_PADDING * real
    total_real = sum(lengths)
    total_padded = sum(max(lengths[i] for i in b) * len(b) for b in plan) - total_real
    assert total_padded / total_real < 0.05
    assert batch_plan([], 8) == []


def test_batch_plan_without_a_padding_cap_fills_every_batch() -> None:
    from mrag.model.clip import batch_plan

    lengths = [512, 3, 400, 9, 9, 120, 512, 64, 2, 300]
    plan = batch_plan(lengths, 4, max_padding=None)
    assert [len(batch) for batch in plan] == [4, 4, 2]
    flat = [i for batch in plan for i in batch]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


# -- packed text batches -------------------------------------------------------------------------


def test_equal_length_runs() -> None:
    from mrag.model.text import equal_length_runs

    assert equal_length_runs([512, 512, 300, 7, 7, 7, 512]) == [
        (512, 2),
        (300, 1),
        (7, 3),
        (512, 1),
    ]
    assert equal_length_runs([]) == []


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_packed_batches_give_the_padded_path_features(tiny_checkpoint, dtype: str) -> None:
    model = JinaClipModel.from_pretrained(tiny_checkpoint, dtype=dtype)
    transformer = model.text_model.transformer
    ids = model.tokenize([*TEXTS, "x", "figure 3: retrieval results"])
    ids.sort(key=len, reverse=True)  # equal lengths side by side, and runs of one
    batch = model.pad(ids)
    assert transformer._packable_lengths(batch) == [len(row) for row in ids]
    with torch.inference_mode():
        packed = model.get_text_features(batch).float()
        transformer.pack_sequences = False
        try:
            padded = model.get_text_features(batch).float()
        finally:
            transformer.pack_sequences = True
    tolerance = 1e-5 if dtype == "float32" else 2e-2
    torch.testing.assert_close(packed, padded, atol=tolerance, rtol=tolerance)


def test_a_pad_id_inside_a_row_takes_the_padded_path(tiny_model: JinaClipModel) -> None:
    transformer = tiny_model.text_model.transformer
    ids = tiny_model.tokenize(["a photo of a cat", "a dog"])
    inner = list(ids[0])
    inner[2] = tiny_model.config.text.pad_token_id
    assert transformer._packable_lengths(tiny_model.pad([inner, ids[1]])) is None
    assert transformer._packable_lengths(tiny_model.pad(ids)) == [len(row) for row in ids]
    with torch.inference_mode():
        features = tiny_model.get_text_features(tiny_model.pad([inner, ids[1]]))
    assert torch.isfinite(features).all()


def test_the_alibi_table_is_sliced_and_rebuilt_when_it_must_be(tiny_model: JinaClipModel) -> None:
    transformer = tiny_model.text_model.transformer
    ids = torch.ones(1, 40, dtype=torch.long)
    fresh = transformer.attention_bias(ids, torch.float32)
    longer = transformer.alibi_table(60, torch.float32, torch.device("cpu"))
    assert longer.shape == (1, tiny_model.config.text.num_attention_heads, 60, 60)
    sliced = transformer.alibi_table(40, torch.float32, torch.device("cpu"))
    torch.testing.assert_close(sliced, fresh, atol=0, rtol=0)
    assert sliced.data_ptr() == longer.data_ptr()  # a view of the kept table, not a new one
    other = transformer.alibi_table(40, torch.bfloat16, torch.device("cpu"))
    assert other.dtype == torch.bfloat16
    torch.testing.assert_close(other.float(), fresh, atol=0.5, rtol=1e-2)


def test_a_packing_model_fills_its_text_batches(tiny_model: JinaClipModel) -> None:
    lengths = [len(row) for row in tiny_model.tokenize(TEXTS)]
    assert tiny_model.packs_text
    plan = tiny_model.text_batch_plan(lengths, 2)
    assert [len(batch) for batch in plan] == [2, 2, 1]
