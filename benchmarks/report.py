"""Targets and the printed / Markdown tables of a benchmark result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _find(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for row in rows:
        if all(row.get(key) == value for key, value in match.items()):
            return row
    return None


def _ok(section: dict[str, Any] | None) -> bool:
    return bool(section) and section.get("status") == "ok"


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value and met / missed / not measured."""
    sections = result["sections"]
    out: list[dict[str, Any]] = []

    def add(name: str, goal: str, value: Any, met: bool | None, note: str = "") -> None:
        out.append(
            {
                "target": name,
                "goal": goal,
                "value": value,
                "status": "not measured" if met is None else ("met" if met else "missed"),
                "note": note,
            }
        )

    model = sections.get("model")
    if _ok(model):
        # Where bf16 is emulated its "ceiling" is the emulation's: no target to speak of.
        native_bf16 = str(model.get("auto_dtype", "")).startswith("bfloat16")
        for dtype, tower, match, goal in (
            ("bfloat16", "vision", {"batch": 8}, 0.85),
            ("bfloat16", "text", {"batch": 8, "length": 512}, 0.85),
            ("float32", "vision", {"batch": 8}, 0.85),
        ):
            shape = " x ".join(str(v) for v in match.values())
            name = f"{tower} {dtype} {shape} vs {dtype} GEMM ceiling"
            if dtype == "bfloat16" and not native_bf16:
                add(name, f">= {goal:.0%}", None, None, "bf16 is emulated on this CPU")
                continue
            row = _find(model[tower], dtype=dtype, **match)
            # The GEMM timed beside the tower saw the same load; the ceiling section may not.
            ratio = row and row.get("ratio_to_ceiling_beside", row["ratio_to_ceiling"])
            add(name, f">= {goal:.0%}", ratio, None if ratio is None else ratio >= goal)
        agreement = model.get("bf16_agreement", {})
        diff = max(agreement.get("image_max_abs_diff", 0), agreement.get("text_max_abs_diff", 0))
        add(
            "bf16 normalised embeddings vs fp32",
            "max |diff| <= 5e-3",
            f"{diff:.2e}" if agreement else None,
            (diff <= 5e-3) if agreement else None,
        )
    else:
        add("model targets", "", None, None, "model section did not run")
    ingestion = sections.get("ingestion")
    if _ok(ingestion):
        add(
            "padding waste (ingestion)",
            "<= 10%",
            ingestion["padding_waste"],
            ingestion["padding_waste"] <= 0.10,
        )
        add(
            "pipeline overhead (ingestion)",
            "<= 10% of wall",
            ingestion["pipeline_overhead"],
            ingestion["pipeline_overhead"] <= 0.10,
        )
        speedup = ingestion.get("auto_over_float32")
        add(
            "ingestion pages/s, default dtype over float32",
            ">= 3x",
            speedup,
            None if speedup is None else speedup >= 3.0,
            ingestion.get("dtype", ""),
        )
        share = ingestion["phase_share"]["model"]
        add("model share of ingestion time (default dtype)", ">= 90%", share, share >= 0.90)
    else:
        reason = (ingestion or {}).get("reason", "not run")
        add("padding waste / pipeline overhead", "<= 10%", None, None, reason)
    query = sections.get("query")
    for points, goal in ((10_000, 20.0), (100_000, 20.0)):
        row = _find(query["rows"], points=points) if _ok(query) else None
        add(
            f"end-to-end text query p50 at {points // 1000}k points",
            f"<= {goal:.0f} ms",
            row and row["total_p50_ms"],
            None if row is None else row["total_p50_ms"] <= goal,
        )
    store = sections.get("store")
    for points, goal in ((100_000, 5.0), (1_000_000, 10.0)):
        row = _find(store["rows"], backend="edge", points=points) if _ok(store) else None
        # The retriever's hybrid search: BM25, text and image legs in one batch.
        latency = (row or {}).get("hnsw_hybrid_p50_ms")
        recall = (row or {}).get("hnsw_recall_at_10")
        add(
            f"hybrid search p50 at {points // 1000}k points (Edge, HNSW)",
            f"<= {goal:.0f} ms",
            latency,
            None if latency is None else latency <= goal,
        )
        add(
            f"dense recall@10 at {points // 1000}k points (Edge, HNSW)",
            ">= 0.95",
            recall,
            None if recall is None else recall >= 0.95,
        )
    share = ingestion.get("phase_share", {}).get("store") if _ok(ingestion) else None
    add(
        "store share of ingestion wall time",
        "<= 5%",
        share,
        None if share is None else share <= 0.05,
    )
    peer = sections.get("peer")
    if _ok(peer):
        default = str(peer.get("mrag_default_dtype", "float32")).split()[0]
        for tower in ("vision", "text"):
            same = [r for r in peer["rows"] if r["tower"] == tower and r["status"] == "ok"
                    and r["runtime"] == f"openvino {default}"]  # fmt: skip
            if not same:
                continue
            ratio = same[0]["mrag_auto_over_peer"]
            add(
                f"{tower}: mrag default dtype vs OpenVINO {default}",
                ">= 1.05x",
                ratio,
                ratio >= 1.05,
                "timed in turns",
            )
    else:
        add("faster than OpenVINO", ">= 1.05x", None, None, (peer or {}).get("reason", "not run"))
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


