"""Command line of the benchmarks: ``python -m benchmarks`` (or ``python benchmarks/run.py``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

import torch

from benchmarks import SECTIONS
from benchmarks.common import DEFAULT_CACHE, REPO_ROOT, Settings, machine_info, use_cpu_time
from benchmarks.report import render, targets

DEFAULT_JSON = REPO_ROOT / "benchmarks" / "results" / "latest.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark mrag against the machine's GEMM ceiling and onnxruntime.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats (~3 min)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="SECTION",
        help=f"run only these sections (repeat or comma-separate): {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--preset",
        choices=("full", "tiny"),
        default="full",
        help="random checkpoint size (tiny: a seconds-long smoke run)",
    )
    parser.add_argument("--checkpoint", type=Path, help="benchmark this checkpoint folder instead")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        help=f"where the random checkpoint and ONNX exports live (default {DEFAULT_CACHE})",
    )
    parser.add_argument(
        "--corpus",
        help="corpus folder with pdf/INDEX.csv, or 'generated' "
        "(default ../shared/corpus when present, else generated documents)",
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="with --threads 1: time by process CPU time, leaving out waits for a busy core",
    )
    parser.add_argument("--points", help="query section store sizes, e.g. 1000,10000,50000")
    parser.add_argument(
        "--store-points", help="store section sizes (default 10000,100000,1000000; quick 10000)"
    )
    parser.add_argument(
        "--store-optimize-max",
        type=int,
        help="store section: build HNSW only up to this many points (the build takes minutes)",
    )
    parser.add_argument(
        "--store-spread",
        type=float,
        default=0.8,
        help="store and query sections: mean cosine of a vector to its cluster's centre "
        "(0.41: noise-dominated stress case)",
    )
    parser.add_argument(
        "--store-widths",
        help="store section: after the HNSW build, also search at these widths (hnsw_ef), "
        "e.g. 32,64,128,256",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument("--markdown", type=Path, help="also write the tables as Markdown here")
    return parser


def selected(only: Sequence[str] | None) -> list[str]:
    if not only:
        return list(SECTIONS)
    names = [name.strip() for item in only for name in item.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        raise SystemExit(
            f"unknown section(s): {', '.join(unknown)}; choose from {', '.join(SECTIONS)}"
        )
    return [name for name in SECTIONS if name in names]


def run(settings: Settings, sections: Sequence[str]) -> dict[str, Any]:
    from mrag.model import JinaClipConfig

    from . import ceiling, ingest_bench, model_bench, onnx_peer, query_bench, store_bench

    started = time.perf_counter()
    config = JinaClipConfig.from_folder(settings.checkpoint_folder())
    from .flops import check_against_reference

    result: dict[str, Any] = {
        "meta": {
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "preset": settings.preset,
            "quick": settings.quick,
            "checkpoint": str(settings.checkpoint_folder()),
            "sections": list(sections),
            "machine": machine_info(),
            "flops": check_against_reference(config),
        },
        "sections": {},
    }
    steps: dict[str, Callable[[], dict[str, Any]]] = {
        "ceiling": lambda: ceiling.run(settings, config),
        "model": lambda: model_bench.run(settings, result["sections"].get("ceiling")),
        "peer": lambda: onnx_peer.run(settings, result["sections"].get("model")),
        "ingestion": lambda: ingest_bench.run(settings),
        "query": lambda: query_bench.run(settings),
        "store": lambda: store_bench.run(settings),
    }
    for name in sections:
        print(f"== {name}", flush=True)
        clock = time.perf_counter()
        try:
            section = steps[name]()
        except Exception as exc:  # one broken section must not lose the others' numbers
            traceback.print_exc()
            section = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        section["elapsed_s"] = round(time.perf_counter() - clock, 1)
        result["sections"][name] = section
    result["meta"]["elapsed_s"] = round(time.perf_counter() - started, 1)
    result["targets"] = targets(result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cpu_time and args.threads != 1:
        raise SystemExit("--cpu-time needs --threads 1 (idle threads would count as work)")
    use_cpu_time(args.cpu_time)
    if args.threads:
        torch.set_num_threads(args.threads)
    points = tuple(int(p) for p in args.points.split(",")) if args.points else None
    settings = Settings(
        preset=args.preset,
        quick=args.quick,
        checkpoint=args.checkpoint,
        cache_dir=args.cache_dir,
        corpus=args.corpus,
        threads=args.threads,
        points=points,
    )
    if args.store_points:
        settings.extra["store_points"] = [int(p) for p in args.store_points.split(",")]
    settings.extra["store_optimize_max"] = args.store_optimize_max
    settings.extra["store_spread"] = args.store_spread
    if args.store_widths:
        settings.extra["store_widths"] = [int(w) for w in args.store_widths.split(",")]
    result = run(settings, selected(args.only))
    result["meta"]["clock"] = "process CPU time" if args.cpu_time else "wall clock"
    text = render(result)
    print()
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"JSON written to {args.json}")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text, encoding="utf-8")
    failed = [name for name, s in result["sections"].items() if s.get("status") == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
