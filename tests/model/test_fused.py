"""Fused linear kernels: each equals its eager expression, and the model is the same either way."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import REPO, shared_path

from mrag.model import JinaClipModel, fused
from mrag.model.query_cache import QueryCache

needs_onednn = pytest.mark.skipif(not fused._BF16, reason="no oneDNN bfloat16 on this machine")

EAGER = {
    "linear": lambda x, w, b, o: F.linear(x, w, b),
    "linear_gelu": lambda x, w, b, o: F.gelu(F.linear(x, w, b)),
    "linear_silu": lambda x, w, b, o: F.silu(F.linear(x, w, b)),
    "linear_mul": lambda x, w, b, o: F.linear(x, w, b) * o,
    "linear_add": lambda x, w, b, o: F.linear(x, w, b) + o,
}


def _call(name: str, x, w, b, other):
    function = getattr(fused, name)
    return function(x, w, b, other) if name in ("linear_mul", "linear_add") else function(x, w, b)


def _operands(dtype: torch.dtype, shape: tuple[int, ...], bias: bool):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, 48, generator=generator).to(dtype)
    weight = (torch.randn(40, 48, generator=generator) / 7).to(dtype)
    b = torch.randn(40, generator=generator).to(dtype) if bias else None
    other = torch.randn(*shape, 40, generator=generator).to(dtype)
    return x, weight, b, other


@pytest.mark.parametrize("name", sorted(EAGER))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(5,), (3, 7)])
@pytest.mark.parametrize("bias", [True, False])
def test_each_kernel_equals_its_eager_expression(name, dtype, shape, bias) -> None:
    x, weight, b, other = _operands(dtype, shape, bias)
    with torch.inference_mode():
        got = _call(name, x, weight, b, other)
        want = EAGER[name](x, weight, b, other)
    assert got.dtype == dtype and got.shape == want.shape
    # float32: summation order only; bfloat16: the fused tail rounds once where eager rounds
    # twice, so results may differ by a unit in the last place of bf16.
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got.float(), want.float(), atol=tolerance, rtol=tolerance)


@needs_onednn
def test_the_fused_path_is_taken_for_bf16_cpu_inference_only() -> None:
    x, weight, _, _ = _operands(torch.bfloat16, (4,), bias=False)
    with torch.inference_mode():
        assert fused._applies(x, weight)
        with fused.disabled():
            assert not fused._applies(x, weight)
        assert fused._applies(x, weight)
        assert not fused._applies(x.float(), weight.float())  # float32 stays eager
    trained = weight.clone().requires_grad_()
    assert not fused._applies(x, trained)


def test_gradients_flow_through_the_eager_fallback() -> None:
    x, weight, b, _ = _operands(torch.float32, (4,), bias=True)
    weight.requires_grad_()
    fused.linear_mul(x, weight, b, fused.linear_gelu(x, weight, b)).sum().backward()
    assert weight.grad is not None and torch.isfinite(weight.grad).all()


def test_the_vision_tower_compiles_as_one_graph(tiny_model: JinaClipModel) -> None:
    # fullgraph: any graph break (the fused-weight cache's look-up was one) raises.
    tower = tiny_model.vision_model
    size = tiny_model.config.vision.image_size
    pixels = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        eager = tower(pixels)
        compiled = torch.compile(tower, fullgraph=True)(pixels)
    torch.testing.assert_close(compiled, eager, atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_model_outputs_are_the_same_with_and_without_fused_kernels(
    tiny_checkpoint: Path, dtype: str
) -> None:
    model = JinaClipModel.from_pretrained(tiny_checkpoint, dtype=dtype)
    ids = model.pad(model.tokenize(["a short one", "a longer text about figures " * 6, ""]))
    size = model.config.vision.image_size
    pixels = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))

    def features() -> list[torch.Tensor]:
        with torch.inference_mode():
            text, image = model(input_ids=ids, pixel_values=pixels)
        return [F.normalize(output.float(), dim=-1) for output in (text, image)]

    with_fused = features()
    with fused.disabled():
        without = features()
    tolerance = 1e-5 if dtype == "float32" else 5e-3
    for a, b in zip(with_fused, without, strict=True):
        torch.testing.assert_close(a, b, atol=tolerance, rtol=0)


@pytest.mark.parametrize("use_fused", [True, False], ids=["fused", "eager"])
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "padded"])
def test_golden_text_features_in_every_mode(use_fused: bool, packed: bool) -> None:
    folder = shared_path("golden", "jina-clip-tiny")
    expected = json.loads((folder / "expected.json").read_text())
    model = JinaClipModel.from_pretrained(folder, dtype="float32")
    model.text_model.transformer.pack_sequences = packed
    cases = expected["texts"]
    # One padded batch of all the golden texts, so that packing has sequences to pack.
    batch = model.pad([model.tokenize([case["text"]])[0] for case in cases])
    with torch.inference_mode(), contextlib.ExitStack() as stack:
        if not use_fused:
            stack.enter_context(fused.disabled())
        ours = model.get_text_features(batch).numpy()
    for row, case in zip(ours, cases, strict=True):
        np.testing.assert_allclose(row, np.asarray(case["features"]), atol=1e-4)


# -- weights packed for few-row products --------------------------------------------------------

needs_packing = pytest.mark.skipif(
    not fused._small_rows, reason="few-row packing does not apply on this CPU"
)


def test_packing_is_chosen_per_cpu_feature() -> None:
    assert fused.packs_small_rows({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"})
    assert not fused.packs_small_rows({"avx512_bf16", "amx_bf16", "amx_tile"})  # AMX: as before
    assert not fused.packs_small_rows({"avx2", "avx512f"})  # float32 machines
    assert not fused.packs_small_rows(set())
    # float32 always has its few-row path (weight @ x.T); bfloat16 where it packs.
    assert fused.has_few_row_path(torch.float32)
    assert fused.has_few_row_path(torch.bfloat16) == fused._small_rows
    assert not fused.has_few_row_path(torch.float16)


@needs_packing
def test_packed_weights_give_the_same_products() -> None:
    packs = fused.SmallRowsWeights()
    x, weight, b, other = _operands(torch.bfloat16, (12,), bias=True)
    with torch.inference_mode():
        packed = packs.get("w", x, weight)
        assert packed is not None and packed.is_mkldnn and len(packs) == 1
        assert packs.get("w", x, weight) is packed  # laid out once
        for name in EAGER:
            with_packed = _call_packed(name, x, weight, b, other, packed)
            torch.testing.assert_close(
                with_packed, _call(name, x, weight, b, other), atol=0, rtol=0
            )
        many = torch.randn(fused.SMALL_ROWS + 1, 48).to(torch.bfloat16)
        assert packs.get("w", many, weight) is None  # large batches keep the plain weights
        assert packs.get("w", x.float(), weight.float()) is None
        with fused.unpacked():
            assert packs.get("w", x, weight) is None
        weight.mul_(2)  # changed in place: packed again
        assert packs.get("w", x, weight) is not packed
    assert len(pickle.loads(pickle.dumps(packs))) == 0
    assert len(copy.deepcopy(packs)) == 0


@pytest.mark.parametrize("bias", [True, False])
def test_few_float32_rows_multiply_the_weight_by_their_transpose(bias: bool) -> None:
    x, weight, b, _ = _operands(torch.float32, (2, 6), bias)
    with torch.inference_mode():
        got = fused.product(x, weight, b)
        with fused.unpacked():
            plain = fused.product(x, weight, b)
    want = F.linear(x, weight, b)
    assert got.shape == want.shape and got.is_contiguous()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert torch.equal(plain, want)  # the A/B switch gives F.linear itself
    many = torch.randn(fused.FEW_ROWS_FLOAT32 + 1, 48)
    assert torch.equal(fused.product(many, weight, b), F.linear(many, weight, b))


def _call_packed(name: str, x, w, b, other, packed):
    function = getattr(fused, name)
    if name in ("linear_mul", "linear_add"):
        return function(x, w, b, other, packed)
    return function(x, w, b, packed)


@needs_packing
def test_a_bf16_query_is_the_same_with_and_without_packed_weights(tiny_checkpoint: Path) -> None:
    model = JinaClipModel.from_pretrained(tiny_checkpoint, dtype="bfloat16")
    ids = model.pad(model.tokenize(["a short query about a pump"]))
    with torch.inference_mode():
        packed = model.get_text_features(ids)
        with fused.unpacked():
            plain = model.get_text_features(ids)
    assert torch.equal(packed, plain)
    assert len(model.text_model.transformer.encoder.layers[0].mlp.small_rows) == 3


@pytest.mark.parametrize("mode", ["packed", "unpacked", "eager"])
def test_golden_bf16_queries_in_every_mode(mode: str) -> None:
    folder = shared_path("golden", "jina-clip-tiny")
    expected = json.loads((folder / "expected.json").read_text())
    model = JinaClipModel.from_pretrained(folder, dtype="bfloat16")
    model.query_cache = QueryCache(0)
    with contextlib.ExitStack() as stack:
        if mode == "unpacked":
            stack.enter_context(fused.unpacked())
        if mode == "eager":
            stack.enter_context(fused.disabled())
        for case in expected["texts"]:
            ours = model.encode_text(case["text"])  # one text: the query path
            want = np.asarray(case["features"])
            # bfloat16 against the float32 reference, both normalised.
            np.testing.assert_allclose(ours, want / np.linalg.norm(want), atol=5e-3)


# -- the allocator setting ----------------------------------------------------------------------


def _allocator_result(**env: str) -> str:
    code = "from mrag.model.allocator import keep_freed_memory as k; print(k(), k())"
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MALLOC_", "GLIBC_TUNABLES", "MRAG_KEEP"))
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return done.stdout.strip()


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="glibc only",
)
def test_freed_memory_is_kept_unless_the_user_chose_otherwise() -> None:
    assert _allocator_result() == "True True"
    assert _allocator_result(MRAG_KEEP_FREED_MEMORY="0") == "False False"
    assert _allocator_result(MALLOC_TRIM_THRESHOLD_="131072") == "False False"