def table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table (also readable as plain text)."""
    cells = [[_fmt(cell) for cell in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for row in cells:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return lines


def render(result: dict[str, Any]) -> str:
    """All sections as Markdown tables."""
    lines = _machine(result["meta"])
    sections = result["sections"]
    for name, shown_when, section_lines in _SECTION_RENDERERS:
        section = sections.get(name)
        if shown_when(section):
            lines += section_lines(section)
    for name, section in sections.items():
        if section and section.get("status") == "failed":
            lines.append(f"Section {name} failed: {section.get('reason')}")
    lines += ["### Targets", ""]
    lines += table(
        ["target", "goal", "measured", "status", "note"],
        [[t["target"], t["goal"], t["value"], t["status"], t["note"]] for t in result["targets"]],
    )
    return "\n".join(lines) + "\n"


def _machine(meta: dict[str, Any]) -> list[str]:
    """The machine and the run, above the tables."""
    machine = meta["machine"]
    return [
        f"Machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs, "
        f"{machine['memory_gib']} GiB; flags {' '.join(machine['cpu_flags'])}; "
        f"torch {machine['torch']} with {machine['torch_threads']} threads; "
        f"load average at start {_fmt(machine['load_average_at_start'])}.",
        f"Run: preset {meta['preset']}, {'quick' if meta['quick'] else 'full'}, "
        f"{meta['elapsed_s']:.0f} s, {meta['started']}; "
        f"timed by {meta.get('clock', 'wall clock')}.",
        "",
    ]


def _ceiling(ceiling: dict[str, Any]) -> list[str]:
    """Best GEMM throughput per dtype and layer shape."""
    lines: list[str] = []
    lines += [
        "### Ceiling (best GEMM throughput at the model's shapes, F.linear or oneDNN)",
        "",
    ]
    rows = []
    for dtype, data in ceiling["dtypes"].items():
        for shape in data["shapes"]:
            rows.append(
                [
                    dtype,
                    shape["name"],
                    "x".join(map(str, shape["shape"])),
                    shape["gflops_best"],
                    shape["gflops_median"],
                    shape.get("route", "F.linear"),
                ]
            )
    header = ["dtype", "layer", "M x K x N", "GFLOP/s best", "GFLOP/s median", "best route"]
    lines += table(header, rows)
    lines += [
        "",
        "Ceiling: "
        + ", ".join(f"{d} {v['gflops']} GFLOP/s" for d, v in ceiling["dtypes"].items())
        + f" (bf16/fp32 {ceiling['bf16_over_fp32']}x)",
        "",
    ]
    return lines


def _model(model: dict[str, Any]) -> list[str]:
    """The towers' rates per dtype and batch, and what each fast path buys."""
    lines: list[str] = []
    lines += ["### Model (best of several runs)", ""]
    rows = [
        [
            r["dtype"],
            r["batch"],
            r["images_per_s"],
            r["gflops"],
            _pct(r["ratio_to_ceiling"]),
            r.get("ceiling_beside_gflops"),
            _pct(r.get("ratio_to_ceiling_beside")),
        ]
        for r in model["vision"]
    ]
    lines += table(
        [
            "vision dtype",
            "batch",
            "images/s",
            "GFLOP/s",
            "of ceiling",
            "GEMM beside",
            "of GEMM beside",
        ],
        rows,
    )
    lines.append("")
    rows = [
        [
            r["dtype"],
            r["batch"],
            r["length"],
            r["tokens_per_s"],
            r["gflops"],
            _pct(r["ratio_to_ceiling"]),
            r.get("ceiling_beside_gflops"),
            _pct(r.get("ratio_to_ceiling_beside")),
        ]
        for r in model["text"]
    ]
    rows += [
        [
            r["dtype"],
            f"mix of {r['texts']}",
            f"mean {r['mean_length']}",
            r["tokens_per_s"],
            r["gflops"],
            _pct(r["ratio_to_ceiling"]),
            "-",
            "-",
        ]
        for r in model["mix"]
    ]
    lines += table(
        [
            "text dtype",
            "batch",
            "length",
            "tokens/s",
            "GFLOP/s",
            "of ceiling",
            "GEMM beside",
            "of GEMM beside",
        ],
        rows,
    )
    lines.append("")
    if model.get("query"):
        lines.append("")
        lines += table(
            ["query dtype", "tokens", "p50 ms", "best ms", "runs"],
            [
                [r["dtype"], r["tokens"], r["p50_ms"], r["best_ms"], r["reps"]]
                for r in model["query"]
            ],
        )
        lines.append("")
    lines.append(f"auto on this machine: {model.get('auto_dtype', '-')}")
    lines.append("bf16 over fp32: " + _fmt(model["bf16_speedup"]))
    lines.append("bf16 vs fp32 normalised embeddings: " + _fmt(model["bf16_agreement"]))
    cuda = model.get("cuda") or {}
    if cuda.get("status") == "ok":
        lines.append(
            f"CUDA ({cuda['device']}, {cuda['dtype']}): "
            + "; ".join(f"{r['tower']} batch {r['batch']}: {r['rate']:.1f}/s" for r in cuda["rows"])
        )
    elif cuda:
        lines.append(f"CUDA: {cuda.get('status')} ({cuda.get('reason')})")
    mask = model.get("alibi_mask")
    if mask:
        lines.append(
            f"ALiBi mask at {mask['batch']} x {mask['length']}: {mask['mask_mb']} MB, kernel "
            f"{mask['kernel']}; one layer's SDPA {mask['full_mask_s'] * 1000:.1f} ms with the "
            f"full mask, {mask['broadcast_mask_s'] * 1000:.1f} ms broadcast over the batch, "
            f"{mask['no_mask_s'] * 1000:.1f} ms unmasked; building it "
            f"{mask['build_mask_s'] * 1000:.1f} ms; cost per forward about "
            f"{mask['mask_cost_per_forward_s'] * 1000:.0f} ms (padded path only)"
        )
    if model.get("fast_paths"):
        lines += ["", "What each fast path buys (A/B in this process, runs alternating):", ""]
        lines += table(
            ["change", "dtype", "workload", "off s", "on s", "speedup"],
            [
                [r["change"], r["dtype"], r["workload"], r["off_s"], r["on_s"], r["speedup"]]
                for r in model["fast_paths"]
            ],
        )
    lines.append("")
    return lines


