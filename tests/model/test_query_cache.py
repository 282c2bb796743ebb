"""The cache of recent single-text embeddings: identical vectors, no model run on a hit, bounded."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mrag.model import JinaClipModel
from mrag.model.embeddings import JinaClipEmbeddings
from mrag.model.query_cache import QueryCache


@pytest.fixture
def model(tiny_checkpoint: Path) -> JinaClipModel:
    # A model of its own: the tests change its cache.
    return JinaClipModel.from_pretrained(tiny_checkpoint, dtype="float32")


class TowerRuns:
    """Counts the text tower's forward passes."""

    def __init__(self, model: JinaClipModel) -> None:
        self.count = 0
        model.text_model.register_forward_hook(self._seen)

    def _seen(self, *_: object) -> None:
        self.count += 1


def test_a_repeated_query_gives_the_identical_vector_without_running_the_model(model) -> None:
    runs = TowerRuns(model)
    first = model.encode_text("where is the fuel filter")
    assert runs.count == 1
    again = model.encode_text("where is the fuel filter")
    as_list = model.encode_text(["where is the fuel filter"])
    assert runs.count == 1
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, as_list[0])
    assert model.query_cache.hits == 2 and model.query_cache.misses == 1
    # Callers own what they are given: changing it does not change the cache.
    again[:] = 0
    np.testing.assert_array_equal(model.encode_text("where is the fuel filter"), first)


def test_cached_vectors_equal_the_uncached_model(model) -> None:
    texts = ["a red motorcycle", "torque of the rear axle nut", ""]
    cached = [model.encode_text(text) for text in texts]
    model.query_cache = QueryCache(0)
    for text, vector in zip(texts, cached, strict=True):
        np.testing.assert_array_equal(model.encode_text(text), vector)
    assert len(model.query_cache) == 0
    # A batch of several texts takes the batched path; it agrees to float32 rounding.
    np.testing.assert_allclose(model.encode_text(texts), np.stack(cached), atol=1e-5)


def test_different_texts_and_budgets_are_different_entries(model) -> None:
    runs = TowerRuns(model)
    a = model.encode_text("figure of the pump")
    b = model.encode_text("figure of the pump ")  # the exact text is the key
    c = model.encode_text("figure of the pump", max_length=4)
    assert runs.count == 3 and len(model.query_cache) == 3
    assert not np.array_equal(a, c)
    assert b.shape == a.shape


def test_the_cache_is_bounded_and_drops_the_least_recently_used(model) -> None:
    model.query_cache = QueryCache(2)
    runs = TowerRuns(model)
    for text in ("one", "two", "one", "three"):  # "two" is now the least recently used
        model.encode_text(text)
    assert len(model.query_cache) == 2 and runs.count == 3
    model.encode_text("one")
    assert runs.count == 3
    model.encode_text("two")
    assert runs.count == 4 and len(model.query_cache) == 2


def test_a_model_in_another_dtype_does_not_reuse_entries(model) -> None:
    before = model.encode_text("a wiring diagram")
    model.to(torch.bfloat16)
    runs = TowerRuns(model)
    after = model.encode_text("a wiring diagram")
    assert runs.count == 1
    assert not np.array_equal(before, after)
    np.testing.assert_allclose(before, after, atol=5e-2)


def test_changing_the_weights_in_place_invalidates_entries(model) -> None:
    before = model.encode_text("a wiring diagram")
    with torch.no_grad():
        model.text_model.transformer.embeddings.word_embeddings.weight.mul_(2)
    runs = TowerRuns(model)
    model.encode_text("a wiring diagram")
    assert runs.count == 1 and before.shape == (model.embedding_dim,)


def test_langchain_embed_query_goes_through_the_cache(model) -> None:
    embeddings = JinaClipEmbeddings(model=model)
    runs = TowerRuns(model)
    first = embeddings.embed_query("exploded view of the gearbox")
    second = JinaClipEmbeddings(model=model).embed_query("exploded view of the gearbox")
    assert runs.count == 1 and first == second
    assert all(type(value) is float for value in first)


def test_cache_unit_behaviour() -> None:
    cache = QueryCache(2)
    value = torch.ones(1, 3)
    cache.put("a", value)
    value.zero_()  # the cache keeps its own copy
    assert torch.equal(cache.get("a"), torch.ones(1, 3))
    assert cache.get("b") is None
    assert (cache.hits, cache.misses) == (1, 1)
    cache.put("b", torch.zeros(1, 3))
    cache.get("a")
    cache.put("c", torch.zeros(1, 3))
    assert "a" in cache and "c" in cache and "b" not in cache
    cache.clear()
    assert len(cache) == 0
    QueryCache(0).put("a", value)
    assert len(QueryCache(0)) == 0
    with pytest.raises(ValueError, match="maxsize"):
        QueryCache(-1)
    restored = pickle.loads(pickle.dumps(cache))
    assert restored.maxsize == 2 and len(restored) == 0
