"""The store's rules: deterministic ids, whole-source replacement, the ledger, clear errors."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import BACKENDS, open_backend, run_python
from PIL import Image

from mrag.images.rendition import RENDITION_MAX_SIDE, encode_rendition
from mrag.store import (
    POINT_NAMESPACE,
    ModelMismatchError,
    SourceRecord,
    Store,
    StoreError,
    StoreInUseError,
    StoreSettings,
    point_id,
)
from mrag.store.payload import image_payload, make_point, text_payload


def _record(source: str, digest: str, points: int) -> SourceRecord:
    return SourceRecord(source, digest, points, points, 0, 1, "2026-01-01T00:00:00+00:00")


def _text_points(source: str, texts: list[str]) -> list:
    return [
        make_point(source, "text", i, [1.0, float(i), 0.5], text_payload(t, {"source": source}))
        for i, t in enumerate(texts)
    ]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    store = open_backend(request.param, tmp_path)
    store.ensure_collection(3)
    yield store
    store.close()


def test_point_ids_are_uuid5_of_source_modality_and_position() -> None:
    expected = uuid.uuid5(POINT_NAMESPACE, "a.pdf\x1ftext\x1f3")
    assert point_id("a.pdf", "text", 3) == str(expected)
    assert point_id("a.pdf", "text", 3) != point_id("a.pdf", "image", 3)
    assert point_id("a.pdf", "text", 3) != point_id("b.pdf", "text", 3)


def test_replacing_a_source_leaves_no_stale_points(store: Store) -> None:
    store.replace_source(_record("a.md", "h1", 3), _text_points("a.md", ["x", "y", "z"]))
    store.replace_source(_record("b.md", "h2", 1), _text_points("b.md", ["other"]))
    assert len(store.point_ids_of("a.md")) == 3
    store.replace_source(_record("a.md", "h3", 1), _text_points("a.md", ["only"]))
    assert len(store.point_ids_of("a.md")) == 1
    assert len(store.point_ids_of("b.md")) == 1
    assert store.source_record("a.md").content_hash == "h3"
    assert [record.source for record in store.sources()] == ["a.md", "b.md"]
    assert store.count() == 2 and store.count("text") == 2


def test_deleting_a_source_removes_points_and_ledger_entry(store: Store) -> None:
    store.replace_source(_record("a.md", "h1", 2), _text_points("a.md", ["x", "y"]))
    assert store.delete_source("a.md") == 2
    assert store.source_record("a.md") is None and store.count() == 0
    assert store.delete_source("a.md") == 0


def test_a_source_without_ledger_entry_is_not_done(store: Store) -> None:
    # What a run killed after writing points but before recording the source leaves behind.
    store.upsert(_text_points("a.md", ["x", "y"]))
    assert store.source_record("a.md") is None


def test_vector_size_mismatch_is_a_clear_error(store: Store) -> None:
    with pytest.raises(ModelMismatchError, match=r"built with .*\(3-d\).* uses .*\(768-d\)"):
        store.ensure_collection(768)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QDRANT_URL", raising=False)
    monkeypatch.setenv("MRAG_QDRANT_PATH", "/data/q")
    monkeypatch.setenv("MRAG_COLLECTION", "papers")
    settings = StoreSettings.from_env()
    assert (settings.path, settings.url, settings.collection) == ("/data/q", None, "papers")
    monkeypatch.setenv("QDRANT_URL", "http://qdrant:6333")
    monkeypatch.setenv("QDRANT_API_KEY", "k")
    settings = StoreSettings.from_env(collection="c")
    assert (settings.path, settings.url, settings.api_key, settings.collection) == (
        None,
        "http://qdrant:6333",
        "k",
        "c",
    )
    with pytest.raises(StoreError, match="not both"):
        StoreSettings.from_env(path="x", url="http://y")


def test_image_payload_carries_a_capped_decodable_rendition() -> None:
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (1500, 3000, 3), dtype=np.uint8))
    payload = image_payload("Figure 1: noise", photo, {"source": "a.pdf", "page": 2})
    metadata = payload["metadata"]
    assert payload["page_content"] == "Figure 1: noise" and metadata["modality"] == "image"
    assert (metadata["width"], metadata["height"]) == (3000, 1500)
    decoded = Image.open(io.BytesIO(base64.b64decode(metadata["image_base64"])))
    assert max(decoded.size) == RENDITION_MAX_SIDE and metadata["mime_type"] == "image/jpeg"
    chart = Image.new("RGB", (400, 300), "white")
    chart.paste((200, 0, 0), (50, 50, 150, 250))
    mime, data = encode_rendition(chart)
    assert mime == "image/png" and Image.open(io.BytesIO(data)).getpixel((100, 100)) == (200, 0, 0)


def test_an_embedded_store_in_use_is_reported(tmp_path: Path) -> None:
    settings = StoreSettings(path=str(tmp_path / "store"))
    holder = Store.open(settings)
    holder.ensure_collection(3)
    try:
        # A second process meets the same lock on the shard's write-ahead log.
        code = (
            "import sys\n"
            "from mrag.store import Store, StoreInUseError, StoreSettings\n"
            "try:\n"
            f"    Store.open(StoreSettings(path={settings.path!r}))\n"
            "except StoreInUseError as exc:\n"
            "    print(exc); sys.exit(3)\n"
        )
        result = run_python("-c", code, timeout=60)
        assert result.returncode == 3, result.stderr
        assert "in use by another process" in result.stdout
        with pytest.raises(StoreInUseError, match="in use by another process"):
            Store.open(settings)
    finally:
        holder.close()
    Store.open(settings).close()  # released on close


def test_dense_searches_widen_with_the_collection(store: Store) -> None:
    from mrag.store import Leg
    from mrag.store.vectors import SEARCH_WIDTHS, WIDEST_SEARCH, search_ef

    dense, wide, keyword = (
        Leg("text", [1.0, 0.0, 0.0], 8),
        Leg("text", [1.0, 0.0, 0.0], 900),
        Leg("bm25", "pump", 8),
    )
    request = store._request  # type: ignore[attr-defined]
    smallest = SEARCH_WIDTHS[0][1]
    assert request(dense, 1000).params.hnsw_ef == smallest
    assert request(dense, 10_000_000).params.hnsw_ef == WIDEST_SEARCH
    assert request(wide, 1000).params.hnsw_ef == 900  # never narrower than what the leg returns
    assert request(keyword, 1000).params is None
    # Wider as the store grows, and Qdrant's default (100) is passed by the largest stores,
    # where it lost recall (0.92 at 300k points, 0.41 at 1M on noise-dominated vectors).
    widths = [search_ef(dense, size) for size in (10**3, 10**5, 3 * 10**5, 10**6, 10**7)]
    assert widths == sorted(widths) and widths[0] < widths[-1]
    assert WIDEST_SEARCH > 100