def _peer(peer: dict[str, Any]) -> list[str]:
    """onnxruntime and OpenVINO beside mrag."""
    lines: list[str] = []
    lines += ["### Peers: onnxruntime and OpenVINO on the same ONNX exports", ""]
    if _ok(peer):
        rows = []
        for r in peer["rows"]:
            if r["status"] != "ok":
                blank = ["-"] * 4
                rows.append([r["tower"], r["runtime"], r["status"], *blank, r["reason"]])
                continue
            unit = "images_per_s" if r["tower"] == "vision" else "tokens_per_s"
            rows.append(
                [
                    r["tower"],
                    r["runtime"],
                    "x".join(map(str, r["workload"])),
                    r[unit],
                    r["mrag_float32_" + unit],
                    r["mrag_auto_" + unit],
                    f"{r['mrag_auto_over_peer']:.2f}x",
                    f"{r['max_abs_diff_normalised']:.2e}",
                ]
            )
        lines += table(
            [
                "tower",
                "runtime",
                "input",
                "peer rate",
                "mrag fp32",
                "mrag auto",
                "auto / peer",
                "max |diff| vs mrag fp32",
            ],
            rows,
        )
        lines += [
            "",
            f"(rates: images/s for vision, tokens/s for text; each peer timed in turns with mrag, "
            f"best of {peer['rows'][0].get('rounds', '-')} rounds; mrag auto is "
            f"{peer.get('mrag_default_dtype', '-')}; onnxruntime {peer.get('onnxruntime')}, "
            f"OpenVINO {peer.get('openvino') or 'not installed'})",
        ]
    else:
        lines.append(f"{peer['status']}: {peer.get('reason')}")
    lines.append("")
    return lines


