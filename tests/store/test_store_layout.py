"""The layout record: which model built a store, old layouts, and clear errors before embedding."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import run_cli
from qdrant_client import QdrantClient, models

from mrag.ingestion.run import ingest
from mrag.model import JinaClipModel
from mrag.store import (
    LAYOUT_VERSION,
    ModelMismatchError,
    ModelRecord,
    OldLayoutError,
    Store,
    StoreSettings,
)
from mrag.testing import write_random_checkpoint

#: The model a store was built with in these tests: another dimension than the tiny one.
OTHER = ModelRecord("jinaai/jina-clip-v1", "ceb3e44ca4d6", 768, "0123456789abcdef")


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.md").write_text("# Pumps\n\nPrime the pump before the first start.\n")
    return folder


def _store_of(path: Path, model: ModelRecord) -> None:
    with Store.open(StoreSettings(path=str(path))) as store:
        store.ensure_collection(model)


def test_the_store_records_its_model(tmp_path: Path, tiny_checkpoint: Path, tiny_model) -> None:
    record = ModelRecord.of_checkpoint(tiny_checkpoint, None)
    assert record.dimension == tiny_model.embedding_dim and record.fingerprint
    _store_of(tmp_path / "store", record)
    with Store.open(StoreSettings(path=str(tmp_path / "store"))) as store:
        layout = store.layout()
        assert layout is not None and layout.version == LAYOUT_VERSION
        assert layout.model == record
    # The same weights in another folder are the same model; other weights are not.
    copy = shutil.copytree(tiny_checkpoint, tmp_path / "copy")
    assert not record.conflicts_with(ModelRecord.of_checkpoint(copy, None))
    other = write_random_checkpoint(tmp_path / "other", preset="tiny", seed=7)
    assert record.conflicts_with(ModelRecord.of_checkpoint(other, None))


def test_ingest_with_another_model_fails_before_embedding(
    docs: Path, tmp_path: Path, tiny_model: JinaClipModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    _store_of(tmp_path / "store", OTHER)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("embedded before the model check")

    monkeypatch.setattr(tiny_model, "encode_ids", never)
    monkeypatch.setattr(tiny_model, "encode_image", never)
    with (
        Store.open(StoreSettings(path=str(tmp_path / "store"))) as store,
        pytest.raises(ModelMismatchError) as caught,
    ):
        ingest([docs], store=store, model=tiny_model)
    message = str(caught.value)
    assert "jinaai/jina-clip-v1@ceb3e44ca4d6 (768-d)" in message
    assert f"({tiny_model.embedding_dim}-d)" in message
    with Store.open(StoreSettings(path=str(tmp_path / "store"))) as store:
        assert store.count() == 0 and store.sources() == []


def test_cli_names_both_models(
    docs: Path, tmp_path: Path, tiny_checkpoint: Path, tiny_model: JinaClipModel
) -> None:
    store = tmp_path / "store"
    _store_of(store, OTHER)
    where = ("--qdrant-path", str(store), "--model", str(tiny_checkpoint))
    for args, code in (
        (("ingest", str(docs)), 2),
        (("query", "prime the pump"), 2),
        (("serve", "--port", "0"), 2),
    ):
        result = run_cli(*args, *where, cwd=tmp_path)
        assert result.returncode == code, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert "was built with jinaai/jina-clip-v1@ceb3e44ca4d6 (768-d)" in result.stderr
        assert f"{tiny_checkpoint} ({tiny_model.embedding_dim}-d)" in result.stderr
    with Store.open(StoreSettings(path=str(store))) as opened:
        assert opened.count() == 0


def _old_local_store(path: Path) -> None:
    """A store as earlier versions wrote it: qdrant-client local mode, one unnamed vector."""
    client = QdrantClient(path=str(path))
    client.create_collection(
        "mrag", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
    )
    client.upsert(
        "mrag",
        [
            models.PointStruct(
                id="00000000-0000-0000-0000-000000000001",
                vector=[1.0, 0.0, 0.0, 0.0],
                payload={"page_content": "x", "metadata": {"modality": "text", "source": "a"}},
            )
        ],
    )
    client.close()


def test_an_old_layout_store_says_what_to_do(tmp_path: Path) -> None:
    _old_local_store(tmp_path / "store")
    with pytest.raises(OldLayoutError, match=r"old layout.*mrag migrate --qdrant-path"):
        Store.open(StoreSettings(path=str(tmp_path / "store")))
    result = run_cli("stats", "--qdrant-path", str(tmp_path / "store"), cwd=tmp_path)
    assert result.returncode != 0 and "mrag migrate" in result.stderr
    assert "Traceback" not in result.stderr

    client = QdrantClient(":memory:")
    client.create_collection(
        "mrag", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
    )
    with pytest.raises(OldLayoutError, match="mrag migrate"):
        Store.from_client(client, "mrag")
