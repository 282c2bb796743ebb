"""Hybrid retrieval: the BM25 keyword leg finds passages by their rarest words, on both backends.

The model has random weights, so its dense vectors carry no meaning: only a real keyword leg can
put the right passage in the top 3 for a query of three of its rarest words.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

import pytest
from helpers import shared_path
from qdrant_client import QdrantClient

from mrag.ingestion.run import ingest
from mrag.model import JinaClipModel
from mrag.model.embeddings import JinaClipEmbeddings
from mrag.retrieval.retriever import MultimodalRetriever
from mrag.store import Found, Store, StoreSettings
from mrag.store.transfer import export_store

MANUAL = ("corpus", "pdf", "pdfplumber", "tests", "pdfs", "federal-register-2020-17221.pdf")
_WORD = re.compile(r"[^\W\d_]{4,}")


def rarest_words(chunks: list[Found], count: int = 3) -> dict[str, list[str]]:
    """For each passage, ``count`` of its words that the fewest passages contain."""
    words_of = {
        found.id: set(_WORD.findall(found.payload["page_content"].lower())) for found in chunks
    }
    frequency = Counter(word for words in words_of.values() for word in words)
    return {
        point: sorted(words, key=lambda word: (frequency[word], word))[:count]
        for point, words in words_of.items()
        if len(words) >= count
    }


@pytest.fixture(scope="module")
def ingested(
    tiny_model: JinaClipModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    """The manual ingested into the embedded store."""
    manual = shared_path(*MANUAL)
    store = Store.open(StoreSettings(path=str(tmp_path_factory.mktemp("hybrid") / "edge")))
    report = ingest([manual], store=store, model=tiny_model)
    assert report.count("ingested") == 1, report.to_dict()
    yield store
    store.close()


@pytest.fixture(scope="module", params=["edge", "server"])
def manual_store(request: pytest.FixtureRequest, ingested: Store) -> Iterator[Store]:
    """The embedded store, or the same points exported to the server backend (in memory)."""
    if request.param == "edge":
        yield ingested
        return
    server = Store.from_client(QdrantClient(":memory:"), "mrag")
    export_store(ingested, server)
    yield server
    server.close()


def test_three_rare_words_find_their_passage(manual_store: Store, tiny_model: JinaClipModel):
    chunks = list(manual_store.iter_points())
    every = rarest_words([c for c in chunks if c.payload["metadata"]["modality"] == "text"])
    assert len(every) >= 40
    # Forty passages spread over the whole manual keep the test quick.
    step = len(every) / 40
    chosen = sorted(every)[:: max(1, int(step))][:40]
    queries = {point: every[point] for point in chosen}
    retriever = MultimodalRetriever(
        store=manual_store, embeddings=JinaClipEmbeddings(model=tiny_model)
    )

    def found(hybrid: bool) -> int:
        hits = 0
        for point, words in queries.items():
            top = retriever.invoke(" ".join(words), k=3, hybrid=hybrid)
            hits += point in [doc.id for doc in top]
        return hits

    with_keywords = found(hybrid=True)
    assert with_keywords == len(queries)
    # The same queries on the dense legs alone: random weights rank noise.
    assert found(hybrid=False) < len(queries) / 2


def test_keyword_hits_report_their_cosine(manual_store: Store, tiny_model: JinaClipModel):
    retriever = MultimodalRetriever(
        store=manual_store, embeddings=JinaClipEmbeddings(model=tiny_model)
    )
    [hit] = retriever.search_hits(
        tiny_model.encode_text(["federal register"])[0].tolist(),
        text="federal register",
        k=1,
        filter={"modality": "text"},
    )
    assert "bm25" in hit.legs and -1.0 <= hit.score <= 1.0
