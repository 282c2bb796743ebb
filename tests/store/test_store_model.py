"""A store remembers its model: commands and ``open()`` use it when no model is named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import astuple
from pathlib import Path

import pytest

from mrag.model import CheckpointError
from mrag.model.identity import DEFAULT, GIVEN, STORE, ModelRecord, choose_model
from mrag.retrieval.retriever import MultimodalRetriever
from mrag.retrieval.vectorstore import MragVectorStore
from mrag.store import Store, StoreSettings

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path, hub_cache: Path) -> subprocess.CompletedProcess:
    """The CLI with no model named anywhere and the Hub out of reach: offline, empty cache."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(hub_cache),
        "HF_HOME": str(hub_cache),
    }
    for name in ("MRAG_MODEL", "MRAG_QDRANT_PATH", "QDRANT_URL", "MRAG_COLLECTION"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "mrag", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def built(tmp_path: Path, tiny_checkpoint: Path) -> dict[str, Path]:
    """A store ingested with ``--model my-checkpoint`` (a copy, named relative to the cwd)."""
    work = tmp_path / "work"
    (work / "docs").mkdir(parents=True)
    (work / "docs" / "pumps.md").write_text("# Pumps\n\nPrime the pump before the first start.\n")
    checkpoint = Path(shutil.copytree(tiny_checkpoint, work / "my-checkpoint"))
    store = tmp_path / "store"
    hub = tmp_path / "hub-cache"
    hub.mkdir()
    result = _cli(
        "ingest",
        "docs",
        "--model",
        "my-checkpoint",
        "--qdrant-path",
        str(store),
        cwd=work,
        hub_cache=hub,
    )
    assert result.returncode == 0, result.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return {"work": work, "checkpoint": checkpoint, "store": store, "hub": hub, "cwd": elsewhere}


def test_query_uses_the_store_model_without_the_hub(built: dict[str, Path]) -> None:
    with Store.open(StoreSettings(path=str(built["store"]))) as store:
        recorded = store.model
    # Recorded by absolute path, so the record finds it from any working directory.
    assert recorded is not None and recorded.name == str(built["checkpoint"].resolve())

    result = _cli(
        "query",
        "prime the pump",
        "--json",
        "--qdrant-path",
        str(built["store"]),
        cwd=built["cwd"],
        hub_cache=built["hub"],
    )
    assert result.returncode == 0, result.stderr
    assert f"using the store's model {recorded.name}" in result.stderr
    hits = json.loads(result.stdout)
    assert hits and hits[0]["source"].endswith("docs/pumps.md")


def test_ingest_into_the_store_uses_its_model(built: dict[str, Path]) -> None:
    (built["work"] / "docs" / "valves.md").write_text("# Valves\n\nThe valve opens at 3 bar.\n")
    result = _cli(
        "ingest",
        str(built["work"] / "docs"),
        "--qdrant-path",
        str(built["store"]),
        cwd=built["cwd"],
        hub_cache=built["hub"],
    )
    assert result.returncode == 0, result.stderr
    assert f"embedding with the store's model {built['checkpoint'].resolve()}" in result.stdout
    assert "1 ingested" in result.stdout


def test_a_store_whose_model_is_gone_says_which(built: dict[str, Path]) -> None:
    shutil.rmtree(built["checkpoint"])
    name = str(built["checkpoint"].resolve())
    for args in (("query", "prime the pump"), ("serve", "--port", "0")):
        result = _cli(
            *args, "--qdrant-path", str(built["store"]), cwd=built["cwd"], hub_cache=built["hub"]
        )
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert f"error: the store was built with {name} (" in result.stderr
        assert "folder is gone" in result.stderr and "--model" in result.stderr

    with pytest.raises(CheckpointError, match="folder is gone"):
        MultimodalRetriever.open(str(built["store"]))


def test_open_uses_the_store_model(built: dict[str, Path], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MRAG_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vectors = MragVectorStore.open(str(built["store"]))
    try:
        assert vectors.embeddings.model_name == str(built["checkpoint"].resolve())
        found = vectors.similarity_search("prime the pump", k=1)
        assert found and found[0].metadata["source"].endswith("docs/pumps.md")
    finally:
        vectors.store.close()


# -- the choice itself ---------------------------------------------------------------------------


def test_choose_model_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MRAG_MODEL", raising=False)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    in_folder = ModelRecord(str(folder), None, 64)
    on_hub = ModelRecord("owner/model", "abc123", 64)

    assert choose_model(None, None, None) == choose_model(None, None, ModelRecord(None, None, 64))
    assert choose_model(None, None, None).origin == DEFAULT
    assert astuple(choose_model("given/model", "r1", in_folder)) == ("given/model", "r1", GIVEN)
    monkeypatch.setenv("MRAG_MODEL", "env/model")
    assert choose_model(None, None, in_folder).name == "env/model"
    monkeypatch.delenv("MRAG_MODEL")

    assert astuple(choose_model(None, None, in_folder)) == (str(folder), None, STORE)
    # A Hub id is loaded at the recorded revision, unless another one is asked for.
    assert astuple(choose_model(None, None, on_hub)) == ("owner/model", "abc123", STORE)
    assert choose_model(None, "main", on_hub).revision == "main"

    gone = ModelRecord(str(tmp_path / "gone"), None, 64)
    with pytest.raises(CheckpointError, match=rf"built with {tmp_path / 'gone'} \(64-d\)"):
        choose_model(None, None, gone)


def test_only_another_model_than_the_builtin_is_worth_saying() -> None:
    from mrag.model import DEFAULT_REVISION, HUB_MODEL_ID

    pinned = choose_model(None, None, ModelRecord(HUB_MODEL_ID, DEFAULT_REVISION, 768))
    assert pinned.origin == STORE and pinned.builtin
    assert not choose_model(None, None, ModelRecord(HUB_MODEL_ID, "main", 768)).builtin
    assert not choose_model(None, None, ModelRecord("owner/model", None, 768)).builtin
