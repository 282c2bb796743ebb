"""A LangChain ``VectorStore`` over an mrag collection: texts and images in one Qdrant space.

:class:`MragVectorStore` reads and writes the same payload layout as ingestion
(``page_content`` + ``metadata`` with ``modality``), so points it adds are found by
:class:`~mrag.retrieval.retriever.MultimodalRetriever` and ingested points are found by it.

Ids. Qdrant point ids must be UUIDs (or integers); LangChain ids are any string. A UUID string is
used as the point id; any other string maps to a uuid5 of it and the string itself is kept in the
payload (top-level ``doc_id``), so ``Document.id`` comes back exactly as given. Without an id, a
point's id is a uuid5 of its content and metadata, so adding the same thing twice is idempotent.

Metadata round-trips as given. mrag writes ``metadata.modality`` on every point (filters and
other Qdrant clients use it; points of other writers that lack it count as text); when the
caller did not set it, it is added and its name recorded in the payload
(top-level ``mrag_hidden``), and this class strips it again on the way out. Image points also
expose ``mime_type``, ``image_base64``, ``width`` and ``height``: they *are* the image. Ingested
points have no hidden keys, so all of their metadata is returned.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from mrag.images import ImageInput, load_image
from mrag.retrieval.retriever import DOC_ID_KEY, MultimodalRetriever, document_id, split_filter
from mrag.store import (
    DEFAULT_COLLECTION,
    POINT_NAMESPACE,
    Found,
    Leg,
    Point,
    Store,
    StoreSettings,
    as_store,
)
from mrag.store.payload import image_payload

#: Top-level payload key listing metadata keys mrag added on the caller's behalf.
HIDDEN_KEY = "mrag_hidden"
_SEARCH_TYPES_OF_BASE = ("similarity", "similarity_score_threshold", "mmr")


def qdrant_point_id(doc_id: str) -> str:
    """The Qdrant point id for a caller's id: the UUID itself, or a uuid5 of the string."""
    try:
        parsed = uuid.UUID(doc_id)
    except (ValueError, AttributeError, TypeError):
        return str(uuid.uuid5(POINT_NAMESPACE, f"id\x1f{doc_id}"))
    # Qdrant normalises UUIDs to lowercase-hyphenated; keep the original when it differs.
    return str(parsed)


def content_id(modality: str, content: str, metadata: dict[str, Any]) -> str:
    """Deterministic id of a point added without one: uuid5 of modality, content and metadata."""
    canonical = json.dumps(metadata, sort_keys=True, default=str, ensure_ascii=False)
    return str(uuid.uuid5(POINT_NAMESPACE, f"content\x1f{modality}\x1f{content}\x1f{canonical}"))


def _with_modality(metadata: dict[str, Any], modality: str) -> tuple[dict[str, Any], list[str]]:
    given = metadata.get("modality")
    if given is None:
        return {**metadata, "modality": modality}, ["modality"]
    if given != modality:
        raise ValueError(f"metadata says modality {given!r} for a point of modality {modality!r}")
    return dict(metadata), []


def _payload_document(point_id: Any, payload: dict[str, Any]) -> Document:
    metadata = dict(payload.get("metadata") or {})
    for key in payload.get(HIDDEN_KEY) or ():
        metadata.pop(key, None)
    return Document(
        id=document_id(point_id, payload),
        page_content=str(payload.get("page_content") or ""),
        metadata=metadata,
    )


def _cosine_relevance(score: float) -> float:
    return min(max(score, 0.0), 1.0)


def _normalise_ids(ids: Sequence[str | None] | None, count: int) -> list[str | None]:
    if ids is None:
        return [None] * count
    ids = list(ids)
    if len(ids) != count:
        raise ValueError(f"got {len(ids)} ids for {count} items")
    return [None if item is None else str(item) for item in ids]


