"""Ingestion end to end: real files, the real model class (tiny random weights), embedded Qdrant."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import assert_same_contents, python_env, run_cli, store_contents
from PIL import Image
from qdrant_client import QdrantClient

from mrag.ingestion.pipeline import Pipeline, PipelineError
from mrag.ingestion.run import ingest
from mrag.model import JinaClipModel
from mrag.model.precision import cpu_dtype
from mrag.store import Store, StoreError, StoreSettings


def _store(path: Path) -> Store:
    return Store.open(StoreSettings(path=str(path)))


def _run(docs: Path, store_path: Path, model: JinaClipModel, **kwargs) -> object:
    with _store(store_path) as store:
        return ingest([docs], store=store, model=model, **kwargs)


def _by_source(state: dict, source_suffix: str) -> list[dict]:
    return [
        payload
        for payload, _ in state["points"].values()
        if payload["metadata"]["source"].endswith(source_suffix)
    ]


def test_a_folder_goes_in_with_text_images_and_clear_failures(
    docs: Path, tmp_path: Path, tiny_model: JinaClipModel
) -> None:
    report = _run(docs, tmp_path / "store", tiny_model)
    outcomes = {Path(o.source).name: o for o in report.files}
    assert set(outcomes) == {"report.pdf", "notes.md", "photo.png", "broken.pdf", "locked.pdf"}
    assert {n for n, o in outcomes.items() if o.status == "ingested"} == {
        "report.pdf",
        "notes.md",
        "photo.png",
    }
    # The reason says what went wrong; the path is said once, beside it.
    assert "broken file" in outcomes["broken.pdf"].reason
    assert outcomes["broken.pdf"].path.endswith("docs/broken.pdf")
    assert "encrypted" in outcomes["locked.pdf"].reason
    assert not report.ok

    state = store_contents(tmp_path / "store")
    report_points = _by_source(state, "report.pdf")
    texts = [p for p in report_points if p["metadata"]["modality"] == "text"]
    images = [p for p in report_points if p["metadata"]["modality"] == "image"]
    assert texts and "coloured squares" in " ".join(p["page_content"] for p in texts)
    for payload in report_points:
        metadata = payload["metadata"]
        assert {"modality", "source", "page", "pages", "content_hash"} <= set(metadata)
        assert len(metadata["content_hash"]) == 64
    # The logo on every page is one image point listing all its pages.
    assert sorted(p["metadata"]["pages"] for p in images if p["metadata"]["pages"] == [1, 2, 3])
    # Each figure carries its caption, and the stored rendition shows the right picture.
    red = next(p for p in images if "Figure 1" in p["page_content"])
    picture = Image.open(io.BytesIO(base64.b64decode(red["metadata"]["image_base64"])))
    assert max(picture.size) <= 1024
    r, g, b = picture.convert("RGB").getpixel((picture.width // 2, picture.height // 2))
    assert r > 200 and g < 60 and b < 60
    assert red["metadata"]["page"] == 1
    # Markdown chunks keep their headings.
    notes = _by_source(state, "notes.md")
    assert all(p["metadata"]["headings"] for p in notes if p["metadata"]["modality"] == "text")
    assert report.totals()["points_written"] == len(state["points"])


def test_a_rerun_skips_unchanged_sources_without_loading_the_model(
    docs: Path, tmp_path: Path, tiny_model: JinaClipModel
) -> None:
    _run(docs, tmp_path / "store", tiny_model)
    before = store_contents(tmp_path / "store")
    # A model that cannot load proves the model is never needed for unchanged files.
    pipeline = Pipeline().override(model__name=str(tmp_path / "no-such-model"))
    with _store(tmp_path / "store") as store:
        report = ingest([docs], store=store, pipeline=pipeline)
    statuses = {Path(o.source).name: o.status for o in report.files}
    assert statuses["report.pdf"] == statuses["notes.md"] == "unchanged"
    assert statuses["broken.pdf"] == "failed"
    assert store_contents(tmp_path / "store")["points"].keys() == before["points"].keys()


def test_a_changed_source_is_replaced_with_no_stale_points(
    docs: Path, tmp_path: Path, tiny_model: JinaClipModel
) -> None:
    long_notes = "# Notes\n\n" + "\n\n".join(
        f"Paragraph {i} about the model." * 30 for i in range(30)
    )
    (docs / "notes.md").write_text(long_notes)
    _run(
        docs, tmp_path / "store", tiny_model, pipeline=Pipeline().override(chunking__max_tokens=128)
    )
    many = len(_by_source(store_contents(tmp_path / "store"), "notes.md"))
    (docs / "notes.md").write_text("# Notes\n\nNow it is short.")
    report = _run(docs, tmp_path / "store", tiny_model)
    assert {Path(o.source).name: o.status for o in report.files}["notes.md"] == "ingested"
    after = _by_source(store_contents(tmp_path / "store"), "notes.md")
    assert many > 3 and len(after) == 1
    assert after[0]["page_content"] == "Now it is short."


def test_password_opens_the_encrypted_pdf(docs: Path, tmp_path: Path, tiny_model) -> None:
    report = _run(docs, tmp_path / "store", tiny_model, passwords=["wrong", "secret"])
    assert {Path(o.source).name: o.status for o in report.files}["locked.pdf"] == "ingested"
    texts = _by_source(store_contents(tmp_path / "store"), "locked.pdf")
    assert "secret plan" in texts[0]["page_content"]


def test_prune_removes_sources_whose_files_are_gone(
    docs: Path, tmp_path: Path, tiny_model: JinaClipModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _run(Path("docs"), tmp_path / "store", tiny_model)
    (docs / "photo.png").unlink()
    report = _run(Path("docs"), tmp_path / "store", tiny_model)
    assert _by_source(store_contents(tmp_path / "store"), "photo.png")  # kept without --prune
    report = _run(Path("docs"), tmp_path / "store", tiny_model, prune=True)
    assert [o.path for o in report.files if o.status == "deleted"] == ["docs/photo.png"]
    assert not _by_source(store_contents(tmp_path / "store"), "photo.png")


def test_guard_rails_report_the_file_and_the_limit(docs: Path, tmp_path: Path, tiny_model) -> None:
    pipeline = Pipeline().override(limits__max_pages=2)
    report = _run(docs, tmp_path / "store", tiny_model, pipeline=pipeline)
    outcome = next(o for o in report.files if o.source.endswith("report.pdf"))
    # Over the page limit: the first pages go in and the report says what was left out.
    assert outcome.status == "ingested"
    assert any("max_pages" in problem for problem in outcome.problems)
    state = store_contents(tmp_path / "store")
    assert {p["metadata"]["page"] for p in _by_source(state, "report.pdf")} <= {1, 2}

    pipeline = Pipeline().override(limits__time_budget_s=1e-6)
    report = _run(docs, tmp_path / "other", tiny_model, pipeline=pipeline)
    outcome = next(o for o in report.files if o.source.endswith("report.pdf"))
    assert outcome.status == "failed" and outcome.path.endswith("report.pdf")
    assert "time budget" in outcome.reason


def test_pipeline_file_equals_the_built_in_default_and_rejects_typos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Pipeline.default() == Pipeline()
    # The file ships in the package: the README's example works from any folder.
    monkeypatch.chdir(tmp_path)
    assert Pipeline.from_toml("pipelines/default.toml") == Pipeline()
    bad = tmp_path / "bad.toml"
    bad.write_text("[chunking]\nmax_tokenz = 100\n")
    with pytest.raises(PipelineError, match="unknown key 'max_tokenz'"):
        Pipeline.from_toml(bad)
    bad.write_text("[images]\nmin_side = 'big'\n")
    with pytest.raises(PipelineError, match="min_side must be a number"):
        Pipeline.from_toml(bad)


# -- the command line, as a user runs it -----------------------------------------------------------


def test_cli_ingest_json_stats_delete_and_exit_codes(
    docs: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    env = {"MRAG_MODEL": str(tiny_checkpoint), "MRAG_QDRANT_PATH": str(tmp_path / "store")}
    result = run_cli("ingest", "docs", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr  # broken.pdf and locked.pdf failed
    summary = json.loads(result.stdout)
    files = {f["path"]: f for f in summary["files"]}
    assert files["docs/report.pdf"]["source"] == (tmp_path / "docs/report.pdf").resolve().as_posix()
    assert files["docs/report.pdf"]["status"] == "ingested"
    assert files["docs/broken.pdf"]["status"] == "failed" and files["docs/broken.pdf"]["reason"]
    assert summary["totals"]["ingested"] == 3 and summary["totals"]["failed"] == 2
    assert summary["dtype"] == str(cpu_dtype())  # the default is auto

    result = run_cli("ingest", "docs/report.pdf", "docs/notes.md", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "0 ingested, 2 unchanged, 0 failed" in result.stdout

    stats = json.loads(run_cli("stats", "--json", cwd=tmp_path, env=env).stdout)
    assert stats["sources"] == 3 and stats["image_points"] >= 4
    assert stats["auto_dtype"] == str(cpu_dtype())

    result = run_cli("delete", "docs/report.pdf", cwd=tmp_path, env=env)
    assert result.returncode == 0 and "deleted docs/report.pdf" in result.stdout
    after = json.loads(run_cli("stats", "--json", cwd=tmp_path, env=env).stdout)
    assert after["sources"] == 2 and after["points"] < stats["points"]
    assert run_cli("delete", "docs/never.pdf", cwd=tmp_path, env=env).returncode == 1

    missing = run_cli("ingest", "nowhere", cwd=tmp_path, env=env)
    assert missing.returncode == 2 and missing.stderr.startswith("error: nowhere")
    assert "Traceback" not in missing.stderr
    assert run_cli("ingest", cwd=tmp_path, env=env).returncode == 2


def test_a_second_writer_gets_a_clear_error(docs: Path, tmp_path: Path, tiny_checkpoint) -> None:
    holder = _store(tmp_path / "store")
    holder.ensure_collection(8)
    try:
        with pytest.raises(StoreError, match="in use by another process"):
            _store(tmp_path / "store")
        result = run_cli(
            "ingest",
            str(docs),
            "--model",
            str(tiny_checkpoint),
            "--qdrant-path",
            str(tmp_path / "store"),
            cwd=tmp_path,
        )
        assert result.returncode == 2
        assert "in use by another process" in result.stderr and "Traceback" not in result.stderr
    finally:
        holder.close()


def test_kill_9_at_any_moment_then_rerun_gives_the_same_store(
    docs: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    for index in range(12):
        text = "\n\n".join(f"Section {index}.{p}: the figure shows results." * 20 for p in range(8))
        (docs / f"extra-{index:02d}.md").write_text(f"# Part {index}\n\n{text}")
    env = {"MRAG_MODEL": str(tiny_checkpoint)}
    # float32: the vectors of both runs are compared at float32 tolerance.
    args = ("ingest", "docs", "--max-tokens", "128", "--dtype", "float32")

    started = time.perf_counter()
    clean = run_cli(*args, "--qdrant-path", str(tmp_path / "clean"), cwd=tmp_path, env=env)
    duration = time.perf_counter() - started
    assert clean.returncode == 1, clean.stderr
    expected = store_contents(tmp_path / "clean")

    killed = 0
    for fraction in (0.4, 0.6, 0.8, 0.9):
        process = subprocess.Popen(
            [sys.executable, "-m", "mrag", *args, "--qdrant-path", str(tmp_path / "crashed")],
            cwd=tmp_path,
            env=python_env(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(duration * fraction)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            killed += 1
        process.wait()
    assert killed >= 1
    rerun = run_cli(*args, "--qdrant-path", str(tmp_path / "crashed"), cwd=tmp_path, env=env)
    assert rerun.returncode == 1, rerun.stderr
    assert_same_contents(store_contents(tmp_path / "crashed"), expected, atol=1e-5)


def test_langchain_qdrant_reads_the_store(docs: Path, tmp_path: Path, tiny_model) -> None:
    langchain_qdrant = pytest.importorskip("langchain_qdrant")
    from mrag import JinaClipEmbeddings

    shutil.rmtree(docs / "broken.pdf", ignore_errors=True)
    # A collection on a Qdrant server, here through qdrant-client's local mode.
    client = QdrantClient(path=str(tmp_path / "server"))
    ingest([docs], store=Store.from_client(client, "mrag"), model=tiny_model)
    try:
        store = langchain_qdrant.QdrantVectorStore(
            client=client,
            collection_name="mrag",
            embedding=JinaClipEmbeddings(model=tiny_model),
            vector_name="text",
        )
        chunk = next(p for p, _ in _points_from(client) if p["metadata"]["modality"] == "text")
        found = store.similarity_search(chunk["page_content"], k=1)
        assert found[0].page_content == chunk["page_content"]
        assert found[0].metadata["source"] == chunk["metadata"]["source"]
    finally:
        client.close()


def _points_from(client: QdrantClient) -> list[tuple[dict, object]]:
    records, _ = client.scroll("mrag", limit=1000, with_payload=True)
    return [(record.payload, record.id) for record in records]
