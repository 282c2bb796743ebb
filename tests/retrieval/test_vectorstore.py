"""MragVectorStore: LangChain's standard suite, plus images, ids and metadata rules."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import docgen
import pytest
from helpers import open_backend
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStoreRetriever
from langchain_tests.integration_tests import VectorStoreIntegrationTests
from PIL import Image

from mrag.model import JinaClipModel
from mrag.model.embeddings import JinaClipEmbeddings
from mrag.retrieval.retriever import MultimodalRetriever
from mrag.retrieval.vectorstore import HIDDEN_KEY, MragVectorStore, qdrant_point_id
from mrag.store import Store


class TestMragVectorStoreStandard(VectorStoreIntegrationTests):
    """The standard sync and async suite on both backends, LangChain's fake embeddings."""

    @pytest.fixture(params=["edge", "memory"])
    def vectorstore(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> Iterator[MragVectorStore]:
        store = open_backend(request.param, tmp_path, "standard")
        yield MragVectorStore(store, embeddings=self.get_embeddings())
        store.close()


@pytest.fixture
def embeddings(tiny_model: JinaClipModel, tiny_checkpoint: Path) -> JinaClipEmbeddings:
    return JinaClipEmbeddings(tiny_checkpoint, model=tiny_model)


@pytest.fixture(params=["edge", "local"])
def store(
    request: pytest.FixtureRequest, embeddings: JinaClipEmbeddings, tmp_path: Path
) -> Iterator[MragVectorStore]:
    backend = open_backend(request.param, tmp_path, "vs")
    yield MragVectorStore(backend, embeddings=embeddings)
    backend.close()


def test_texts_and_images_share_the_collection(store: MragVectorStore) -> None:
    text_ids = store.add_texts(["a red house", "a blue car"], [{"source": "a.txt"}, {}])
    image_ids = store.add_images(
        [docgen.marked("red"), docgen.marked("blue")],
        [{"source": "red.png"}, {"source": "blue.png"}],
        captions=["red square", "blue square"],
    )
    assert len(set(text_ids + image_ids)) == 4
    assert store.store.count("text") == 2
    assert store.store.count("image") == 2
    [red] = store.get_by_ids([image_ids[0]])
    assert red.page_content == "red square"
    assert red.metadata["source"] == "red.png"
    assert "modality" not in red.metadata  # added by mrag, hidden from the caller
    assert red.metadata["mime_type"] in ("image/png", "image/jpeg")
    decoded = Image.open(io.BytesIO(base64.b64decode(red.metadata["image_base64"])))
    assert decoded.size == (120, 80)


def test_ids_are_content_derived_and_idempotent(store: MragVectorStore) -> None:
    first = store.add_texts(["same text"], [{"k": 1}])
    second = store.add_texts(["same text"], [{"k": 1}])
    assert first == second
    assert uuid.UUID(first[0])
    assert store.store.count() == 1
    other = store.add_texts(["same text"], [{"k": 2}])  # other metadata: another point
    assert other != first
    images = store.add_images([docgen.marked("green")]) + store.add_images([docgen.marked("green")])
    assert images[0] == images[1]


def test_string_ids_round_trip(store: MragVectorStore) -> None:
    ids = store.add_texts(["x", "y"], ids=["doc-1", str(uuid.UUID(int=7)).upper()])
    assert ids == ["doc-1", str(uuid.UUID(int=7)).upper()]
    docs = store.get_by_ids(ids)
    assert [doc.id for doc in docs] == ids
    assert qdrant_point_id("doc-1") != "doc-1"
    store.delete(["doc-1"])
    assert [doc.id for doc in store.get_by_ids(ids)] == [ids[1]]


def test_user_given_modality_is_kept(store: MragVectorStore) -> None:
    [doc_id] = store.add_texts(["tagged"], [{"modality": "text", "page": 3}])
    [doc] = store.get_by_ids([doc_id])
    assert doc.metadata == {"modality": "text", "page": 3}
    [record] = store.store.retrieve([doc_id])
    assert HIDDEN_KEY not in record.payload
    with pytest.raises(ValueError, match="modality"):
        store.add_texts(["wrong"], [{"modality": "image"}])


def test_search_with_scores_and_filter(store: MragVectorStore) -> None:
    store.add_texts(
        ["the cat sat on the house", "rocket and astronaut in space", "coffee cup on the table"],
        [{"source": "a", "page": 1}, {"source": "b", "page": 2}, {"source": "a", "page": 2}],
    )
    hits = store.similarity_search_with_score("rocket and astronaut in space", k=3)
    assert hits[0][0].page_content == "rocket and astronaut in space"
    assert hits[0][1] == pytest.approx(1.0, abs=1e-4)
    assert [score for _, score in hits] == sorted((score for _, score in hits), reverse=True)
    only_a = store.similarity_search("rocket and astronaut in space", k=3, filter={"source": "a"})
    assert {doc.metadata["source"] for doc in only_a} == {"a"}
    page_2 = store.similarity_search("cat", k=3, filter={"page": [2]})
    assert {doc.metadata["page"] for doc in page_2} == {2}
    vector = store.embeddings.embed_query("coffee cup on the table")
    assert store.similarity_search_by_vector(vector, k=1)[0].page_content == (
        "coffee cup on the table"
    )
    scored = store.similarity_search_with_relevance_scores("coffee cup on the table", k=1)
    assert 0.99 <= scored[0][1] <= 1.0


def test_add_documents_and_from_texts(embeddings: JinaClipEmbeddings) -> None:
    store = MragVectorStore.from_texts(
        ["alpha beta", "gamma delta"], embeddings, [{"n": 1}, {"n": 2}], ids=["a", "b"]
    )
    store.add_documents([Document(page_content="epsilon", metadata={"n": 3}, id="c")])
    docs = store.get_by_ids(["c", "a", "missing"])
    assert [(doc.id, doc.metadata) for doc in docs] == [("c", {"n": 3}), ("a", {"n": 1})]


def test_as_retriever_is_multimodal_by_default(store: MragVectorStore) -> None:
    store.add_texts(["one", "two", "three"])
    store.add_images([docgen.marked("red")], captions=["a red picture"])
    retriever = store.as_retriever(search_kwargs={"k": 2})
    assert isinstance(retriever, MultimodalRetriever)
    docs = retriever.invoke("one")
    assert [doc.metadata["modality"] for doc in docs] == ["text", "image"]
    classic = store.as_retriever(search_type="similarity", search_kwargs={"k": 2})
    assert isinstance(classic, VectorStoreRetriever)
    assert len(classic.invoke("one")) == 2
    with pytest.raises(ValueError, match="search_type"):
        store.as_retriever(search_type="bogus")


async def test_async_images(store: MragVectorStore) -> None:
    [image_id] = await store.aadd_images([docgen.marked("yellow")], [{"source": "y.png"}])
    docs = await store.aget_by_ids([image_id])
    assert docs[0].metadata["source"] == "y.png"


def test_add_images_needs_image_embeddings() -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding

    fake = DeterministicFakeEmbedding(size=4)
    store = MragVectorStore(Store.memory("x"), embeddings=fake)
    with pytest.raises(TypeError, match="embed_image"):
        store.add_images([docgen.marked("red")])


def test_max_marginal_relevance(store: MragVectorStore) -> None:
    texts = ["the red pump", "the red pump", "the red pump!", "a blue valve", "green wiring"]
    store.add_texts(texts, [{"n": i} for i in range(len(texts))])
    relevant = store.similarity_search("the red pump", k=3)
    assert [doc.metadata["n"] for doc in relevant][:2] in ([0, 1], [1, 0])
    diverse = store.max_marginal_relevance_search("the red pump", k=3, fetch_k=5, lambda_mult=0.1)
    # Near-duplicates are passed over for something different.
    assert len({doc.page_content.rstrip("!") for doc in diverse}) >= 2
    assert diverse[0].page_content == "the red pump"
    only_relevance = store.max_marginal_relevance_search("the red pump", k=3, lambda_mult=1.0)
    assert [d.page_content for d in only_relevance] == [d.page_content for d in relevant]
    mmr = store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 5})
    assert len(mmr.invoke("the red pump")) == 2


