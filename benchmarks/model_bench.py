"""Model throughput: images/s and tokens/s of both towers in float32 and bfloat16.

Every figure is the best of several runs of ``get_image_features`` / ``get_text_features`` under
``torch.inference_mode`` (the path ``encode_image``/``encode_text`` take), on random inputs of
the real shapes. Achieved GFLOP/s use the operation counts of :mod:`benchmarks.flops`; the ratio
to the ceiling uses the best GEMM throughput of the same dtype from :mod:`benchmarks.ceiling`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from mrag.model import JinaClipModel, fused
from mrag.model.precision import choose_dtype

from .ceiling import gemm_routes
from .common import Settings, Timing, clock, dtype_name, load_average, measure
from .flops import image_flops, text_flops

DTYPES = (torch.float32, torch.bfloat16)


def plan(settings: Settings) -> dict[str, Any]:
    """Batch sizes and lengths for this run."""
    if settings.tiny:
        return {
            "image_batches": (1, 2),
            "text": [(1, 32), (2, 32)],
            "mix": 8,
            "budget": 0.1,
            "min_reps": 1,
        }
    if settings.quick:
        return {
            "image_batches": (1, 8),
            "text": [(8, 64), (8, 512)],
            "mix": 16,
            "budget": 1.0,
            "min_reps": 1,
        }
    text = [(batch, length) for length in (64, 256, 512) for batch in (1, 8, 32)]
    return {"image_batches": (1, 8, 32), "text": text, "mix": 96, "budget": 4.0, "min_reps": 2}


def random_ids(vocab: int, batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """Ids of real tokens (never the pad id 0), ``[CLS]``-free: the cost does not depend on them."""
    generator = torch.Generator().manual_seed(seed)
    low = min(1000, vocab // 4)
    return torch.randint(low, vocab, (batch, length), generator=generator)


def length_mix(count: int, max_length: int = 512, seed: int = 0) -> list[int]:
    """Token counts like an ingestion run produces: most chunks near the 512-token budget (the
    chunker fills chunks up to it), the last chunk of each section shorter, and a tail of short
    texts (captions, one-paragraph pages)."""
    rng = random.Random(seed)
    lengths = []
    for _ in range(count):
        draw = rng.random()
        if draw < 0.6:
            lengths.append(rng.randint(int(max_length * 0.8), max_length))
        elif draw < 0.85:
            lengths.append(rng.randint(max_length // 5, int(max_length * 0.8)))
        else:
            lengths.append(rng.randint(8, max_length // 5))
    return lengths


def load(settings: Settings, dtype: torch.dtype) -> JinaClipModel:
    return JinaClipModel.from_pretrained(settings.checkpoint_folder(), dtype=dtype)


def _ratio(gflops: float, ceiling: dict[str, Any] | None, dtype: torch.dtype) -> float | None:
    if not ceiling or ceiling.get("status") != "ok":
        return None
    best = ceiling["dtypes"][dtype_name(dtype)]["gflops"]
    return round(gflops / best, 3) if best else None


class GemmProbe:
    """The fastest GEMM of a dtype, timed between the runs of a tower workload.

    On a machine shared with other work, a ceiling measured minutes earlier may have seen a
    different load. Timing the best shape of the ceiling section (or w1/w2 of 8 images when it
    did not run), through each route the ceiling timed, right beside each tower run gives a
    ratio in which both saw the same load.
    """

    def __init__(self, ceiling: dict[str, Any] | None, dtype: torch.dtype, tiny: bool) -> None:
        shape = (128 if tiny else 1576, 768, 2048)
        if ceiling and ceiling.get("status") == "ok":
            rows = ceiling["dtypes"][dtype_name(dtype)]["shapes"]
            shape = tuple(max(rows, key=lambda row: row["gflops_best"])["shape"])
        m, k, n = shape
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(m, k, generator=generator).to(dtype)
        self.w = torch.randn(n, k, generator=generator).to(dtype)
        self.routes = list(gemm_routes(dtype).values())
        self.flop = 2.0 * m * k * n
        self.best_s = float("inf")

    def sample(self, repeats: int = 3) -> None:
        with torch.inference_mode():
            for _ in range(repeats):
                for product in self.routes:
                    start = clock()
                    product(self.x, self.w)
                    self.best_s = min(self.best_s, clock() - start)

    @property
    def gflops(self) -> float:
        return self.flop / self.best_s / 1e9


def measure_beside(
    fn: Callable[[], object], probe: GemmProbe, *, min_reps: int, budget_s: float
) -> Timing:
    """:func:`measure` of ``fn``, with the GEMM probe sampled before and after every run."""
    fn()
    times: list[float] = []
    spent = 0.0
    while len(times) < 10 and (len(times) < min_reps or spent < budget_s):
        probe.sample()
        start = clock()
        fn()
        elapsed = clock() - start
        times.append(elapsed)
        spent += elapsed
    probe.sample()
    return Timing(times)


def _beside(gflops: float, probe: GemmProbe) -> dict[str, Any]:
    return {
        "ceiling_beside_gflops": round(probe.gflops, 1),
        "ratio_to_ceiling_beside": round(gflops / probe.gflops, 3),
    }


def bench_vision(
    model: JinaClipModel, dtype: torch.dtype, setup: dict[str, Any], ceiling: dict[str, Any] | None
) -> list[dict[str, Any]]:
    config = model.config.vision
    flop = image_flops(config)
    rows = []
    for batch in setup["image_batches"]:
        generator = torch.Generator().manual_seed(batch)
        pixels = torch.randn(batch, 3, config.image_size, config.image_size, generator=generator)
        probe = GemmProbe(ceiling, dtype, setup["tiny"])
        with torch.inference_mode():
            timing = measure_beside(
                lambda p=pixels: model.get_image_features(p),
                probe,
                min_reps=setup["min_reps"],
                budget_s=setup["budget"],
            )
        gflops = batch * flop / timing.best / 1e9
        row = {
            "dtype": dtype_name(dtype),
            "batch": batch,
            "images_per_s": round(batch / timing.best, 2),
            "gflops": round(gflops, 1),
            "ratio_to_ceiling": _ratio(gflops, ceiling, dtype),
            **_beside(gflops, probe),
            **timing.to_dict(),
        }
        rows.append(row)
        print(
            f"  vision {row['dtype']:8s} batch {batch:3d}: {row['images_per_s']:8.2f} img/s "
            f"{row['gflops']:7.1f} GFLOP/s ratio {row['ratio_to_ceiling']}, "
            f"beside {row['ratio_to_ceiling_beside']} of {row['ceiling_beside_gflops']}",
            flush=True,
        )
    return rows


def bench_text(
    model: JinaClipModel, dtype: torch.dtype, setup: dict[str, Any], ceiling: dict[str, Any] | None
) -> list[dict[str, Any]]:
    config = model.config.text
    rows = []
    for batch, length in setup["text"]:
        ids = random_ids(config.vocab_size, batch, length, seed=batch * 1000 + length)
        probe = GemmProbe(ceiling, dtype, setup["tiny"])
        with torch.inference_mode():
            timing = measure_beside(
                lambda i=ids: model.get_text_features(i),
                probe,
                min_reps=setup["min_reps"],
                budget_s=setup["budget"],
            )
        gflops = text_flops(config, batch, length) / timing.best / 1e9
        row = {
            "dtype": dtype_name(dtype),
            "batch": batch,
            "length": length,
            "tokens_per_s": round(batch * length / timing.best, 1),
            "texts_per_s": round(batch / timing.best, 2),
            "gflops": round(gflops, 1),
            "ratio_to_ceiling": _ratio(gflops, ceiling, dtype),
            **_beside(gflops, probe),
            **timing.to_dict(),
        }
        rows.append(row)
        print(
            f"  text   {row['dtype']:8s} {batch:3d} x {length:3d}: {row['tokens_per_s']:8.1f} "
            f"tok/s {row['gflops']:7.1f} GFLOP/s ratio {row['ratio_to_ceiling']}, "
            f"beside {row['ratio_to_ceiling_beside']} of {row['ceiling_beside_gflops']}",
            flush=True,
        )
    return rows


def bench_mix(
    model: JinaClipModel, dtype: torch.dtype, setup: dict[str, Any], ceiling: dict[str, Any] | None
) -> dict[str, Any]:
    """A realistic mix of lengths, batched in 32s as ingestion batches them (``encode_ids``)."""
    config = model.config.text
    lengths = length_mix(setup["mix"], max_length=512 if not setup.get("tiny") else 64)
    plan_ = model.text_batch_plan(lengths, 32)
    batches = []
    for index, batch in enumerate(plan_):
        longest = max(lengths[i] for i in batch)
        ids = random_ids(config.vocab_size, len(batch), longest, seed=index)
        for row, i in enumerate(batch):
            ids[row, lengths[i] :] = config.pad_token_id
        batches.append(ids)

    def run_all() -> None:
        for ids in batches:
            model.get_text_features(ids)

    with torch.inference_mode():
        # The model is warm from the runs before; a quick run skips a separate warm-up pass.
        warmup = 0 if setup["min_reps"] < 2 else 1
        timing = measure(run_all, warmup=warmup, min_reps=1, max_reps=3, budget_s=setup["budget"])
    real = sum(lengths)
    if model.packs_text:  # each sequence runs at its own length
        padded = real
        executed = sum(text_flops(config, 1, length) for length in lengths)
    else:
        padded = sum(ids.numel() for ids in batches)
        executed = sum(text_flops(config, ids.shape[0], ids.shape[1]) for ids in batches)
    gflops = executed / timing.best / 1e9
    result = {
        "dtype": dtype_name(dtype),
        "texts": len(lengths),
        "real_tokens": real,
        "mean_length": round(real / len(lengths), 1),
        "padding_waste": round((padded - real) / real, 4),
        "tokens_per_s": round(real / timing.best, 1),
        "gflops": round(gflops, 1),
        "ratio_to_ceiling": _ratio(gflops, ceiling, dtype),
        **timing.to_dict(),
    }
    print(
        f"  mix    {result['dtype']:8s} {len(lengths)} texts, mean {result['mean_length']} tok: "
        f"{result['tokens_per_s']:8.1f} tok/s ratio {result['ratio_to_ceiling']}",
        flush=True,
    )
    return result


def bench_query(model: JinaClipModel, dtype: torch.dtype, setup: dict[str, Any]) -> dict[str, Any]:
    """Latency of one short query (batch 1, 12 tokens) through ``encode_ids``: the path a search
    takes. At this size the tower reads all its weights for a dozen tokens, so the time is mostly
    memory traffic, which bf16 weights halve."""
    ids = random_ids(model.config.text.vocab_size, 1, 12, seed=5)[0].tolist()
    reps = 5 if setup.get("tiny") else 30
    timing = measure(
        lambda: model.encode_ids([ids]), warmup=3, min_reps=reps, max_reps=reps, budget_s=0
    )
    row = {
        "dtype": dtype_name(dtype),
        "tokens": len(ids),
        "p50_ms": round(timing.median * 1000, 2),
        "best_ms": round(timing.best * 1000, 2),
        "reps": len(timing.times),
    }
    print(
        f"  query  {row['dtype']:8s} 1 x {len(ids)}: p50 {row['p50_ms']:.1f} ms, "
        f"best {row['best_ms']:.1f} ms",
        flush=True,
    )
    return row


def bench_cuda(settings: Settings, setup: dict[str, Any]) -> dict[str, Any]:
    """The same towers on a CUDA device in its auto dtype, when there is one."""
    if not torch.cuda.is_available():
        return {"status": "skipped", "reason": "no CUDA device"}
    model = JinaClipModel.from_pretrained(settings.checkpoint_folder(), device="cuda")
    config = model.config
    rows = []
    with torch.inference_mode():
        for batch in (8, 32):
            pixels = torch.randn(batch, 3, config.vision.image_size, config.vision.image_size)
            pixels = pixels.to("cuda")

            def vision(p: torch.Tensor = pixels) -> None:
                model.get_image_features(p)
                torch.cuda.synchronize()

            timing = measure(vision, min_reps=3, budget_s=setup["budget"])
            rows.append({"tower": "vision", "batch": batch, "rate": batch / timing.best})
        ids = random_ids(config.text.vocab_size, 8, 512).to("cuda")

        def text() -> None:
            model.get_text_features(ids)
            torch.cuda.synchronize()

        timing = measure(text, min_reps=3, budget_s=setup["budget"])
        rows.append({"tower": "text", "batch": 8, "length": 512, "rate": 8 * 512 / timing.best})
    return {
        "status": "ok",
        "device": torch.cuda.get_device_name(0),
        "dtype": str(model.dtype_choice),
        "rows": rows,
    }


def embedding_agreement(reference: JinaClipModel, other: JinaClipModel) -> dict[str, float]:
    """Largest difference between the normalised embeddings of two models on the same inputs."""
    vision = reference.config.vision
    text = reference.config.text
    generator = torch.Generator().manual_seed(7)
    pixels = torch.randn(4, 3, vision.image_size, vision.image_size, generator=generator)
    lengths = [text_len for text_len in (512, 300, 77, 12) if text_len <= 512]
    ids = random_ids(text.vocab_size, len(lengths), max(lengths), seed=7)
    for row, length in enumerate(lengths):
        ids[row, length:] = text.pad_token_id
    with torch.inference_mode():
        image_a = F.normalize(reference.get_image_features(pixels).float(), dim=-1)
        image_b = F.normalize(other.get_image_features(pixels).float(), dim=-1)
        text_a = F.normalize(reference.get_text_features(ids).float(), dim=-1)
        text_b = F.normalize(other.get_text_features(ids).float(), dim=-1)
    return {
        "image_max_abs_diff": float((image_a - image_b).abs().max()),
        "text_max_abs_diff": float((text_a - text_b).abs().max()),
        "image_min_cosine": float((image_a * image_b).sum(-1).min()),
        "text_min_cosine": float((text_a * text_b).sum(-1).min()),
    }


def fast_path_ab(model: JinaClipModel, setup: dict[str, Any]) -> list[dict[str, Any]]:
    """What each of the model's fast paths buys, A/B in one process, runs alternating.

    - fused kernels (:mod:`mrag.model.fused`) on and off, on both towers, where they apply
      (bfloat16; at float32 they would time the same code twice);
    - few-row products (packed weights in bfloat16, ``weight @ x.T`` in float32) on and off,
      on a 12-token query, where this CPU has them;
    - packed text batches on and off, on the mix of lengths (each side batched as
      ``encode_ids`` batches it: packed batches are filled, padded ones capped at 10% padding).
    """
    config = model.config
    size = config.vision.image_size
    batch = 2 if setup.get("tiny") else 8
    length = 32 if setup.get("tiny") else 512
    pixels = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(11))
    ids = random_ids(config.text.vocab_size, batch, length, seed=11)
    lengths = length_mix(setup["mix"], max_length=512 if not setup.get("tiny") else 64)
    sequences = [
        random_ids(config.text.vocab_size, 1, n, seed=i)[0].tolist() for i, n in enumerate(lengths)
    ]
    transformer = model.text_model.transformer

    def mix() -> None:
        model.encode_ids(sequences, batch_size=32)

    def without_fused(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            with fused.disabled():
                return fn()

        return run

    def unpacked(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            transformer.pack_sequences = False
            try:
                return fn()
            finally:
                transformer.pack_sequences = True

        return run

    def vision() -> None:
        model.get_image_features(pixels)

    def text() -> None:
        model.get_text_features(ids)

    query = random_ids(config.text.vocab_size, 1, 12, seed=12)

    def short() -> None:
        model.get_text_features(query)

    def plain_rows() -> None:
        with fused.unpacked():
            model.get_text_features(query)

    cases = [("packed text batches", f"mix of {len(lengths)} texts", mix, unpacked(mix))]
    if model.dtype == torch.bfloat16:
        cases[:0] = [
            ("fused kernels", f"vision batch {batch}", vision, without_fused(vision)),
            ("fused kernels", f"text {batch} x {length}", text, without_fused(text)),
        ]
    if fused.has_few_row_path(model.dtype):
        cases.append(("few-row products", "query 1 x 12", short, plain_rows))
    reps = 1 if setup.get("tiny") else (3 if setup["min_reps"] < 2 else 5)
    rows = []
    with torch.inference_mode():
        for change, workload, on, off in cases:
            on(), off()
            best = {"on": float("inf"), "off": float("inf")}
            for rep in range(reps):
                order = (("on", on), ("off", off)) if rep % 2 == 0 else (("off", off), ("on", on))
                for side, fn in order:
                    start = clock()
                    fn()
                    best[side] = min(best[side], clock() - start)
            row = {
                "change": change,
                "workload": workload,
                "dtype": dtype_name(model.dtype),
                "on_s": round(best["on"], 4),
                "off_s": round(best["off"], 4),
                "speedup": round(best["off"] / best["on"], 3),
            }
            rows.append(row)
            print(
                f"  a/b {change} ({row['dtype']}), {workload}: {row['off_s']} -> {row['on_s']} s "
                f"({row['speedup']}x)",
                flush=True,
            )
    return rows


_ALLOCATOR_CHILD = """
import json, sys, time, torch
from mrag.model import JinaClipModel
from mrag.model.allocator import keep_freed_memory
folder, batch, length, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if threads:
    torch.set_num_threads(threads)
