"""Throughput and latency of ``mrag serve`` under 1, 4 and 16 concurrent clients, and search
latency with and without an ingestion job running in the server.

The server runs as ``python -m mrag serve`` in a subprocess on loopback; each client sends
``/v1/embeddings`` requests one after another (one text each by default) for a bounded time and
count. The numbers are set against the same model's throughput in-process, called directly with
batches of 32 and one text at a time, so the table shows how close the micro-batcher brings
concurrent single-text clients to batch throughput.

The search phase uploads one document, times ``/v1/search`` requests sent one after another on
an idle server, then uploads the rest (``--documents DIR``, or generated Markdown files) and
times the same searches while the server ingests them in the background.

Usage::

    python benchmarks/serve_bench.py                      # tiny random checkpoint
    python benchmarks/serve_bench.py --preset full        # real jina-clip-v1 shapes, random weights
    python benchmarks/serve_bench.py --checkpoint DIR --output results.json

Without ``--checkpoint`` a random checkpoint is written once to ``~/.cache/mrag/bench-<preset>``
(``$MRAG_BENCH_CACHE`` overrides the folder). Client and server share this machine's cores, so
absolute numbers are a floor; the ratios are the point.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import torch

from mrag.model import JinaClipModel
from mrag.testing import write_random_checkpoint

WORDS = [
    "the",
    "model",
    "embeds",
    "text",
    "and",
    "images",
    "into",
    "one",
    "space",
    "so",
    "that",
    "a",
    "query",
    "finds",
    "passages",
    "and",
    "figures",
    "alike",
    "search",
    "retrieval",
    "chart",
    "table",
    "report",
    "revenue",
    "cost",
    "photo",
    "rocket",
    "cat",
    "dog",
    "city",
    "water",
    "energy",
    "power",
    "network",
    "layer",
    "training",
    "accuracy",
    "result",
    "method",
    "system",
    "data",
    "value",
]


def sentences(count: int, seed: int = 0, words: tuple[int, int] = (12, 24)) -> list[str]:
    """Distinct pseudo-sentences of ordinary length, the same for every run."""
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(*words))) + f" {index}"
        for index in range(count)
    ]


def checkpoint_folder(args: argparse.Namespace) -> Path:
    if args.checkpoint:
        return Path(args.checkpoint)
    cache = Path(os.environ.get("MRAG_BENCH_CACHE") or Path.home() / ".cache" / "mrag")
    folder = cache / f"bench-{args.preset}"
    if not (folder / "model.safetensors").is_file():
        print(f"writing a random {args.preset} checkpoint to {folder} ...", file=sys.stderr)
        write_random_checkpoint(folder, preset=args.preset)
    return folder


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# -- in-process baseline -----------------------------------------------------------------------


def in_process(model: JinaClipModel, texts: list[str], budget: float) -> dict[str, float]:
    """Texts per second calling the model directly: batches of 32, and one text per call."""
    model.encode_text(texts[:32])  # warm-up
    done, started = 0, time.perf_counter()
    while True:
        for start in range(0, len(texts), 32):
            model.encode_text(texts[start : start + 32], batch_size=32)
            done += len(texts[start : start + 32])
        if time.perf_counter() - started > budget / 2:
            break
    batched = done / (time.perf_counter() - started)
    done, started = 0, time.perf_counter()
    for text in texts:
        model.encode_text([text])
        done += 1
        if time.perf_counter() - started > budget / 2:
            break
    single = done / (time.perf_counter() - started)
    return {"batch32_inputs_per_s": batched, "batch1_inputs_per_s": single}


# -- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(folder: Path, port: int, args: argparse.Namespace, log: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "mrag",
        "serve",
        "--model",
        str(folder),
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--batch-size",
        str(args.batch_size),
        "--batch-wait-ms",
        str(args.batch_wait_ms),
        "--qdrant-path",
        str(log.parent / "qdrant"),
    ]
    env = {key: value for key, value in os.environ.items() if key != "MRAG_API_KEY"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)  # torch's intra-op threads in the server
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + args.start_timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.terminate()
            raise RuntimeError("the server did not start in time")
        time.sleep(0.2)


async def load(
    base: str, clients: int, texts: list[str], per_request: int, budget: float, max_requests: int
) -> dict[str, Any]:
    """``clients`` concurrent clients, each sending one request after another."""
    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.perf_counter() + budget
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as session:

        async def client(seed: int) -> None:
            nonlocal errors, sent
            position = seed * 7919
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                batch = [texts[(position + i) % len(texts)] for i in range(per_request)]
                position += per_request
                started = time.perf_counter()
                response = await session.post(
                    "/v1/embeddings",
                    json={"model": "jina-clip-v1", "input": batch, "encoding_format": "base64"},
                )
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        # Warm-up: one request per connection, not measured.
        await asyncio.gather(
            *(
                session.post("/v1/embeddings", json={"model": "jina-clip-v1", "input": texts[:1]})
                for _ in range(clients)
            )
        )
        before = (await session.get("/healthz")).json()
        started = time.perf_counter()
        await asyncio.gather(*(client(seed) for seed in range(clients)))
        elapsed = time.perf_counter() - started
        after = (await session.get("/healthz")).json()
    batches = after["batches"] - before["batches"]
    inputs = after["inputs"] - before["inputs"]
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "inputs_per_s": len(latencies) * per_request / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "mean_batch_size": inputs / batches if batches else 0.0,
    }


# -- search while ingesting ----------------------------------------------------------------------


def generated_documents(folder: Path, count: int, paragraphs: int = 150) -> list[Path]:
    """Markdown files of made-up sentences: text to chunk and embed, nothing to parse."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for number in range(count):
        text = "\n\n".join(sentences(paragraphs, seed=number + 1))
        path = folder / f"document-{number:03d}.md"
        path.write_text(f"# Document {number}\n\n{text}\n", encoding="utf-8")
        files.append(path)
    return files


