"""MultimodalRetriever: standard suite, exact matches, the modality gap, filters, quotas, fusion."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import docgen
import pytest
from helpers import open_backend
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_tests.integration_tests import RetrieversIntegrationTests
from PIL import Image
from qdrant_client import QdrantClient, models

from mrag.images.rendition import RENDITION_MAX_SIDE
from mrag.model import JinaClipModel
from mrag.model.embeddings import JinaClipEmbeddings
from mrag.retrieval.retriever import FusionSettings, Hit, MultimodalRetriever, fuse, split_filter
from mrag.store import Store, StoreError, point_id
from mrag.store.payload import image_payload, make_point, text_payload

CHUNKS = [
    ("report.pdf", 1, "the company report shows the price of energy in the city"),
    ("report.pdf", 2, "a rocket and an astronaut in space above the earth"),
    ("report.pdf", 3, "training a network model with a large data set"),
    ("notes.txt", 1, "a cat and a dog in the house"),
    ("notes.txt", 2, "coffee cup on the table near the window"),
    ("notes.txt", 3, "the red flower and the green tree by the water"),
]
COLORS = ["red", "blue", "green", "yellow", "purple"]


def build_sample(store: Store, embeddings: JinaClipEmbeddings) -> dict[str, Any]:
    """Write six text chunks and five images as ingestion would: Store + points helpers."""
    store.ensure_collection(embeddings.dimension)
    text_vectors = embeddings.embed_documents([text for _, _, text in CHUNKS])
    points = [
        make_point(
            source,
            "text",
            page,
            vector,
            text_payload(
                text,
                {
                    "source": source,
                    "page": page,
                    "pages": [page],
                    "content_hash": "h",
                    "topic": "demo",
                },
            ),
        )
        for (source, page, text), vector in zip(CHUNKS, text_vectors, strict=True)
    ]
    images = [docgen.marked(color, mark=i) for i, color in enumerate(COLORS)]
    image_vectors = embeddings.embed_image(images)
    for i, (image, vector) in enumerate(zip(images, image_vectors, strict=True)):
        source = "report.pdf" if i < 3 else "photos/album.pdf"
        metadata = {"source": source, "page": i + 1, "pages": [i + 1], "content_hash": "h"}
        points.append(
            make_point(
                source,
                "image",
                i,
                vector,
                image_payload(f"figure: a {COLORS[i]} picture", image, metadata),
            )
        )
    store.upsert(points)
    return {"images": images}


@pytest.fixture(scope="module")
def embeddings(tiny_model: JinaClipModel, tiny_checkpoint: Path) -> JinaClipEmbeddings:
    return JinaClipEmbeddings(tiny_checkpoint, model=tiny_model)


@pytest.fixture(scope="module", params=["edge", "local"])
def sample(
    request: pytest.FixtureRequest,
    embeddings: JinaClipEmbeddings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    store = open_backend(request.param, tmp_path_factory.mktemp("retriever"), "sample")
    built = build_sample(store, embeddings)
    yield {"store": store, "embeddings": embeddings, **built}
    store.close()


@pytest.fixture
def retriever(sample: dict[str, Any]) -> MultimodalRetriever:
    return MultimodalRetriever(store=sample["store"], embeddings=sample["embeddings"])


class TestMultimodalRetrieverStandard(RetrieversIntegrationTests):
    """LangChain's standard retriever suite on the tiny model and a local Qdrant."""

    @pytest.fixture(autouse=True)
    def _use_sample(self, sample: dict[str, Any]) -> None:
        self._params = {"store": sample["store"], "embeddings": sample["embeddings"]}

    @property
    def retriever_constructor(self) -> type[MultimodalRetriever]:
        return MultimodalRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return self._params

    @property
    def retriever_query_example(self) -> str:
        return "a rocket in space"


# -- exact matches (hold for any weights) ------------------------------------------------------


@pytest.mark.parametrize("fusion", ["rrf", "quota", "score"])
def test_exact_text_comes_first(retriever: MultimodalRetriever, fusion: str) -> None:
    source, page, text = CHUNKS[4]
    docs = retriever.invoke(text, fusion=fusion)
    first = docs[0]
    assert first.page_content == text
    assert first.id == point_id(source, "text", page)
    assert first.metadata["modality"] == "text"
    assert first.metadata["source"] == source and first.metadata["page"] == page
    assert first.metadata["rank"] == 1
    assert first.metadata["score"] == pytest.approx(1.0, abs=1e-4)
    assert first.metadata["topic"] == "demo"  # stored metadata comes along
    assert [doc.metadata["rank"] for doc in docs] == list(range(1, len(docs) + 1))


