"""The peer runtimes: mrag's own towers exported to ONNX and run by onnxruntime and OpenVINO.

Each tower is exported with ``torch.onnx.export`` (dynamic batch, and dynamic length for text)
from the same checkpoint mrag loads. onnxruntime runs it in float32 and, after dynamic int8
quantisation of the weights (``onnxruntime.quantization.quantize_dynamic``), in int8. OpenVINO
reads the same float32 file, reshaped to the static input shape, and runs it with float32 and
bfloat16 inference precision. Exports are cached beside the checkpoint in the benchmark cache,
keyed by the checkpoint's size and time. mrag runs in float32 and in its default dtype (auto),
in turns with each peer, so that both see the same load.

Needs the ``bench`` extra: ``pip install -e .[bench]`` (onnx, onnxruntime, onnxscript, openvino).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mrag.model import JinaClipModel
from mrag.model.precision import cpu_dtype

from .common import Settings, alternate, dtype_name, load_average
from .model_bench import random_ids


class TextTowerForExport(nn.Module):
    """``input_ids`` (batch, length) → unnormalised text features (batch, 768).

    The tower picks a broadcast ALiBi bias when a batch has no padding; that choice depends on
    the data, which a traced graph cannot hold. For export the bias is always built per
    sequence, which is the same numbers (a broadcast bias equals its per-sequence copies).
    """

    def __init__(self, model: JinaClipModel) -> None:
        super().__init__()
        self.tower = model.text_model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.tower(input_ids)


class VisionTowerForExport(nn.Module):
    """``pixel_values`` (batch, 3, 224, 224) → unnormalised image features (batch, 768)."""

    def __init__(self, model: JinaClipModel) -> None:
        super().__init__()
        self.tower = model.vision_model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.tower(pixel_values)


def export_towers(model: JinaClipModel, folder: Path) -> dict[str, Path]:
    """Export both towers of a float32 model to ``folder`` (text.onnx, vision.onnx)."""
    folder.mkdir(parents=True, exist_ok=True)
    vision = model.config.vision
    text = model.config.text
    batch = torch.export.Dim("batch", min=1, max=1024)
    length = torch.export.Dim("length", min=2, max=8192)
    ids = random_ids(text.vocab_size, 2, 16)
    ids[1, 10:] = text.pad_token_id
    pixels = torch.randn(2, 3, vision.image_size, vision.image_size)
    jobs = [
        ("text", TextTowerForExport(model), (ids,), "input_ids", {0: batch, 1: length}),
        ("vision", VisionTowerForExport(model), (pixels,), "pixel_values", {0: batch}),
    ]
    paths = {}
    for name, module, example, input_name, dims in jobs:
        path = folder / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(),
                example,
                str(path),
                input_names=[input_name],
                output_names=["features"],
                dynamic_shapes={input_name: dims},
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        paths[name] = path
    return paths


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 quantisation of the weights of every MatMul (activations quantised at run
    time), the usual CPU recipe for transformer encoders."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"],
    )
    return target


def cached_exports(settings: Settings, model: JinaClipModel) -> tuple[dict[str, Path], float]:
    """Exported (and quantised) towers for the benchmarked checkpoint; export once."""
    import time

    weights = settings.checkpoint_folder() / "model.safetensors"
    stat = weights.stat()
    key = {
        "weights": str(weights.resolve()),
        "size": stat.st_size,
        "mtime": stat.st_mtime,
        "torch": torch.__version__,
    }
    folder = settings.cache_dir / "onnx" / settings.preset
    stamp = folder / "source.json"
    names = ("text", "vision", "text.int8", "vision.int8")
    paths = {name: folder / f"{name}.onnx" for name in names}
    if (
        stamp.is_file()
        and json.loads(stamp.read_text()) == key
        and all(path.is_file() for path in paths.values())
    ):
        return paths, 0.0
    start = time.perf_counter()
    print(f"  exporting both towers to ONNX in {folder} (once)", flush=True)
    stamp.unlink(missing_ok=True)
    export_towers(model, folder)
    for name in ("text", "vision"):
        quantize_int8(paths[name], paths[f"{name}.int8"])
    stamp.write_text(json.dumps(key))
    return paths, time.perf_counter() - start


def ort_runner(path: Path, threads: int, input_name: str, shape: list[int]) -> Any:
    """``feed -> output`` with an onnxruntime CPU session (all graph optimisations on)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda feed: sess.run(None, feed)[0]


def openvino_runner(path: Path, threads: int, input_name: str, shape: list[int], precision: str):
    """``feed -> output`` with OpenVINO on the CPU, the graph reshaped to the static input shape
    (its fastest mode) and the given inference precision (``f32`` or ``bf16``)."""
    import openvino as ov

    core = ov.Core()
    graph = core.read_model(str(path))
    graph.reshape({input_name: shape})
    compiled = core.compile_model(
        graph,
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": precision,
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
        },
    )
    request = compiled.create_infer_request()

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        return request.infer(feed)[0].copy()

    return run


def peer_runtimes(paths: dict[str, Path]) -> list[tuple[str, str, Path, Any]]:
    """(tower, runtime label, ONNX file, runner factory) for every peer that is installed."""
    out: list[tuple[str, str, Path, Any]] = []
    for tower in ("vision", "text"):
        if importlib.util.find_spec("onnxruntime") is not None:
            out.append((tower, "onnxruntime float32", paths[tower], ort_runner))
            out.append((tower, "onnxruntime int8", paths[f"{tower}.int8"], ort_runner))
        if importlib.util.find_spec("openvino") is not None:
            for label, precision in (("float32", "f32"), ("bfloat16", "bf16")):
                factory = functools.partial(openvino_runner, precision=precision)
                out.append((tower, f"openvino {label}", paths[tower], factory))
    return out