def _ingestion(ingestion: dict[str, Any]) -> list[str]:
    """End-to-end ingestion rates, phases and failures."""
    lines: list[str] = []
    lines += ["### Ingestion (mrag.ingest end to end, default dtype and float32)", ""]
    if _ok(ingestion):
        runs = [ingestion, *([ingestion["float32"]] if "float32" in ingestion else [])]
        rows = [
            [
                r.get("dtype", "-"),
                r["files"],
                r["pages"],
                r["chunks"],
                r["images"],
                r["wall_s"],
                r["pages_per_s"],
                r["chunks_per_s"],
                r["images_per_s"],
                _pct(r["padding_waste"]),
                _pct(r["pipeline_overhead"]),
                _pct(r["phase_share"]["model"]),
                r["peak_rss_mb"],
            ]
            for r in runs
        ]
        lines += table(
            [
                "dtype",
                "files",
                "pages",
                "chunks",
                "images",
                "wall s",
                "pages/s",
                "chunks/s",
                "images/s",
                "padding",
                "overhead",
                "model share",
                "peak RSS MB",
            ],
            rows,
        )
        lines.append("")
        lines.append(f"Documents: {ingestion['documents']}.")
        for r in runs:
            lines.append(
                f"Phases (s), {r.get('dtype', '-')}: "
                + _fmt(r["phases_s"])
                + "; shares: "
                + ", ".join(f"{k} {_pct(v)}" for k, v in r["phase_share"].items())
            )
        if ingestion.get("auto_over_float32"):
            speedup = ingestion["auto_over_float32"]
            lines.append(f"Default dtype over float32: {speedup}x pages/s")
        i = ingestion
        if i["failed"]:
            lines.append(f"{i['failed']} file(s) failed: " + "; ".join(i["failures"][:3]))
    else:
        lines.append(f"{ingestion['status']}: {ingestion.get('reason')}")
    lines.append("")
    return lines


def _query(query: dict[str, Any]) -> list[str]:
    """Query latency per store size."""
    lines: list[str] = []
    lines += ["### Query latency", ""]
    if _ok(query):
        rows = [
            [
                r["points"],
                r["total_p50_ms"],
                r["total_p95_ms"],
                r["total_p99_ms"],
                r["embed_p50_ms"],
                r["search_p50_ms"],
                r["search_p95_ms"],
                r["peak_rss_mb"],
            ]
            for r in query["rows"]
        ]
        lines += table(
            [
                "points",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "embed p50",
                "search p50",
                "search p95",
                "peak RSS MB",
            ],
            rows,
        )
        lines += ["", f"Search: {query['search']}; store: {query['store']}."]
    else:
        lines.append(f"{query['status']}: {query.get('reason')}")
    lines.append("")
    return lines


def _store(store: dict[str, Any]) -> list[str]:
    """The embedded store beside qdrant-client local mode."""
    lines: list[str] = []
    lines += ["### Store (Qdrant Edge beside qdrant-client local mode)", ""]
    if _ok(store):
        rows = []
        for r in store["rows"]:
            edge = r["backend"] == "edge"
            rows.append(
                [
                    r["backend"],
                    r["points"],
                    r["fill_s"],
                    r["exact_p50_ms" if edge else "search_p50_ms"],
                    r["exact_recall_at_10" if edge else "search_recall_at_10"],
                    r.get("optimize_s"),
                    r.get("hnsw_p50_ms"),
                    r.get("hnsw_p95_ms"),
                    r.get("hnsw_recall_at_10"),
                    r.get("hnsw_hybrid_p50_ms", r.get("exact_hybrid_p50_ms"))
                    if edge
                    else r["search_hybrid_p50_ms"],
                    r["disk_mb_per_100k"],
                    r["rss_mb_per_100k"],
                ]
            )
        lines += table(
            [
                "backend",
                "points",
                "fill s",
                "search p50 ms",
                "recall@10",
                "HNSW build s",
                "HNSW p50 ms",
                "HNSW p95 ms",
                "HNSW recall@10",
                "3-leg batch p50 ms",
                "disk MB/100k",
                "RAM MB/100k",
            ],
            rows,
        )
        lines += [
            "",
            f"{store['dimension']}-d clustered vectors (mean cosine to their centre "
            f"{store.get('spread', 0.8)}), {store['queries']} queries, k=10, "
            f"files on {store['files']}; search through `Store.search`.",
        ]
        lines += _store_widths(store["rows"])
    else:
        lines.append(f"{store['status']}: {store.get('reason')}")
    lines.append("")
    return lines


def _store_widths(rows: list[dict[str, Any]]) -> list[str]:
    """Recall and latency at each HNSW search width swept (``--store-widths``)."""
    swept = [(r["points"], w) for r in rows for w in r.get("widths", [])]
    if not swept:
        return []
    body = [
        [points, w["width"], w["recall_at_10"], w["p50_ms"], w["p95_ms"], w["hybrid_p50_ms"]]
        for points, w in swept
    ]
    header = ["points", "hnsw_ef", "recall@10", "p50 ms", "p95 ms", "3-leg batch p50 ms"]
    return ["", "Search widths after the HNSW build:", "", *table(header, body)]


#: Each section's renderer, in the order the report shows them, with when it is shown: the
#: ceiling and model tables only for a successful run; the others also say why they failed.
_SECTION_RENDERERS: tuple[tuple[str, Callable[[Any], bool], Callable[[Any], list[str]]], ...] = (
    ("ceiling", lambda section: _ok(section), _ceiling),
    ("model", lambda section: _ok(section), _model),
    ("peer", bool, _peer),
    ("ingestion", bool, _ingestion),
    ("query", bool, _query),
    ("store", bool, _store),
)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"