def test_exact_image_comes_first(retriever: MultimodalRetriever, sample: dict[str, Any]) -> None:
    docs = retriever.search_by_image(sample["images"][2], k=4)
    first = docs[0]
    assert first.id == point_id("report.pdf", "image", 2)
    assert first.metadata["modality"] == "image"
    assert first.metadata["score"] == pytest.approx(1.0, abs=1e-4)
    assert first.page_content == "figure: a green picture"
    # An image query reaches passages too (image→text), fused with the images.
    assert {doc.metadata["modality"] for doc in docs} == {"text", "image"}


def test_image_query_accepts_paths_and_bytes(
    retriever: MultimodalRetriever, sample: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "query.png"
    sample["images"][0].save(path)
    assert retriever.invoke_image(path, k=1)[0].id == point_id("report.pdf", "image", 0)
    assert retriever.search_by_image(path.read_bytes(), k=1)[0].id == point_id(
        "report.pdf", "image", 0
    )


async def test_async_paths(retriever: MultimodalRetriever, sample: dict[str, Any]) -> None:
    docs = await retriever.ainvoke(CHUNKS[1][2], k=2)
    assert docs[0].page_content == CHUNKS[1][2]
    by_image = await retriever.asearch_by_image(sample["images"][1], k=1)
    assert by_image[0].id == point_id("report.pdf", "image", 1)


# -- image payloads ------------------------------------------------------------------------------


def test_image_hits_carry_a_decodable_capped_image(
    embeddings: JinaClipEmbeddings, tmp_path: Path
) -> None:
    store = open_backend("edge", tmp_path, "big")
    store.ensure_collection(embeddings.dimension)
    big = docgen.marked("orange", size=(1600, 900))
    [vector] = embeddings.embed_image([big])
    store.upsert(
        [
            make_point(
                "big.png",
                "image",
                0,
                vector,
                image_payload("a large picture", big, {"source": "big.png", "page": None}),
            )
        ]
    )
    retriever = MultimodalRetriever(store=store, embeddings=embeddings)
    [doc] = retriever.search_by_image(big)
    assert doc.metadata["mime_type"] in ("image/png", "image/jpeg")
    image = Image.open(io.BytesIO(base64.b64decode(doc.metadata["image_base64"])))
    assert max(image.size) <= RENDITION_MAX_SIDE
    assert (doc.metadata["width"], doc.metadata["height"]) == (1600, 900)
    store.close()


# -- filters, k, quotas --------------------------------------------------------------------------


def test_k_and_default_interleaving(retriever: MultimodalRetriever) -> None:
    docs = retriever.invoke("energy price", k=6)
    assert len(docs) == 6
    modalities = [doc.metadata["modality"] for doc in docs]
    assert modalities.count("text") == 3 and modalities.count("image") == 3
    assert retriever.invoke("energy price", k=0) == []
    assert len(retriever.invoke("energy price", k=100)) == len(CHUNKS) + len(COLORS)


def test_filters(retriever: MultimodalRetriever) -> None:
    only_images = retriever.invoke("picture", filter={"modality": "image"}, k=10)
    assert {doc.metadata["modality"] for doc in only_images} == {"image"}
    assert len(only_images) == len(COLORS)
    notes = retriever.invoke("picture", filter={"source": "notes.txt"}, k=10)
    assert {doc.metadata["source"] for doc in notes} == {"notes.txt"}
    assert len(notes) == 3
    pages = retriever.invoke("picture", filter={"page": [1, 2]}, k=20)
    assert {doc.metadata["page"] for doc in pages} == {1, 2}
    both = retriever.invoke("x", filter={"source": "report.pdf", "modality": ["text"]}, k=10)
    assert len(both) == 3 and {doc.metadata["modality"] for doc in both} == {"text"}
    topic = retriever.invoke("x", filter={"topic": "demo"}, k=20)
    assert len(topic) == len(CHUNKS)
    qdrant_filter = models.Filter(
        must=[
            models.FieldCondition(
                key="metadata.source", match=models.MatchValue(value="photos/album.pdf")
            )
        ]
    )
    album = retriever.invoke("x", filter=qdrant_filter, k=10)
    assert {doc.metadata["source"] for doc in album} == {"photos/album.pdf"}
    with pytest.raises(ValueError, match="modality"):
        retriever.invoke("x", filter={"modality": "video"})


def test_element_filter(retriever: MultimodalRetriever) -> None:
    # Payloads built without an element say what they are: passages "text", pictures "figure".
    figures = retriever.invoke("picture", filter={"element": "figure"}, k=20)
    assert len(figures) == len(COLORS)
    assert {doc.metadata["element"] for doc in figures} == {"figure"}
    texts = retriever.invoke("picture", filter={"element": ["text"]}, k=20)
    assert len(texts) == len(CHUNKS) and {doc.metadata["modality"] for doc in texts} == {"text"}
    assert retriever.invoke("picture", filter={"element": "table"}, k=20) == []


def test_filter_field_on_the_retriever(sample: dict[str, Any]) -> None:
    retriever = MultimodalRetriever(
        store=sample["store"],
        embeddings=sample["embeddings"],
        filter={"modality": "text", "source": "report.pdf"},
        k=5,
    )
    docs = retriever.invoke("anything")
    assert len(docs) == 3
    assert all(doc.metadata["source"] == "report.pdf" for doc in docs)


def test_quota_fusion(retriever: MultimodalRetriever) -> None:
    docs = retriever.invoke("energy", fusion="quota", k=5, image_share=0.2)
    assert [doc.metadata["modality"] for doc in docs].count("image") == 1
    docs = retriever.invoke("energy", fusion="quota", k=6, text_k=1, image_k=5)
    assert [doc.metadata["modality"] for doc in docs].count("text") == 1
    # Only five images exist: the sixth image place is backfilled with a passage.
    docs = retriever.invoke("energy", fusion="quota", k=8, image_k=8, text_k=0)
    modalities = [doc.metadata["modality"] for doc in docs]
    assert len(docs) == 8 and modalities.count("image") == 5


def test_caps_in_rrf(retriever: MultimodalRetriever) -> None:
    docs = retriever.invoke("energy", k=6, image_k=1, hybrid=False)
    modalities = [doc.metadata["modality"] for doc in docs]
    assert modalities == ["text", "image", "text", "text", "text", "text"]  # image capped at 1
    # The keyword leg finds the one passage saying "energy": two legs rank it, so it leads,
    # and the best of the rest still interleaves with the image.
    docs = retriever.invoke("energy", k=6, image_k=1)
    assert "energy" in docs[0].page_content
    assert [doc.metadata["modality"] for doc in docs].count("image") == 1
    docs = retriever.invoke("energy", k=6, text_k=2)
    assert [doc.metadata["modality"] for doc in docs].count("text") == 2


def test_score_threshold_per_modality(retriever: MultimodalRetriever) -> None:
    # The tiny model's text→image cosines sit near 0, text→text near 0.9: a 0.5 floor on
    # images drops them all and their places go to passages.
    docs = retriever.invoke("energy", k=6, score_threshold={"image": 0.5})
    assert {doc.metadata["modality"] for doc in docs} == {"text"}
    assert len(docs) == 6
    with pytest.raises(ValueError, match="modality"):
        MultimodalRetriever(
            store=retriever.store, embeddings=retriever.embeddings, score_threshold={"audio": 0.1}
        )


def test_bad_options(retriever: MultimodalRetriever) -> None:
    with pytest.raises(TypeError, match="unexpected"):
        retriever.invoke("x", top_k=3)
    with pytest.raises(ValueError, match="fusion"):
        retriever.invoke("x", fusion="magic")


def test_missing_collection(embeddings: JinaClipEmbeddings) -> None:
    retriever = MultimodalRetriever(
        client=QdrantClient(":memory:"), collection="nope", embeddings=embeddings
    )
    with pytest.raises(StoreError, match="does not exist"):
        retriever.invoke("x")


# -- the modality gap ----------------------------------------------------------------------------


class FixedEmbeddings(Embeddings):
    """Maps known queries to fixed vectors: lets a test build any score layout it wants."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[text] for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]


def _unit(*values: float) -> list[float]:
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values]


def test_modality_gap_rrf_keeps_the_image_raw_scores_bury_it() -> None:
    """Every passage outscores every image, as with real CLIP models; the relevant image
    must still make the top k under fusion, and does not under a raw-score sort."""
    store = Store.memory("gap")
    store.ensure_collection(4)
    query = [1.0, 0.0, 0.0, 0.0]
    points = []
    # Passages: cosine 0.80 .. 0.71 with the query, none of them about the question.
    for i in range(10):
        score = 0.80 - 0.01 * i
        vector = _unit(score, (1 - score**2) ** 0.5, 0.0, 0.0)
        points.append(
            make_point(
                "doc.pdf",
                "text",
                i,
                vector,
                text_payload(f"passage {i}", {"source": "doc.pdf", "page": i}),
            )
        )
    # Images: the relevant one scores 0.30, the others 0.10 — all below every passage.
    for i, score in enumerate([0.30, 0.10, 0.09]):
        vector = _unit(score, 0.0, (1 - score**2) ** 0.5, 0.0)
        payload = image_payload(
            f"figure {i}", docgen.marked("red", mark=i), {"source": "doc.pdf", "page": 20 + i}
        )
        points.append(make_point("doc.pdf", "image", i, vector, payload))
    store.upsert(points)
    relevant = point_id("doc.pdf", "image", 0)
    retriever = MultimodalRetriever(store=store, embeddings=FixedEmbeddings({"q": query}), k=4)

    raw = retriever.invoke("q", fusion="score")
    assert [doc.metadata["modality"] for doc in raw] == ["text"] * 4
    assert relevant not in [doc.id for doc in raw]
    assert min(doc.metadata["score"] for doc in raw) > 0.30  # the gap, by construction

    fused = retriever.invoke("q")  # default: rrf
    ids = [doc.id for doc in fused]
    assert relevant in ids and ids.index(relevant) == 1  # right after the best passage
    assert fused[1].metadata["score"] == pytest.approx(0.30, abs=1e-5)  # raw cosine kept

    quota = retriever.invoke("q", fusion="quota")
    assert relevant in [doc.id for doc in quota]


# -- pure fusion logic ---------------------------------------------------------------------------


def _hits(modality: str, scores: Sequence[float]) -> list[Hit]:
    return [
        Hit(id=f"{modality}{i}", modality=modality, score=s, payload={}, modality_rank=i + 1)
        for i, s in enumerate(scores)
    ]


def test_fuse_rrf_interleaves_by_rank() -> None:
    hits = {"text": _hits("text", [0.9, 0.8, 0.7]), "image": _hits("image", [0.3, 0.2, 0.1])}
    fused = fuse(hits, FusionSettings(k=5))
    assert [hit.id for hit in fused] == ["text0", "image0", "text1", "image1", "text2"]


def test_fuse_weights_and_rrf_k() -> None:
    hits = {"text": _hits("text", [0.9, 0.8, 0.7]), "image": _hits("image", [0.3, 0.2, 0.1])}
    tilted = fuse(hits, FusionSettings(k=3, rrf_k=0, modality_weights={"image": 3.0}))
    # With rrf_k=0: image ranks 1..3 score 3, 1.5, 1; text rank 1 scores 1 (tie → raw score).
    assert [hit.id for hit in tilted] == ["image0", "image1", "text0"]


def test_fuse_score_and_quota() -> None:
    hits = {"text": _hits("text", [0.9, 0.8, 0.7]), "image": _hits("image", [0.95, 0.2])}
    assert [h.id for h in fuse(hits, FusionSettings(k=3, fusion="score"))] == [
        "image0",
        "text0",
        "text1",
    ]
    quota = fuse(hits, FusionSettings(k=4, fusion="quota", text_k=1, image_k=3))
    assert sorted(h.id for h in quota) == ["image0", "image1", "text0", "text1"]  # backfilled
    assert FusionSettings(k=5, image_share=0.4).quotas() == {"text": 3, "image": 2}
    assert FusionSettings(k=5, text_k=4).quotas() == {"text": 4, "image": 1}
    assert fuse(hits, FusionSettings(k=0)) == []


def test_split_filter() -> None:
    assert split_filter(None) == (["text", "image"], None)
    modalities, rest = split_filter({"modality": "image", "source": ["a", "b"], "page": None})
    assert modalities == ["image"]
    assert rest is not None and len(rest.must) == 1  # type: ignore[arg-type]


def test_documents_are_langchain_documents(retriever: MultimodalRetriever) -> None:
    docs = retriever.invoke("cat", k=3)
    assert all(isinstance(doc, Document) and doc.id for doc in docs)