def normalised(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    return array / np.linalg.norm(array, axis=-1, keepdims=True)


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def run(settings: Settings, model_result: dict[str, Any] | None) -> dict[str, Any]:
    if importlib.util.find_spec("onnxruntime") is None:
        return {
            "status": "skipped",
            "reason": "onnxruntime not installed; pip install -e .[bench]",
        }
    model = JinaClipModel.from_pretrained(settings.checkpoint_folder(), dtype=torch.float32)
    auto = JinaClipModel.from_pretrained(settings.checkpoint_folder(), dtype="auto")
    try:
        paths, export_s = cached_exports(settings, model)
    except Exception as exc:  # the exporter's failures are many and varied; report, don't crash
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        return {"status": "failed", "reason": f"ONNX export failed: {type(exc).__name__}: {first}"}
    threads = torch.get_num_threads()
    config = model.config
    if settings.tiny:
        image_batch, text_shape = 2, (2, 64)
    elif settings.quick:
        image_batch, text_shape = 8, (8, 256)
    else:
        image_batch, text_shape = 8, (8, 512)
    size = config.vision.image_size
    pixels = torch.randn(image_batch, 3, size, size, generator=torch.Generator().manual_seed(11))
    ids = random_ids(config.text.vocab_size, *text_shape, seed=11)
    ids[-1, text_shape[1] // 2 :] = config.text.pad_token_id  # one padded row, as batches have
    workloads = {
        "vision": ("pixel_values", pixels, model.get_image_features, auto.get_image_features,
                   image_batch, "images_per_s"),
        "text": ("input_ids", ids, model.get_text_features, auto.get_text_features,
                 int((ids != 0).sum()), "tokens_per_s"),
    }  # fmt: skip
    result: dict[str, Any] = {
        "status": "ok",
        "onnxruntime": _version("onnxruntime"),
        "openvino": _version("openvino"),
        "export_s": round(export_s, 1),
        "threads": threads,
        "load_average": load_average(),
        "mrag_default_dtype": str(auto.dtype_choice),
        "rows": [],
    }
    rounds = 2 if settings.tiny else 3 if settings.quick else 5
    native_bf16 = cpu_dtype().dtype == "bfloat16"
    references = {}
    with torch.inference_mode():
        for tower, (_, tensor, fp32_fn, *_) in workloads.items():
            references[tower] = normalised(fp32_fn(tensor).float().numpy())
    for tower, runtime, path, factory in peer_runtimes(paths):
        if runtime.endswith("bfloat16") and not native_bf16:
            # Emulated bf16 runs at a few percent of float32 (0.17 images/s measured): no peer.
            reason = "this CPU has no native bfloat16"
            result["rows"].append(
                {"tower": tower, "runtime": runtime, "status": "skipped", "reason": reason}
            )
            continue
        runner = functools.partial(factory, path, threads)
        row = _peer_row(tower, runtime, runner, workloads[tower], references[tower], rounds,
                        same_dtype=auto.dtype == model.dtype)  # fmt: skip
        result["rows"].append(row)
    result["mrag_dtypes"] = [dtype_name(torch.float32), dtype_name(auto.dtype)]
    return result


def _peer_row(
    tower: str,
    runtime: str,
    factory: Any,
    workload: tuple[Any, ...],
    reference: np.ndarray,
    rounds: int,
    *,
    same_dtype: bool,
) -> dict[str, Any]:
    """One peer beside mrag float32 and mrag auto, timed in turns (:func:`alternate`).

    Taking turns matters on a shared machine: a peer timed a minute after mrag can see another
    load, and the ratio would say more about the load than about the runtimes.
    """
    input_name, tensor, fp32_fn, auto_fn, units, unit_name = workload
    feed = {input_name: tensor.numpy()}
    try:
        runner = factory(input_name, list(tensor.shape))
        output = runner(feed)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {str(exc)[:300]}"
        return {"tower": tower, "runtime": runtime, "status": "failed", "reason": reason}
    with torch.inference_mode():
        turns = {"peer": lambda: runner(feed), "float32": lambda: fp32_fn(tensor)}
        if not same_dtype:
            turns["auto"] = lambda: auto_fn(tensor)
        timings = alternate(turns, rounds=rounds)
    rate = {name: units / timing.best for name, timing in timings.items()}
    rate.setdefault("auto", rate["float32"])
    deviation = float(np.abs(normalised(output) - reference).max())
    print(
        f"  peer {tower:6s} {runtime:20s}: {rate['peer']:8.2f} {unit_name} "
        f"(mrag fp32 {rate['float32']:.2f}, auto {rate['auto']:.2f}, in turns), "
        f"max |Δ| {deviation:.2e}",
        flush=True,
    )
    return {
        "tower": tower,
        "runtime": runtime,
        "status": "ok",
        "workload": list(tensor.shape),
        unit_name: round(rate["peer"], 2),
        "mrag_float32_" + unit_name: round(rate["float32"], 2),
        "mrag_auto_" + unit_name: round(rate["auto"], 2),
        "mrag_float32_over_peer": round(rate["float32"] / rate["peer"], 3),
        "mrag_auto_over_peer": round(rate["auto"] / rate["peer"], 3),
        "max_abs_diff_normalised": deviation,
        "rounds": rounds,
        **timings["peer"].to_dict(),
    }