def test_similarity_search_by_image(store: MragVectorStore) -> None:
    [red, blue] = store.add_images(
        [docgen.marked("red"), docgen.marked("blue")], captions=["r", "b"]
    )
    store.add_texts(["a sentence"])
    hits = store.similarity_search_by_image(docgen.marked("blue"), k=1)
    assert hits[0].id == blue
    images = store.similarity_search_by_image(
        docgen.marked("red"), k=5, filter={"modality": "image"}
    )
    assert {doc.id for doc in images} == {red, blue}


def test_delete_without_ids_empties_the_collection(store: MragVectorStore) -> None:
    store.add_texts(["one", "two"])
    store.add_images([docgen.marked("red")])
    assert store.store.count() == 3
    store.delete()
    assert store.store.count() == 0 and store.similarity_search("one") == []
    store.add_texts(["three"])  # still usable afterwards
    assert store.store.count() == 1


def test_points_of_other_writers_count_as_text(store: MragVectorStore) -> None:
    from mrag.store import Point

    store.add_texts(["ours"], [{"source": "a"}])
    # What langchain-qdrant (vector_name="text") writes: no metadata.modality, no mrag keys.
    vector = store.embeddings.embed_query("theirs")
    foreign = Point(
        str(uuid.UUID(int=42)),
        "text",
        vector,
        {"page_content": "theirs", "metadata": {"source": "b"}},
    )
    store.store.upsert([foreign])
    retriever = store.as_retriever(k=4)
    docs = retriever.invoke("theirs")
    found = next(doc for doc in docs if doc.page_content == "theirs")
    assert found.metadata["modality"] == "text" and found.metadata["source"] == "b"
    assert store.store.count("text") == 2
    text_only = retriever.invoke("theirs", filter={"modality": "text"})
    assert "theirs" in [doc.page_content for doc in text_only]
    [doc] = store.get_by_ids([str(uuid.UUID(int=42))])
    assert doc.metadata == {"source": "b"}


def test_open_in_one_line(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MRAG_MODEL", str(tiny_checkpoint))
    monkeypatch.setenv("MRAG_QDRANT_PATH", str(tmp_path / "store"))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    vectorstore = MragVectorStore.open()
    vectorstore.add_texts(["prime the pump"])
    vectorstore.store.close()
    retriever = MultimodalRetriever.open(k=1)
    assert retriever.invoke("prime the pump")[0].page_content == "prime the pump"
    retriever.store.close()
