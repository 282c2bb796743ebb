"""Smoke test of the benchmark suite: it runs end to end on a tiny checkpoint and writes JSON.

No timing is asserted: only that every section runs (or says why it was skipped) and that the
JSON has the keys the tables and RESULTS.md are built from.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
from helpers import REPO

sys.path.insert(0, str(REPO))  # the benchmarks package

from benchmarks import SECTIONS
from benchmarks.run import main
from mrag.model.precision import cpu_dtype


def _run(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "result.json"
    markdown = tmp_path / "result.md"
    code = main(
        [
            "--preset",
            "tiny",
            "--quick",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--corpus",
            "generated",
            "--json",
            str(out),
            "--markdown",
            str(markdown),
            "--threads",
            "1",
            *extra,
        ]
    )
    assert code == 0
    assert markdown.read_text(encoding="utf-8").count("### ") >= 2
    return json.loads(out.read_text(encoding="utf-8"))


def test_tiny_run_writes_json_with_every_section(tmp_path: Path) -> None:
    result = _run(tmp_path, "--only", "ceiling,model,ingestion,query,store")
    assert set(result) == {"meta", "sections", "targets"}
    assert {"machine", "flops", "preset", "quick"} <= set(result["meta"])
    assert result["meta"]["machine"]["torch_threads"] == 1
    sections = result["sections"]
    assert list(sections) == ["ceiling", "model", "ingestion", "query", "store"]

    ceiling = sections["ceiling"]
    assert ceiling["status"] == "ok"
    assert set(ceiling["dtypes"]) == {"float32", "bfloat16"}
    assert all(value["gflops"] > 0 for value in ceiling["dtypes"].values())
    for shape in ceiling["dtypes"]["bfloat16"]["shapes"]:
        assert shape["route"] in shape["routes_gflops_best"]
        assert shape["gflops_best"] == max(shape["routes_gflops_best"].values())

    model = sections["model"]
    assert model["status"] == "ok"
    assert {row["dtype"] for row in model["vision"]} == {"float32", "bfloat16"}
    for row in model["vision"]:
        assert {"batch", "images_per_s", "gflops", "ratio_to_ceiling"} <= set(row)
        assert row["ratio_to_ceiling_beside"] > 0 and row["ceiling_beside_gflops"] > 0
    for row in model["text"]:
        assert {"batch", "length", "tokens_per_s", "gflops", "ratio_to_ceiling"} <= set(row)
    assert {"padding_waste", "tokens_per_s"} <= set(model["mix"][0])
    assert model["bf16_agreement"]["text_max_abs_diff"] < 0.1
    assert "kernel" in model["alibi_mask"]
    changes = {(row["change"], row["workload"].split()[0]) for row in model["fast_paths"]}
    assert ("packed text batches", "mix") in changes
    if model["fast_paths"][0]["dtype"] == "bfloat16":  # the fused kernels apply in bf16 only
        assert {("fused kernels", "vision"), ("fused kernels", "text")} <= changes
    else:
        assert ("few-row products", "query") in changes
    user_set = any(
        name.startswith(("MALLOC_", "GLIBC_TUNABLES", "MRAG_KEEP")) for name in os.environ
    )
    if sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") and not user_set:
        assert {("freed memory kept", "vision"), ("freed memory kept", "text")} <= changes
    assert all(row["on_s"] > 0 and row["off_s"] > 0 for row in model["fast_paths"])
    assert {row["dtype"] for row in model["query"]} == {"float32", "bfloat16"}
    assert all(row["p50_ms"] > 0 for row in model["query"])
    assert model["cuda"]["status"] in ("ok", "skipped")

    ingestion = sections["ingestion"]
    assert ingestion["status"] in ("ok", "skipped")
    if ingestion["status"] == "ok":
        assert ingestion["failed"] == 0
        assert {"parse_decode", "tokenise", "model", "store", "other"} == set(ingestion["phases_s"])
        assert {
            "pages_per_s",
            "chunks_per_s",
            "images_per_s",
            "padding_waste",
            "pipeline_overhead",
            "peak_rss_mb",
        } <= set(ingestion)
        # The default dtype and float32 ingest the same documents in one run.
        assert ingestion["dtype"].startswith(str(cpu_dtype()).split()[0])
        assert ingestion["float32"]["dtype"] == "float32 (requested)"
        assert ingestion["float32"]["chunks"] == ingestion["chunks"]
        assert ingestion["auto_over_float32"] > 0

    query = sections["query"]
    assert query["status"] == "ok"
    assert [row["points"] for row in query["rows"]] == [100, 300]
    for row in query["rows"]:
        assert {
            "total_p50_ms",
            "total_p95_ms",
            "total_p99_ms",
            "embed_p50_ms",
            "search_p50_ms",
            "peak_rss_mb",
        } <= set(row)

    store = sections["store"]
    assert store["status"] == "ok"
    assert [(row["backend"], row["points"]) for row in store["rows"]] == [
        ("edge", 2000),
        ("local", 2000),
    ]
    edge, local = store["rows"]
    # Exact search is exact; both backends agree with the NumPy scan.
    assert edge["exact_recall_at_10"] == 1.0 and local["search_recall_at_10"] == 1.0
    assert edge["hnsw_recall_at_10"] > 0.5 and edge["optimize_s"] >= 0

    assert all({"target", "goal", "value", "status"} <= set(t) for t in result["targets"])


@pytest.mark.slow
@pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("onnxruntime", "onnxscript")),
    reason="the peer section needs the bench extra (onnx, onnxruntime, onnxscript)",
)
def test_tiny_peer_section_exports_and_compares(tmp_path: Path) -> None:
    result = _run(tmp_path, "--only", "peer")
    peer = result["sections"]["peer"]
    assert peer["status"] == "ok", peer.get("reason")
    float32 = [row for row in peer["rows"] if row["runtime"] == "onnxruntime float32"]
    assert {row["tower"] for row in float32} == {"text", "vision"}
    # The export is the same network: float32 peers agree with mrag closely.
    assert all(row["max_abs_diff_normalised"] < 1e-4 for row in float32)
    if importlib.util.find_spec("openvino") is not None:
        openvino = {row["runtime"]: row for row in peer["rows"] if row["tower"] == "text"}
        assert openvino["openvino float32"]["max_abs_diff_normalised"] < 1e-4
        bf16 = openvino["openvino bfloat16"]
        if cpu_dtype().dtype == "bfloat16":
            assert bf16["max_abs_diff_normalised"] < 5e-2
        else:  # emulated bf16 is no peer worth timing
            assert bf16["status"] == "skipped"
            assert bf16["reason"] == "this CPU has no native bfloat16"


def test_sections_are_known() -> None:
    assert SECTIONS == ("ceiling", "model", "peer", "ingestion", "query", "store")


def test_cpu_time_needs_one_thread() -> None:
    with pytest.raises(SystemExit, match="--threads 1"):
        main(["--cpu-time", "--threads", "2", "--only", "ceiling"])
