"""Batch-1 query embedding latency: inside the tower, through ``encode_text``, and cached.

``python -m benchmarks.query_embed_bench [--quick] [--json PATH]``. For bfloat16 and float32,
40 distinct short queries go one at a time through:

- ``tower``: ``get_text_features`` on the token ids (the model alone);
- ``encode_text``: ``encode_text([query])`` with the query cache off, as a first search runs;
- ``cached``: the same call once the query is in the cache, as a repeated search runs;
- the first two again with the few-row path off (``fused.unpacked``: plain weights in bfloat16,
  ``F.linear`` in float32), for the A/B, where that path applies on this CPU;
- ``weight read``: summing the text tower's linear weights once, the memory-bound floor.

Every variant runs in each round, one after the other, in one process, so each round's figures
saw the same machine load; p50 is over all queries of a round, and a variant's figure is its
best round. Results print as a table and go to JSON with the CPU flags.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

import torch

from benchmarks.common import REPO_ROOT, Settings, clock, dtype_name, load_average, machine_info
from mrag.model import JinaClipModel, fused
from mrag.model.query_cache import QueryCache

DEFAULT_JSON = REPO_ROOT / "benchmarks" / "results" / "query_embed.json"

#: Distinct short queries as typed into a search box. The random benchmark checkpoint's small
#: vocabulary splits them into 6-17 tokens, p50 13 (the JSON reports the counts): about the
#: dozen of a real query under jina-clip-v1's own tokenizer.
QUERIES = tuple(
    f"{what} {where}"
    for what in ("torque", "wiring", "replace", "exploded", "warning", "service", "cracked", "rpm")
    for where in ("brake", "fuel pump", "gearbox", "headlamp", "fan")
)


#: The A/B variants' label: few-row products as ``F.linear`` on the plain weights.
OFF = "few-row path off"


def weight_read(model: JinaClipModel) -> Callable[[], object]:
    """A pass that reads every linear weight of the text tower once (the memory-bound floor)."""
    weights = [
        module.weight
        for module in model.text_model.modules()
        if isinstance(module, torch.nn.Linear)
    ]

    def read() -> object:
        return [weight.sum() for weight in weights]

    return read


def variants(model: JinaClipModel, few_rows: bool) -> dict[str, Callable[[str], object]]:
    """Name -> one query's call, for each way of embedding it measured here."""
    uncached, cache = QueryCache(0), QueryCache(len(QUERIES))

    ids = {query: model.pad(model.tokenize([query])) for query in QUERIES}

    def tower(query: str) -> object:
        with torch.inference_mode():
            return model.get_text_features(ids[query])

    def encode(query: str) -> object:
        model.query_cache = uncached
        return model.encode_text([query])

    def cached(query: str) -> object:
        model.query_cache = cache
        return model.encode_text([query])

    for query in QUERIES:  # warm the cache, and every oneDNN primitive of these lengths
        cached(query)
    table: dict[str, Callable[[str], object]] = {
        "tower": tower,
        "encode_text": encode,
        "cached": cached,
    }
    if few_rows:
        table[f"tower, {OFF}"] = _unpacked(tower)
        table[f"encode_text, {OFF}"] = _unpacked(encode)
        for query in QUERIES:
            table[f"tower, {OFF}"](query)
    return table


def _unpacked(function: Callable[[str], object]) -> Callable[[str], object]:
    def run(query: str) -> object:
        with fused.unpacked():
            return function(query)

    return run


