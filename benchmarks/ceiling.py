"""The physical limit: how fast this machine multiplies matrices of the model's own shapes.

Each shape is timed as the model runs it (activations times a transposed weight), through each
route torch offers: ``F.linear`` (MKL or oneDNN matmul) and, where the model uses it at bf16,
oneDNN's inner product (:mod:`mrag.model.fused`); best of several runs. The ceiling of a dtype
is the best throughput over shapes and routes: no layer of the model can beat it, so a tower's
achieved GFLOP/s divided by it is its efficiency.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from mrag.model import fused
from mrag.model.config import JinaClipConfig

from .common import Settings, dtype_name, load_average, measure
from .flops import text_gemm_shapes, vision_gemm_shapes

DTYPES = (torch.float32, torch.bfloat16)


def gemm_shapes(config: JinaClipConfig, quick: bool) -> list[tuple[str, tuple[int, int, int]]]:
    """Distinct (M, K, N) shapes: vision at 8 images, text at 8 x 512 tokens."""
    named: list[tuple[str, tuple[int, int, int]]] = []
    vision_names = ("vision qkv", "vision proj", "vision w1/w2", "vision w1/w2", "vision w3")
    text_names = ("text Wqkv", "text out_proj", "text gated", "text wo")
    for name, shape in zip(vision_names, vision_gemm_shapes(config.vision, 8), strict=True):
        named.append((name, shape))
    for name, shape in zip(text_names, text_gemm_shapes(config.text, 8 * 512), strict=True):
        named.append((name, shape))
    seen: set[tuple[int, int, int]] = set()
    unique = []
    for name, shape in named:
        if shape not in seen:
            seen.add(shape)
            unique.append((name, shape))
    if quick:
        keep = {"vision w1/w2", "vision w3", "text gated"}
        unique = [item for item in unique if item[0] in keep]
    return unique


def gemm_routes(dtype: torch.dtype) -> dict[str, Callable[[torch.Tensor, torch.Tensor], object]]:
    """The ways a product of this dtype can run: ``F.linear``, and oneDNN's inner product where
    :mod:`mrag.model.fused` uses it (it falls back to ``F.linear`` elsewhere)."""
    routes: dict[str, Callable[[torch.Tensor, torch.Tensor], object]] = {"F.linear": F.linear}
    probe = torch.zeros(1, 1, dtype=dtype)
    with torch.inference_mode():
        if fused._applies(probe, probe):
            routes["oneDNN"] = fused.linear
    return routes


def gemm_gflops(m: int, k: int, n: int, dtype: torch.dtype, budget_s: float) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(m, k, generator=generator).to(dtype)
    w = torch.randn(n, k, generator=generator).to(dtype)
    flop = 2.0 * m * k * n
    timings = {}
    with torch.inference_mode():
        for route, product in gemm_routes(dtype).items():
            timings[route] = measure(
                lambda p=product: p(x, w), warmup=2, min_reps=5, max_reps=40, budget_s=budget_s
            )
    route, timing = min(timings.items(), key=lambda item: item[1].best)
    return {
        "shape": [m, k, n],
        "gflops_best": round(flop / timing.best / 1e9, 1),
        "gflops_median": round(flop / timing.median / 1e9, 1),
        "route": route,
        "routes_gflops_best": {
            name: round(flop / each.best / 1e9, 1) for name, each in timings.items()
        },
        **timing.to_dict(),
    }


def run(settings: Settings, config: JinaClipConfig) -> dict[str, Any]:
    """Best GEMM throughput per dtype at the model's shapes."""
    from mrag.testing import preset_config

    # The ceiling is a property of the machine at the real model's shapes, whatever preset runs.
    shapes = gemm_shapes(preset_config("full"), settings.quick or settings.tiny)
    if settings.tiny:
        shapes = shapes[:1]
    budget = 0.1 if settings.tiny else (1.0 if settings.quick else 2.5)
    result: dict[str, Any] = {"status": "ok", "load_average": load_average(), "dtypes": {}}
    for dtype in DTYPES:
        rows = []
        for name, (m, k, n) in shapes:
            if settings.tiny:
                m = min(m, 128)
            row = gemm_gflops(m, k, n, dtype, budget)
            row["name"] = name
            rows.append(row)
            routes = ", ".join(f"{r} {g}" for r, g in row["routes_gflops_best"].items())
            print(
                f"  ceiling {dtype_name(dtype):8s} {name:14s} {m}x{k}x{n}: "
                f"{row['gflops_best']:.1f} GFLOP/s ({routes})",
                flush=True,
            )
        result["dtypes"][dtype_name(dtype)] = {
            "gflops": max(row["gflops_best"] for row in rows),
            "shapes": rows,
        }
    fp32 = result["dtypes"]["float32"]["gflops"]
    bf16 = result["dtypes"]["bfloat16"]["gflops"]
    result["bf16_over_fp32"] = round(bf16 / fp32, 2) if fp32 else None
    return result
