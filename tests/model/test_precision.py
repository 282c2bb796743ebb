"""dtype "auto": bfloat16 where the CPU computes it natively, float32 elsewhere; explicit dtypes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import shared_path

from mrag.ingestion.pipeline import Pipeline, PipelineError
from mrag.model import JinaClipModel
from mrag.model.embeddings import load_shared_model
from mrag.model.precision import (
    BF16_CPU_FLAGS,
    DtypeChoice,
    choose_dtype,
    cpu_dtype,
    parse_cpu_flags,
    read_cpu_flags,
    resolve_dtype,
)
from mrag.model.processing import preprocess_images

BASE = "fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma"
#: Flags lines as the kernel prints them, trimmed to what matters here.
SAPPHIRE_RAPIDS = f"{BASE} avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8"
ZEN4 = f"{BASE} avx512f avx512bw avx512_vnni avx512_bf16"
SKYLAKE_SERVER = f"{BASE} avx512f avx512bw avx512_vnni"
HASWELL = BASE


def cpuinfo(*cores: str) -> str:
    """A ``/proc/cpuinfo`` text with one block per core."""
    blocks = [
        f"processor\t: {n}\nvendor_id\t: GenuineIntel\nflags\t\t: {flags}\nbugs\t\t: spectre_v1\n"
        for n, flags in enumerate(cores)
    ]
    return "\n".join(blocks)


# -- detection from flag sets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (SAPPHIRE_RAPIDS, "bfloat16"),  # AMX and AVX-512 BF16
        (ZEN4, "bfloat16"),  # AVX-512 BF16 without AMX (AMD)
        (f"{BASE} amx_bf16 amx_tile", "bfloat16"),  # AMX alone also counts
        (SKYLAKE_SERVER, "float32"),  # AVX-512 but bf16 only emulated
        (HASWELL, "float32"),
        ("", "float32"),
    ],
)
def test_auto_follows_the_cpu_flags(flags: str, expected: str) -> None:
    choice = cpu_dtype(parse_cpu_flags(cpuinfo(flags, flags)))
    assert choice.dtype == expected
    assert choice.reason.startswith("auto: ")
    if expected == "bfloat16":
        assert all(flag in choice.reason for flag in BF16_CPU_FLAGS if flag in flags.split())


def test_only_flags_every_core_has_count() -> None:
    flags = parse_cpu_flags(cpuinfo(ZEN4, SKYLAKE_SERVER))
    assert "avx512f" in flags and "avx512_bf16" not in flags
    assert cpu_dtype(flags).dtype == "float32"
    # The "bugs" line and other keys are not flags.
    assert "spectre_v1" not in flags


def test_a_cpuinfo_without_flags_means_float32(tmp_path: Path) -> None:
    arm = tmp_path / "cpuinfo"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\nCPU part\t: 0xd40\n")
    assert read_cpu_flags(arm) == frozenset()
    assert read_cpu_flags(tmp_path / "missing") == frozenset()
    assert cpu_dtype(read_cpu_flags(arm)).dtype == "float32"


def test_explicit_dtypes_are_honoured_and_bad_ones_named() -> None:
    assert choose_dtype("float32") == DtypeChoice("float32", "requested")
    assert choose_dtype(torch.bfloat16).dtype == "bfloat16"
    assert choose_dtype("bf16").dtype == "bfloat16"
    assert resolve_dtype("fp32") is torch.float32
    assert choose_dtype(None) == choose_dtype("auto") == cpu_dtype()
    with pytest.raises(ValueError, match=r"'int8'.*auto, float32 or bfloat16"):
        choose_dtype("int8")
    assert choose_dtype("auto", "mps").dtype == "float32"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer without a GPU")
def test_auto_on_cuda_without_a_gpu_is_float32() -> None:
    assert choose_dtype("auto", "cuda").dtype == "float32"


# -- the real path on this machine ---------------------------------------------------------------


def _expected_here() -> torch.dtype:
    native = set(BF16_CPU_FLAGS) & read_cpu_flags()
    return torch.bfloat16 if native else torch.float32


def test_auto_is_the_default_and_reads_this_cpu(tiny_checkpoint: Path) -> None:
    model = JinaClipModel.from_pretrained(tiny_checkpoint)
    assert model.dtype == _expected_here()
    assert model.dtype_choice == cpu_dtype()
    assert model.encode_text(["a cat"]).dtype == np.float32
    explicit = JinaClipModel.from_pretrained(tiny_checkpoint, dtype="float32")
    assert explicit.dtype == torch.float32
    assert str(explicit.dtype_choice) == "float32 (requested)"
    assert explicit.to(torch.bfloat16).dtype_choice.dtype == "bfloat16"


def test_auto_shares_the_model_of_the_dtype_it_resolves_to(tiny_checkpoint: Path) -> None:
    auto = load_shared_model(str(tiny_checkpoint))
    named = load_shared_model(str(tiny_checkpoint), dtype=str(auto.dtype).removeprefix("torch."))
    assert auto is named
    assert load_shared_model(str(tiny_checkpoint), dtype="auto") is auto


def test_pipeline_default_is_auto_and_dtype_is_checked() -> None:
    assert Pipeline().model.dtype == "auto"
    for name in ("auto", "float32", "bfloat16"):
        assert Pipeline.from_dict({"model": {"dtype": name}}).model.dtype == name
    with pytest.raises(PipelineError, match=r"model.dtype must be auto, float32 or bfloat16"):
        Pipeline.from_dict({"model": {"dtype": "float16"}})


# -- the golden reference in bfloat16 -----------------------------------------------------------


def test_golden_reference_in_bfloat16_within_5e_3_normalised() -> None:
    from mrag.images import load_image

    folder = shared_path("golden", "jina-clip-tiny")
    expected = json.loads((folder / "expected.json").read_text())
    model = JinaClipModel.from_pretrained(folder, dtype="bfloat16")

    def unit(vector) -> np.ndarray:
        array = np.asarray(vector, dtype=np.float64)
        return array / np.linalg.norm(array)

    for case in expected["texts"]:
        ids = model.tokenize([case["text"]])[0]
        with torch.inference_mode():
            ours = model.get_text_features(torch.tensor([ids])).float().numpy()[0]
        assert np.abs(unit(ours) - unit(case["features"])).max() < 5e-3, case["text"]
    for case in expected["images"]:
        if not case["file"]:
            continue
        image = load_image(shared_path(*case["file"].split("/")))
        pixels = preprocess_images([image], model.config.preprocess)
        with torch.inference_mode():
            ours = model.get_image_features(pixels).float().numpy()[0]
        assert np.abs(unit(ours) - unit(case["features"])).max() < 5e-3, case["file"]