@contextlib.contextmanager
def _quiet_gc() -> Iterator[None]:
    import gc

    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def measure_rounds(
    table: dict[str, Callable[[str], object]], floor: Callable[[], object], rounds: int
) -> dict[str, Any]:
    """Each round runs every variant over all queries in turn; p50 per variant per round."""
    per_round: dict[str, list[float]] = {name: [] for name in table}
    floors: list[float] = []
    for _ in range(rounds):
        for name, function in table.items():
            times = []
            with _quiet_gc():
                for query in QUERIES:
                    start = clock()
                    function(query)
                    times.append(clock() - start)
            per_round[name].append(statistics.median(times))
            print(f"  {name}: p50 {per_round[name][-1] * 1000:.1f} ms", flush=True)
        start = clock()
        floor()
        floors.append(clock() - start)
    result = {
        name: {
            "p50_ms": round(min(p50s) * 1000, 2),
            "p50_ms_by_round": [round(value * 1000, 2) for value in p50s],
        }
        for name, p50s in per_round.items()
    }
    result["weight read"] = {
        "p50_ms": round(min(floors) * 1000, 2),
        "p50_ms_by_round": [round(value * 1000, 2) for value in floors],
    }
    return result


def _ratios(rows: dict[str, Any]) -> dict[str, float]:
    """The few-row path on over off, per round (same load), then the best round's ratio."""
    out = {}
    for packed, plain in (("tower", f"tower, {OFF}"), ("encode_text", f"encode_text, {OFF}")):
        if plain in rows:
            pairs = zip(
                rows[packed]["p50_ms_by_round"], rows[plain]["p50_ms_by_round"], strict=True
            )
            out[f"{packed}: on / off"] = round(min(a / b for a, b in pairs), 3)
    return out


def run(
    settings: Settings,
    rounds: int,
    dtypes: tuple[torch.dtype, ...] = (torch.bfloat16, torch.float32),
) -> dict[str, Any]:
    folder = settings.checkpoint_folder()
    result: dict[str, Any] = {
        "queries": len(QUERIES),
        "rounds": rounds,
        "packs_small_rows": fused._small_rows,
        "dtypes": {},
    }
    for dtype in dtypes:
        model = JinaClipModel.from_pretrained(folder, dtype=dtype)
        lengths = [len(ids) for ids in model.tokenize(list(QUERIES))]
        few_rows = fused.has_few_row_path(dtype)
        rows = measure_rounds(variants(model, few_rows), weight_read(model), rounds)
        result["dtypes"][dtype_name(dtype)] = {
            "tokens_p50": statistics.median(lengths),
            "tokens_range": [min(lengths), max(lengths)],
            "rows": rows,
            "ratios": _ratios(rows),
            "load_average": load_average(),
        }
        del model
    return result


def render(result: dict[str, Any]) -> str:
    lines = [
        f"batch-1 query embedding, p50 over {result['queries']} distinct queries "
        f"(best of {result['rounds']} interleaved rounds)",
        "",
        "| dtype | path | p50 ms | p50 by round |",
        "|---|---|---|---|",
    ]
    for dtype, entry in result["dtypes"].items():
        for name, row in entry["rows"].items():
            rounds = ", ".join(f"{value:g}" for value in row["p50_ms_by_round"])
            lines.append(f"| {dtype} | {name} | {row['p50_ms']:g} | {rounds} |")
    lines.append("")
    for dtype, entry in result["dtypes"].items():
        low, high = entry["tokens_range"]
        ratios = ", ".join(f"{key} {value}" for key, value in entry["ratios"].items())
        lines.append(
            f"{dtype}: tokens p50 {entry['tokens_p50']} ({low}-{high}); "
            f"load average {entry['load_average']}; {ratios or 'no few-row path on this CPU'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.query_embed_bench")
    parser.add_argument("--quick", action="store_true", help="two rounds instead of five")
    parser.add_argument("--preset", choices=("full", "tiny"), default="full")
    parser.add_argument("--checkpoint", type=Path, help="benchmark this checkpoint folder")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument(
        "--dtype", action="append", choices=("bfloat16", "float32"), help="only this dtype"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = Settings(preset=args.preset, quick=args.quick, checkpoint=args.checkpoint)
    machine = machine_info()
    dtypes = tuple(getattr(torch, name) for name in args.dtype or ("bfloat16", "float32"))
    result = run(settings, rounds=2 if args.quick or settings.tiny else 5, dtypes=dtypes)
    document = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "query_embedding": result,
    }
    print(render(result))
    print(f"cpu: {machine['cpu']}; flags: {', '.join(machine['cpu_flags'])}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
