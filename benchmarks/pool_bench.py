"""Parsing on every core: a parse-bound ingestion with ``[limits] workers = "auto"`` against one
parser worker, and the two stores compared.

The documents are the readable PDFs of the corpus beside the project (``../shared/corpus/pdf``)
up to a page limit each; the model is the tiny random checkpoint, so nearly all of the time is
parsing. Each setting ingests the same files into a fresh embedded store; the runs alternate
(1, auto, 1, auto, ...) so that load from other processes falls on both, and the best wall time
of each is kept. The stores must be identical: the same point ids, payloads and vectors, and the
same ledger (``ingested_at`` aside). Each run also counts the CPU time of this process and of its
workers (Tesseract included); the one-worker run's total, spread evenly over the cores, says how
much faster ``auto`` could be at best on this machine.

Run: ``python -m benchmarks.pool_bench [--rounds 2] [--max-pages 40] [--out FILE]``; with
``--checkpoint ~/.cache/mrag-bench/full --dtype auto --limit 12`` the same comparison with the
full-size model, where the model and not parsing is the bottleneck.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from mrag.model.openmp import spin_briefly

# As `mrag ingest` does, before torch loads with .common (mrag.model.openmp says why).
spin_briefly()

from .common import REPO_ROOT, Settings, load_average  # noqa: E402


def corpus_pdfs(corpus: Path, max_pages: int) -> list[Path]:
    """The corpus PDFs that open, with at most ``max_pages`` pages, in path order."""
    with open(corpus / "pdf" / "INDEX.csv", encoding="utf-8") as index:
        rows = [row for row in csv.DictReader(index) if row["status"] == "ok"]
    chosen = []
    for row in sorted(rows, key=lambda row: row["path"]):
        path = corpus / row["path"]
        if 0 < int(row["pages"] or 0) <= max_pages and path.is_file():
            chosen.append(path)
    return chosen


def ingest_with(
    files: list[Path], checkpoint: Path, workers: int | str, folder: Path, dtype: str = "float32"
) -> dict:
    """One ingestion of ``files`` into a fresh store at ``folder``; its wall time and report."""
    from mrag.extract.pool import auto_workers
    from mrag.ingestion.pipeline import Pipeline
    from mrag.ingestion.run import ingest
    from mrag.model import JinaClipModel
    from mrag.store import Store, StoreSettings

    model = JinaClipModel.from_pretrained(checkpoint, dtype=dtype)
    pipeline = Pipeline().override(model__name=str(checkpoint), limits__workers=workers)
    store = Store.open(StoreSettings(path=str(folder), collection="bench"))
    load = load_average()
    try:
        cpu_before = _cpu_seconds()
        start = time.perf_counter()
        report = ingest(files, pipeline=pipeline, store=store, model=model)
        wall = time.perf_counter() - start
        cpu = [after - before for after, before in zip(_cpu_seconds(), cpu_before, strict=True)]
        contents = _contents(store)
    finally:
        store.close()
    totals = report.totals()
    size = auto_workers(pipeline.limits.memory_mb, len(files)) if workers == "auto" else workers
    return {
        "workers": workers,
        "processes": size,
        "wall_s": round(wall, 3),
        "pages": totals["pages"],
        "ingested": totals["ingested"],
        "failed": totals["failed"],
        "points": len(contents["points"]),
        "pages_per_s": round(totals["pages"] / wall, 3),
        # The workers are reaped when the run ends, so their CPU (Tesseract's too) is counted.
        "cpu_s": {"this_process": round(cpu[0], 2), "workers": round(cpu[1], 2)},
        "load_average_before": load,
        "timings_s": {key: round(value, 3) for key, value in sorted(report.timings.items())},
        "contents": contents,
    }


def _cpu_seconds() -> tuple[float, float]:
    """CPU seconds used so far by this process and by its ended children."""
    mine = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime, children.ru_utime + children.ru_stime


def _bound(run: dict, cores: int) -> float:
    """How much faster than ``run`` its work could go at best, spread over ``cores``: its wall
    time over its CPU time shared evenly."""
    used = run["cpu_s"]["this_process"] + run["cpu_s"]["workers"]
    return run["wall_s"] / max(used / cores, 1e-9)


def _contents(store: Any) -> dict:
    """Points (id -> payload and vector bytes) and ledger records without their timestamps."""
    points = {
        found.id: (
            json.dumps(found.payload, sort_keys=True),
            [bytes(memoryview(v).cast("B")) for v in _vectors(found.vectors)],
        )
        for found in store.iter_points(with_vectors=True)
    }
    ledger = {}
    for record in store.sources():
        fields = dict(vars(record))
        fields.pop("ingested_at", None)
        ledger[record.source] = json.dumps(fields, sort_keys=True, default=str)
    return {"points": points, "ledger": ledger}


def _vectors(vectors: Any) -> list[Any]:
    import numpy as np

    return [np.asarray(vectors[name], dtype=np.float32) for name in sorted(vectors)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="runs of each setting, alternating")
    parser.add_argument("--max-pages", type=int, default=40, help="longest PDF taken")
    parser.add_argument("--corpus", default=str(REPO_ROOT.parent / "shared" / "corpus"))
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint folder (default: a tiny random one, written once into the cache)",
    )
    parser.add_argument("--dtype", default="float32", help="the model's dtype (auto, float32)")
    parser.add_argument("--limit", type=int, default=None, help="take only the first N files")
    parser.add_argument("--out", default="pool_bench.json", help="where the JSON goes")
    args = parser.parse_args(argv)
    corpus = Path(args.corpus)
    if not (corpus / "pdf" / "INDEX.csv").is_file():
        print(f"skipped: no corpus at {corpus}")
        return {"status": "skipped"}
    files = corpus_pdfs(corpus, args.max_pages)[: args.limit]
    given = Path(args.checkpoint) if args.checkpoint else None
    checkpoint = Settings(preset="tiny", checkpoint=given).checkpoint_folder()
    runs: dict[str, list[dict]] = {"1": [], "auto": []}
    with tempfile.TemporaryDirectory(prefix="mrag-bench-pool-") as tmp:
        for round_ in range(args.rounds):
            for workers in (1, "auto"):
                folder = Path(tmp) / f"{workers}-{round_}"
                result = ingest_with(files, checkpoint, workers, folder, args.dtype)
                print(
                    f"  workers={workers} ({result['processes']} processes): "
                    f"{result['wall_s']:.1f} s, {result['pages']} pages, "
                    f"{result['points']} points, load {result['load_average_before']}",
                    flush=True,
                )
                runs[str(workers)].append(result)
    reference = runs["1"][0]["contents"]
    differences = [
        {"run": f"{key} #{number}", **_differences(reference, run.pop("contents"))}
        for key, group in runs.items()
        for number, run in enumerate(group)
    ]
    differences = [entry for entry in differences if entry["points"] or entry["ledger"]]
    identical = not differences
    best = {key: min(group, key=lambda run: run["wall_s"]) for key, group in runs.items()}
    ratio = best["1"]["wall_s"] / best["auto"]["wall_s"]
    cores = len(os.sched_getaffinity(0))
    result = {
        "status": "ok",
        "files": len(files),
        "max_pages": args.max_pages,
        "cores": cores,
        "checkpoint": str(checkpoint),
        "dtype": args.dtype,
        "identical_store": identical,
        "differences": differences,
        "auto_over_one": round(ratio, 3),
        "bound_on_these_cores": round(_bound(best["1"], cores), 3),
        "best": best,
        "runs": runs,
    }
    _print_table(result)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"  JSON written to {args.out}")
    return result


def _differences(reference: dict, other: dict, shown: int = 10) -> dict:
    """Which points and ledger records of ``other`` differ from ``reference`` (the first few,
    with the differing payload fields), so that a mismatch can be looked into."""
    points = []
    for key in sorted(set(reference["points"]) | set(other["points"]), key=str):
        mine, theirs = reference["points"].get(key), other["points"].get(key)
        if mine == theirs:
            continue
        fields: list[str] = ["missing"]
        if mine is not None and theirs is not None:
            a, b = json.loads(mine[0]), json.loads(theirs[0])
            fields = sorted(name for name in set(a) | set(b) if a.get(name) != b.get(name))
            fields += ["vectors"] if mine[1] != theirs[1] else []
        entry: dict[str, Any] = {"id": str(key), "fields": fields}
        if "vectors" in fields:
            entry["max_abs_diff"] = _largest_difference(mine[1], theirs[1])
            entry["payload"] = mine[0][:200]
        points.append(entry)
    ledger = [
        {"source": source, "reference": reference["ledger"].get(source), "run": record}
        for source, record in sorted(other["ledger"].items())
        if reference["ledger"].get(source) != record
    ]
    return {"points": points[:shown], "ledger": ledger[:shown]}


def _largest_difference(mine: list[bytes], theirs: list[bytes]) -> float:
    import numpy as np

    pairs = zip(mine, theirs, strict=False)
    return max(
        float(np.abs(np.frombuffer(a, np.float32) - np.frombuffer(b, np.float32)).max())
        for a, b in pairs
    )


def _print_table(result: dict) -> None:
    print(f"\n{result['files']} PDFs, {result['cores']} cores")
    print(
        "| workers | processes | best wall (s) | pages/s | ingested | failed | points "
        "| CPU s: this process | CPU s: workers |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for key, run in result["best"].items():
        cpu = run["cpu_s"]
        print(
            f"| {key} | {run['processes']} | {run['wall_s']:.1f} | {run['pages_per_s']:.2f} "
            f"| {run['ingested']} | {run['failed']} | {run['points']} "
            f"| {cpu['this_process']:.1f} | {cpu['workers']:.1f} |"
        )
    print(
        f"\nauto over 1: {result['auto_over_one']:.2f}x; the one-worker run's CPU time spread "
        f"evenly over {result['cores']} cores would give at most "
        f"{result['bound_on_these_cores']:.2f}x; identical store: {result['identical_store']}"
    )
    for entry in result["differences"]:
        print(f"  differs in {entry['run']}: {json.dumps(entry)[:600]}")


if __name__ == "__main__":
    main()