model = JinaClipModel.from_pretrained(folder)
size = model.config.vision.image_size
pixels = torch.randn(batch, 3, size, size)
vocab = model.config.text.vocab_size
ids = torch.randint(min(1000, vocab // 4), vocab, (batch, length))
best = {}
with torch.inference_mode():
    for name, fn in (("vision", lambda: model.get_image_features(pixels)),
                     ("text", lambda: model.get_text_features(ids))):
        fn()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        best[name] = min(times)
print(json.dumps({"kept": keep_freed_memory(), **best}))
"""


def allocator_ab(settings: Settings, setup: dict[str, Any]) -> list[dict[str, Any]]:
    """Keeping freed memory (:mod:`mrag.model.allocator`) on and off.

    The setting is per process, so this one is A/B in child processes, alternating (two of
    each), each loading the model in the default dtype and timing both towers (best of 3).
    Wall clock: child processes do not share this process's CPU-time clock.
    """
    import json
    import os
    import subprocess
    import sys

    batch, length = (2, 32) if setup.get("tiny") else (8, 512)
    best: dict[str, dict[str, float]] = {"on": {}, "off": {}}
    rounds = 1 if setup.get("tiny") else 2
    for _ in range(rounds):
        for side, value in (("off", "0"), ("on", "1")):
            env = {**os.environ, "MRAG_KEEP_FREED_MEMORY": value}
            args = [str(settings.checkpoint_folder()), str(batch), str(length)]
            args.append(str(settings.threads or 0))
            done = subprocess.run(
                [sys.executable, "-c", _ALLOCATOR_CHILD, *args],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            if measured.pop("kept") != (side == "on"):
                return []  # not glibc, or the user set the thresholds: nothing to compare
            for tower, seconds in measured.items():
                best[side][tower] = min(best[side].get(tower, float("inf")), seconds)
    rows = []
    for tower, workload in (
        ("vision", f"vision batch {batch}"),
        ("text", f"text {batch} x {length}"),
    ):
        on, off = best["on"][tower], best["off"][tower]
        rows.append(
            {
                "change": "freed memory kept",
                "workload": workload,
                "dtype": str(choose_dtype("auto").dtype),
                "on_s": round(on, 4),
                "off_s": round(off, 4),
                "speedup": round(off / on, 3),
            }
        )
        print(f"  a/b freed memory kept, {workload}: {off:.3f} -> {on:.3f} s", flush=True)
    return rows


def alibi_mask_probe(model: JinaClipModel, setup: dict[str, Any]) -> dict[str, Any]:
    """What the text tower's (batch, heads, L, L) float ALiBi mask costs inside SDPA.

    Times one layer's attention at 8 x 512 (the size ingestion runs) three ways: the mask of a
    batch with padding (one bias per sequence), the bias broadcast over the batch (what a batch
    without padding gets), and no mask at all (the kernel's unmasked speed; not a correct model,
    only a bound). Also names the kernel that runs.
    """
    text = model.config.text
    batch, length = (2, 64) if setup.get("tiny") else (8, 512)
    heads, head_dim = text.num_attention_heads, text.head_dim
    generator = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(batch, heads, length, head_dim, generator=generator) for _ in range(3))
    ids = random_ids(text.vocab_size, batch, length)
    padded = ids.clone()
    padded[-1, -1] = text.pad_token_id  # one padded key: the per-sequence mask is needed
    transformer = model.text_model.transformer
    with torch.inference_mode():
        start = clock()
        full = transformer.attention_bias(padded, torch.float32).expand(batch, -1, -1, -1)
        build_s = clock() - start
        shared = transformer.attention_bias(ids, torch.float32)[:1].expand(batch, -1, -1, -1)
        results: dict[str, Any] = {
            "batch": batch,
            "length": length,
            "mask_mb": round(full.numel() * 4 / 2**20, 1),
            "build_mask_s": round(build_s, 5),
        }
        for name, mask in (("full_mask", full), ("broadcast_mask", shared), ("no_mask", None)):
            timing = measure(
                lambda m=mask: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
                warmup=1,
                min_reps=3,
                max_reps=20,
                budget_s=setup["budget"] / 2,
            )
            results[f"{name}_s"] = round(timing.best, 5)
        results["kernel"] = _sdpa_kernel(q, k, v, full)
        layers = text.num_hidden_layers
        results["mask_cost_per_forward_s"] = round(
            layers * (results["full_mask_s"] - results["no_mask_s"]) + build_s, 4
        )
    return results


def _sdpa_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> str:
    from torch.profiler import profile

    with profile() as prof:
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    names = [event.key for event in prof.key_averages() if "attention" in event.key]
    return ", ".join(sorted(set(names))) or "unknown"


def run(settings: Settings, ceiling: dict[str, Any] | None) -> dict[str, Any]:
    setup = plan(settings)
    setup["tiny"] = settings.tiny
    result: dict[str, Any] = {
        "status": "ok",
        "load_average": load_average(),
        "vision": [],
        "text": [],
        "mix": [],
        "query": [],
        "auto_dtype": str(choose_dtype("auto")),
    }
    models: dict[str, JinaClipModel] = {}
    for dtype in DTYPES:
        model = load(settings, dtype)
        models[dtype_name(dtype)] = model
        result["vision"] += bench_vision(model, dtype, setup, ceiling)
        result["text"] += bench_text(model, dtype, setup, ceiling)
        result["mix"].append(bench_mix(model, dtype, setup, ceiling))
    # Batch-1 queries alternate between the dtypes, so load from other work hits both alike.
    for _ in range(1 if settings.tiny else 2):
        for dtype in DTYPES:
            result["query"].append(bench_query(models[dtype_name(dtype)], dtype, setup))
    result["bf16_agreement"] = embedding_agreement(models["float32"], models["bfloat16"])
    result["alibi_mask"] = alibi_mask_probe(models["float32"], setup)
    result["fast_paths"] = fast_path_ab(models[str(choose_dtype("auto").dtype)], setup)
    del models
    result["fast_paths"] += allocator_ab(settings, setup)
    result["bf16_speedup"] = _speedups(result)
    result["cuda"] = bench_cuda(settings, setup)
    result["load_average_end"] = load_average()
    return result


def _speedups(result: dict[str, Any]) -> dict[str, float]:
    """bf16 throughput over float32 throughput for each workload measured in both."""
    out: dict[str, float] = {}
    for key, label, rate in (("vision", "batch", "images_per_s"), ("text", None, "tokens_per_s")):
        by: dict[tuple[Any, ...], dict[str, float]] = {}
        for row in result[key]:
            ident = (row["batch"],) if label else (row["batch"], row["length"])
            by.setdefault(ident, {})[row["dtype"]] = row[rate]
        for ident, rates in by.items():
            if "float32" in rates and "bfloat16" in rates and rates["float32"]:
                name = f"{key} " + " x ".join(str(part) for part in ident)
                out[name] = round(rates["bfloat16"] / rates["float32"], 2)
    mix = {row["dtype"]: row["tokens_per_s"] for row in result["mix"]}
    if mix.get("float32"):
        out["text mix"] = round(mix.get("bfloat16", float("nan")) / mix["float32"], 2)
    return out