class MragVectorStore(VectorStore):
    """LangChain vector store on an mrag collection (text and images).

    Args:
        store: an open :class:`mrag.store.Store`, or a ``QdrantClient`` (with ``collection``).
        collection: collection name when ``store`` is a client.
        embeddings: any LangChain ``Embeddings`` for text; :meth:`add_images` also needs an
            ``embed_image`` method (e.g. :class:`mrag.JinaClipEmbeddings`).

    The collection is created on the first add (vector size from the embeddings).
    ``similarity_search`` is a plain nearest-neighbour search over every point, the usual
    ``VectorStore`` contract. For mixed text and image results use :meth:`as_retriever`, which
    ranks each modality on its own and adds the keyword leg (see :mod:`mrag.retrieval.retriever`).
    """

    def __init__(
        self,
        store: Store | Any,
        collection: str = DEFAULT_COLLECTION,
        *,
        embeddings: Embeddings,
    ) -> None:
        self.store = as_store(store, collection)
        self.collection = self.store.collection
        self._embeddings = embeddings

    @classmethod
    def open(
        cls,
        path: str | None = None,
        *,
        url: str | None = None,
        collection: str | None = None,
        model: str | None = None,
    ) -> MragVectorStore:
        """The vector store an app wants in one line: the store from arguments or the
        environment (``./.mrag/qdrant`` by default) and ``model`` (or ``MRAG_MODEL``), else the
        model the store records, else jina-clip-v1.
        """
        from mrag.retrieval.retriever import open_default

        store, embeddings = open_default(path, url, collection, model)
        return cls(store, embeddings=embeddings)

    @property
    def embeddings(self) -> Embeddings:
        """The embeddings used for text (and, when it has ``embed_image``, images)."""
        return self._embeddings

    # -- writing ---------------------------------------------------------------------------------

    def _write(
        self, vectors: Sequence[Sequence[float]], payloads: list[dict[str, Any]], ids: list[str]
    ) -> list[str]:
        if not vectors:
            return []
        from mrag.retrieval.retriever import model_record_of

        record = model_record_of(self._embeddings)
        self.store.ensure_collection(record or len(vectors[0]))
        points = []
        for vector, payload, doc_id in zip(vectors, payloads, ids, strict=True):
            point = qdrant_point_id(doc_id)
            if point != doc_id:
                payload[DOC_ID_KEY] = doc_id
            modality = payload["metadata"]["modality"]
            points.append(Point(point, modality, vector, payload))
        self.store.upsert(points)
        return ids

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        *,
        ids: list[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store texts; returns their ids (given ones, or content-derived uuid5s)."""
        texts = list(texts)
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        if len(metadatas) != len(texts):
            raise ValueError(f"got {len(metadatas)} metadatas for {len(texts)} texts")
        given = _normalise_ids(ids, len(texts))
        payloads: list[dict[str, Any]] = []
        final_ids: list[str] = []
        for text, metadata, doc_id in zip(texts, metadatas, given, strict=True):
            stored, hidden = _with_modality(dict(metadata or {}), "text")
            payload: dict[str, Any] = {"page_content": text, "metadata": stored}
            if hidden:
                payload[HIDDEN_KEY] = hidden
            payloads.append(payload)
            final_ids.append(doc_id or content_id("text", text, dict(metadata or {})))
        vectors = self._embeddings.embed_documents(texts) if texts else []
        return self._write(vectors, payloads, final_ids)

    def add_images(
        self,
        uris: Sequence[ImageInput],
        metadatas: list[dict] | None = None,
        ids: list[str | None] | None = None,
        *,
        captions: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store images (paths, bytes, PIL images or ``data:`` URIs).

        Each point keeps a rendition of the picture (``image_base64``, at most 1024 px) and
        ``captions[i]`` (default empty) as its ``page_content``; returns the ids.
        """
        embed_image: Callable[[list[Any]], list[list[float]]] | None = getattr(
            self._embeddings, "embed_image", None
        )
        if embed_image is None:
            raise TypeError(
                f"{type(self._embeddings).__name__} cannot embed images (no embed_image method)"
            )
        uris = list(uris)
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in uris]
        captions = list(captions) if captions is not None else ["" for _ in uris]
        if not len(metadatas) == len(captions) == len(uris):
            raise ValueError("uris, metadatas and captions must have the same length")
        given = _normalise_ids(ids, len(uris))
        payloads: list[dict[str, Any]] = []
        final_ids: list[str] = []
        for uri, metadata, caption, doc_id in zip(uris, metadatas, captions, given, strict=True):
            stored, hidden = _with_modality(dict(metadata or {}), "image")
            payload = image_payload(caption, load_image(uri), stored)
            if hidden:
                payload[HIDDEN_KEY] = hidden
            payloads.append(payload)
            # The rendition is a deterministic encoding of the pixels, so it identifies them.
            digest = hashlib.sha256(payload["metadata"]["image_base64"].encode()).hexdigest()
            final_ids.append(doc_id or content_id("image", digest, dict(metadata or {})))
        vectors = embed_image(uris) if uris else []
        return self._write(vectors, payloads, final_ids)

    async def aadd_images(
        self,
        uris: Sequence[ImageInput],
        metadatas: list[dict] | None = None,
        ids: list[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async :meth:`add_images`, run in the default executor."""
        return await run_in_executor(None, lambda: self.add_images(uris, metadatas, ids, **kwargs))

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete points by id (missing ids are ignored); ``ids=None`` deletes every point."""
        if not self.store.exists():
            return True
        if ids is None:
            self.store.delete_all()
        elif ids:
            self.store.delete_points([qdrant_point_id(str(doc_id)) for doc_id in ids])
        return True

    # -- reading ---------------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents of the given ids that exist, in the order asked."""
        if not ids or not self.store.exists():
            return []
        wanted = [qdrant_point_id(str(doc_id)) for doc_id in ids]
        by_id = {found.id: found for found in self.store.retrieve(wanted)}
        return [
            _payload_document(point, by_id[point].payload)
            for point in dict.fromkeys(wanted)
            if point in by_id
        ]

    def _nearest(
        self,
        embedding: Sequence[float],
        k: int,
        filter: Any,
        *,
        score_threshold: float | None = None,
        with_vectors: bool = False,
    ) -> list[Found]:
        """The ``k`` nearest points of every wanted modality, merged by raw cosine."""
        if k <= 0 or not self.store.exists():
            return []
        modalities, rest = split_filter(filter)
        legs = [
            Leg(
                using=modality,
                query=list(embedding),
                limit=k,
                filter=rest,
                score_threshold=score_threshold,
                with_vectors=(modality,) if with_vectors else (),
            )
            for modality in modalities
        ]
        pool = [found for hits in self.store.search(legs) for found in hits]
        return sorted(pool, key=lambda found: -found.score)[:k]

    def similarity_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: dict[str, Any] | Any | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Nearest points to ``embedding`` with their cosine similarity, best first.

        ``filter`` is ``{metadata key: value}`` (a list matches any item; ``modality`` picks
        passages or images), an :class:`mrag.store.Filter` or a Qdrant ``Filter``.
        """
        hits = self._nearest(embedding, k, filter, score_threshold=kwargs.get("score_threshold"))
        return [(_payload_document(found.id, found.payload), found.score) for found in hits]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        """Nearest documents to ``embedding``, best first."""
        scored = self.similarity_search_with_score_by_vector(embedding, k, **kwargs)
        return [doc for doc, _ in scored]

    def similarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Nearest documents to a text query with their cosine similarity, best first."""
        return self.similarity_search_with_score_by_vector(
            self._embeddings.embed_query(query), k, **kwargs
        )

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """Nearest documents to a text query, best first (raw cosine, modalities mixed)."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_by_image(
        self, image: ImageInput, k: int = 4, **kwargs: Any
    ) -> list[Document]:
        """Nearest documents to a picture (path, bytes, PIL image or ``data:`` URI), best first:
        images and passages by raw cosine (``filter={"modality": "image"}`` for images only)."""
        return self.similarity_search_by_vector(self._image_vector(image), k, **kwargs)

    def _image_vector(self, image: ImageInput) -> list[float]:
        embed_image = getattr(self._embeddings, "embed_image", None)
        if embed_image is None:
            raise TypeError(
                f"{type(self._embeddings).__name__} cannot embed images (no embed_image method)"
            )
        return list(embed_image([image])[0])

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict[str, Any] | Any | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` documents among the ``fetch_k`` nearest, chosen for relevance and diversity
        (``lambda_mult`` 1 = relevance only, 0 = diversity only)."""
        candidates = self._nearest(embedding, max(fetch_k, k), filter, with_vectors=True)
        vectors = [next(iter(found.vectors.values()), None) for found in candidates]
        usable = [(f, v) for f, v in zip(candidates, vectors, strict=True) if v is not None]
        if not usable:
            return []
        chosen = maximal_marginal_relevance(
            np.asarray(embedding, dtype=np.float32),
            [vector for _, vector in usable],
            lambda_mult=lambda_mult,
            k=min(k, len(usable)),
        )
        return [_payload_document(usable[i][0].id, usable[i][0].payload) for i in chosen]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """MMR for a text query (see :meth:`max_marginal_relevance_search_by_vector`)."""
        return self.max_marginal_relevance_search_by_vector(
            self._embeddings.embed_query(query), k, fetch_k, lambda_mult, **kwargs
        )

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # Qdrant already returns cosine *similarity*; relevance keeps that scale, clipped at 0.
        return _cosine_relevance

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        store: Store | None = None,
        client: Any = None,
        collection: str = DEFAULT_COLLECTION,
        location: str = ":memory:",
        **kwargs: Any,
    ) -> MragVectorStore:
        """A store holding ``texts``: on ``store`` (or a ``QdrantClient``), or a new one at
        ``location``: ``":memory:"`` (default) or a folder for the embedded store."""
        if store is None and client is not None:
            store = Store.from_client(client, collection)
        if store is None:
            store = (
                Store.memory(collection)
                if location == ":memory:"
                else Store.open(StoreSettings(path=location, collection=collection))
            )
        vectorstore = cls(store, embeddings=embedding)
        vectorstore.add_texts(texts, metadatas, ids=ids)
        return vectorstore

    def as_retriever(self, **kwargs: Any) -> BaseRetriever:  # type: ignore[override]
        """A retriever on this store.

        By default a :class:`~mrag.retrieval.retriever.MultimodalRetriever` (fused per-modality
        ranking);
        ``search_kwargs`` and any other keyword go to its fields, e.g.
        ``as_retriever(k=6, fusion="quota", filter={"source": "a.pdf"})``. With
        ``search_type="similarity"``, ``"mmr"`` or ``"similarity_score_threshold"`` it is
        LangChain's usual ``VectorStoreRetriever`` instead.
        """
        search_type = kwargs.get("search_type")
        if search_type in _SEARCH_TYPES_OF_BASE:
            return super().as_retriever(**kwargs)
        if search_type not in (None, "multimodal"):
            raise ValueError(
                f"unknown search_type {search_type!r}; use 'multimodal' or one of "
                + ", ".join(_SEARCH_TYPES_OF_BASE)
            )
        options = dict(kwargs)
        options.pop("search_type", None)
        options.update(options.pop("search_kwargs", None) or {})
        return MultimodalRetriever(store=self.store, embeddings=self._embeddings, **options)