def _upload(session: httpx.Client, files: list[Path]) -> str:
    parts = [
        ("files", (path.name, path.read_bytes(), "application/octet-stream")) for path in files
    ]
    response = session.post("/v1/documents", files=parts)
    response.raise_for_status()
    return response.json()["id"]


def _job_status(session: httpx.Client, job_id: str) -> str:
    return session.get(f"/v1/jobs/{job_id}").json()["status"]


def _timed_search(session: httpx.Client, query: str) -> float:
    started = time.perf_counter()
    response = session.post("/v1/search", json={"query": query, "k": 10, "include_images": False})
    response.raise_for_status()
    return time.perf_counter() - started


def search_during_ingest(base: str, files: list[Path], budget: float) -> dict[str, Any]:
    """Search latency on an idle server, then while a job ingests ``files[1:]``."""
    queries = sentences(64, seed=99, words=(3, 8))
    with httpx.Client(base_url=base, timeout=300) as session:
        first = _upload(session, files[:1])
        while _job_status(session, first) not in ("done", "failed"):
            time.sleep(0.2)
        idle: list[float] = []
        deadline = time.perf_counter() + budget
        while time.perf_counter() < deadline:
            idle.append(_timed_search(session, queries[len(idle) % len(queries)]))
        job = _upload(session, files[1:])
        busy: list[float] = []
        started = time.perf_counter()
        while _job_status(session, job) in ("queued", "running"):
            busy.append(_timed_search(session, queries[len(busy) % len(queries)]))
        ingest_seconds = time.perf_counter() - started
    return {
        "documents": len(files) - 1,
        "ingest_seconds": ingest_seconds,
        "idle": {
            "searches": len(idle),
            "p50_ms": percentile(idle, 50) * 1000,
            "p99_ms": percentile(idle, 99) * 1000,
        },
        "during_ingest": {
            "searches": len(busy),
            "p50_ms": percentile(busy, 50) * 1000,
            "p99_ms": percentile(busy, 99) * 1000,
        },
    }


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", metavar="DIR", help="checkpoint folder to serve")
    parser.add_argument(
        "--preset",
        choices=["tiny", "full"],
        default="tiny",
        help="random checkpoint written when --checkpoint is not given",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--inputs-per-request", type=int, default=1)
    parser.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        help="time budget per concurrency level (default %(default)s)",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=2000,
        help="request cap per concurrency level (default %(default)s)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--start-timeout", type=float, default=300.0)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for the baseline and the server (default: torch's)",
    )
    parser.add_argument(
        "--documents",
        metavar="DIR",
        help="files to upload in the search-while-ingesting phase (default: generated Markdown)",
    )
    parser.add_argument(
        "--generated-documents",
        type=int,
        default=24,
        help="how many Markdown files to generate without --documents (default %(default)s)",
    )
    parser.add_argument(
        "--skip-search", action="store_true", help="leave out the search-while-ingesting phase"
    )
    parser.add_argument(
        "--output",
        metavar="JSON",
        help="where to write the results (default: mrag-serve-bench.json in the temp folder)",
    )
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = checkpoint_folder(args)
    texts = sentences(4096)
    print(f"in-process baseline on {folder} ...", file=sys.stderr)
    model = JinaClipModel.from_pretrained(folder)
    baseline = in_process(model, texts[:512], budget=args.seconds)
    del model

    work = Path(tempfile.mkdtemp(prefix="mrag-serve-bench-"))
    port = free_port()
    print(f"starting mrag serve on 127.0.0.1:{port} ...", file=sys.stderr)
    server = start_server(folder, port, args, work / "serve.log")
    rows = []
    try:
        for clients in args.concurrency:
            print(f"  {clients} client(s) ...", file=sys.stderr)
            rows.append(
                asyncio.run(
                    load(
                        f"http://127.0.0.1:{port}",
                        clients,
                        texts,
                        args.inputs_per_request,
                        args.seconds,
                        args.max_requests,
                    )
                )
            )
        searching = None
        if not args.skip_search:
            if args.documents:
                files = sorted(p for p in Path(args.documents).iterdir() if p.is_file())[:64]
            else:
                files = generated_documents(work / "documents", args.generated_documents + 1)
            print(
                f"  searches with and without {len(files) - 1} documents ingesting ...",
                file=sys.stderr,
            )
            searching = search_during_ingest(f"http://127.0.0.1:{port}", files, args.seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)

    batched = baseline["batch32_inputs_per_s"]
    print()
    print(
        f"model: {folder}  |  torch threads: {torch.get_num_threads()}  |  "
        f"cpus: {os.cpu_count()}  |  inputs/request: {args.inputs_per_request}"
    )
    print(
        f"in-process: batch 32 {batched:8.1f} inputs/s   batch 1 "
        f"{baseline['batch1_inputs_per_s']:8.1f} inputs/s"
    )
    header = (
        f"{'clients':>7}  {'requests':>8}  {'inputs/s':>9}  {'vs batch32':>10}  "
        f"{'p50 ms':>8}  {'p99 ms':>8}  {'mean batch':>10}  {'errors':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        row["fraction_of_batch32"] = row["inputs_per_s"] / batched if batched else 0.0
        print(
            f"{row['clients']:>7}  {row['requests']:>8}  {row['inputs_per_s']:>9.1f}  "
            f"{row['fraction_of_batch32']:>9.0%}  {row['p50_ms']:>8.1f}  {row['p99_ms']:>8.1f}  "
            f"{row['mean_batch_size']:>10.2f}  {row['errors']:>6}"
        )

    if searching is not None:
        print()
        print(
            f"search latency, {searching['documents']} documents ingesting in the background "
            f"({searching['ingest_seconds']:.1f} s):"
        )
        for name in ("idle", "during_ingest"):
            row = searching[name]
            print(
                f"  {name:<14} {row['searches']:>6} searches  p50 {row['p50_ms']:8.1f} ms"
                f"  p99 {row['p99_ms']:8.1f} ms"
            )

    output = Path(args.output or Path(tempfile.gettempdir()) / "mrag-serve-bench.json")
    result = {
        "checkpoint": str(folder),
        "preset": None if args.checkpoint else args.preset,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "settings": {
            "inputs_per_request": args.inputs_per_request,
            "seconds": args.seconds,
            "max_requests": args.max_requests,
            "batch_size": args.batch_size,
            "batch_wait_ms": args.batch_wait_ms,
        },
        "in_process": baseline,
        "server": rows,
        "search_during_ingest": searching,
        "median_text_words": statistics.median(len(text.split()) for text in texts),
    }
    output.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
