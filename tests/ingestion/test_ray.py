"""Ingestion on Ray: a local two-CPU Ray cluster, the real model class, real documents.

The Ray run must leave the store exactly as the single-process run does (same point ids, payloads,
ledger; vectors within float tolerance), so that either run sees the other's sources as unchanged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import (
    assert_same_contents,
    python_env,
    run_cli,
    run_python,
    shared_path,
    store_contents,
)
from qdrant_client import QdrantClient

from mrag.ingestion.pipeline import Pipeline
from mrag.ingestion.run import IngestReport, ingest
from mrag.model import JinaClipModel
from mrag.store import Store, StoreSettings

ray = pytest.importorskip("ray", reason="needs the ray extra: pip install 'mrag[ray]'")

#: Real documents from ../shared/corpus: text PDFs, PDFs with images, a photo, a broken PDF.
CORPUS_FILES = (
    "pdf/py-pdf-sample-files/004-pdflatex-4-pages/pdflatex-4-pages.pdf",
    "pdf/py-pdf-sample-files/003-pdflatex-image/pdflatex-image.pdf",
    "pdf/py-pdf-sample-files/011-google-doc-document/google-doc-document.pdf",
    "images/photos/coffee.png",
    "pdf/py-pdf-sample-files/017-unreadable-meta-data/unreadablemetadata.pdf",
)


@pytest.fixture(scope="module")
def ray_address() -> str:
    """One local Ray cluster with 2 CPUs for the whole module."""
    context = ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield context.address_info["address"]
    finally:
        ray.shutdown()


def _add_markdown(folder: Path, count: int) -> None:
    for index in range(count):
        text = "\n\n".join(f"Section {index}.{p}: the figure shows results." * 20 for p in range(6))
        (folder / f"extra-{index:02d}.md").write_text(f"# Part {index}\n\n{text}")


def _statuses(report: IngestReport) -> dict[str, str]:
    return {outcome.source: outcome.status for outcome in report.files}


def _server_store(path: Path) -> Store:
    return Store.from_client(QdrantClient(path=str(path)), "mrag")


def test_a_ray_run_stores_what_the_local_run_stores_and_each_sees_the_other_as_unchanged(
    ray_address: str, docs: Path, tmp_path: Path, tiny_model: JinaClipModel, tiny_checkpoint: Path
) -> None:
    from mrag.ingestion.ray import ingest_on_ray

    paths: list[Path] = [docs]
    with contextlib.suppress(pytest.skip.Exception):  # a fresh clone: generated documents only
        paths += [shared_path("corpus", name) for name in CORPUS_FILES]
    pipeline = Pipeline().override(
        model__name=str(tiny_checkpoint), model__dtype="float32", ray__batch_size=3
    )

    with Store.open(StoreSettings(path=str(tmp_path / "local"))) as store:
        local = ingest(paths, store=store, model=tiny_model, pipeline=pipeline)
    before = ray.data.DataContext.get_current().max_errored_blocks
    # Into the server backend (what --qdrant-url opens), on qdrant-client's local mode: no Qdrant
    # server runs here. The killed-job test below writes the embedded default.
    with _server_store(tmp_path / "server") as store:
        distributed = ingest_on_ray(paths, store=store, pipeline=pipeline)
    # The run's Ray Data settings do not leak into other datasets of the process.
    assert ray.data.DataContext.get_current().max_errored_blocks == before

    assert _statuses(distributed) == _statuses(local)
    assert distributed.totals() == local.totals()
    assert distributed.totals()["ingested"] >= 3
    broken = next(o for o in distributed.files if o.source.endswith("broken.pdf"))
    # One broken file is a failed outcome naming the file, not a failed job.
    assert broken.status == "failed" and broken.path.endswith("broken.pdf") and broken.reason
    assert broken.reason == next(o for o in local.files if o.source == broken.source).reason
    with _server_store(tmp_path / "server") as store:
        assert_same_contents(store_contents(store), store_contents(tmp_path / "local"), atol=1e-4)
    assert distributed.timings["model_text"] > 0 and distributed.real_tokens > 0

    # Each run sees the other's sources as unchanged, without loading a model.
    no_model = pipeline.override(model__name=str(tmp_path / "no-such-model"))
    with Store.open(StoreSettings(path=str(tmp_path / "local"))) as store:
        again = ingest_on_ray(paths, store=store, pipeline=no_model)
    assert {s for s, status in _statuses(again).items() if status != "failed"} == {
        s for s, status in _statuses(local).items() if status == "ingested"
    }
    assert set(_statuses(again).values()) == {"unchanged", "failed"}
    with _server_store(tmp_path / "server") as store:
        again = ingest(paths, store=store, pipeline=no_model)
    assert set(_statuses(again).values()) == {"unchanged", "failed"}


def test_a_killed_ray_job_run_again_ends_identical_to_a_clean_run(
    ray_address: str,
    docs: Path,
    tmp_path: Path,
    tiny_model: JinaClipModel,
    tiny_checkpoint: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _add_markdown(docs, 10)
    args = ("ingest", "docs", "--max-tokens", "128", "--dtype", "float32", "--ray", ray_address)
    pipeline_file = tmp_path / "pipeline.toml"
    # Two files per model call, so results reach the driver (and the store) one after another.
    pipeline_file.write_text("[ray]\nbatch_size = 2\n")
    args += ("--pipeline", str(pipeline_file))
    env = {"MRAG_MODEL": str(tiny_checkpoint), "MRAG_QDRANT_PATH": str(tmp_path / "crashed")}

    monkeypatch.chdir(tmp_path)  # the clean run names its sources as the command line does
    with Store.open(StoreSettings(path=str(tmp_path / "clean"))) as store:
        clean = ingest(
            [Path("docs")],
            store=store,
            model=tiny_model,
            pipeline=Pipeline().override(chunking__max_tokens=128),
        )
    assert clean.count("ingested") == 13 and clean.count("failed") == 2

    process = subprocess.Popen(
        [sys.executable, "-m", "mrag", *args],
        cwd=tmp_path,
        env=python_env(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        written = 0
        assert process.stderr is not None
        for line in process.stderr:
            written += " ingested " in line
            if written == 4:
                break
        assert written == 4, "the run ended before it could be interrupted"
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    half = store_contents(tmp_path / "crashed")
    assert 4 <= len(half["sources"]) < 13

    rerun = run_cli(*args, "--json", cwd=tmp_path, env=env)
    assert rerun.returncode == 1, rerun.stderr  # broken.pdf failed, the job did not
    summary = json.loads(rerun.stdout)
    statuses = {f["path"]: f["status"] for f in summary["files"]}
    assert statuses["docs/broken.pdf"] == "failed"
    assert summary["dtype"].startswith("float32")  # the actors' model, as the local run reports it
    assert summary["totals"]["ingested"] + summary["totals"]["unchanged"] == 13
    assert summary["totals"]["unchanged"] >= 4
    assert_same_contents(
        store_contents(tmp_path / "crashed"), store_contents(tmp_path / "clean"), atol=1e-4
    )


def test_ingest_without_ray_never_imports_ray(tmp_path: Path, tiny_checkpoint: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "note.txt").write_text("A short note about pumps.")
    env = {"MRAG_MODEL": str(tiny_checkpoint), "MRAG_QDRANT_PATH": str(tmp_path / "store")}
    result = run_python("-X", "importtime", "-m", "mrag", "ingest", "docs", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    assert {"mrag.ingestion.run", "torch"} <= imported  # the listing is real: the run loaded both
    assert not {name for name in imported if name == "ray" or name.startswith("ray.")}


def test_a_local_ray_refuses_actors_it_could_never_place(ray_address: str) -> None:
    from mrag.ingestion.ray import _check_fits

    _check_fits(Pipeline().ray)  # one model actor and one parser fit in 2 CPUs
    with pytest.raises(ValueError, match=r"need 2 CPUs and 1 GPUs; this machine has 2 and 0"):
        _check_fits(Pipeline().override(ray__gpus_per_actor=1.0).ray)
    with pytest.raises(ValueError, match=r"3 model actor\(s\) .* need 4 CPUs"):
        _check_fits(Pipeline().override(ray__actors=3).ray)
