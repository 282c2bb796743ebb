"""Mixed text and image retrieval over one mrag collection.

CLIP-style models place texts and images in one space, but not evenly: a text query lands
systematically closer to texts than to any image (the *modality gap*, measured for jina-clip-v1 by
its vendor), so sorting one mixed list by raw cosine buries every image under the weakest passage.

:class:`MultimodalRetriever` therefore ranks each modality on its own and fuses the rankings:

- ``"rrf"`` (default): reciprocal rank fusion, ``weight / (rrf_k + rank)`` per modality. Since a
  point belongs to exactly one modality, this interleaves the two ranked lists by rank: where an
  item lands depends on how it ranks *among its own modality*, never on the raw score gap.
  ``modality_weights`` tilts the interleaving; ``text_k``/``image_k`` cap each modality.
- ``"quota"``: exactly ``text_k`` passages and ``image_k`` images (by default an even split, see
  ``image_share``); a modality with too few hits hands its slots to the other.
- ``"score"``: one list sorted by raw cosine. Kept to show the problem; not for production.

Both modalities are searched with one ``query_batch_points`` call holding one request per
modality (filtered on ``metadata.modality``). Qdrant's own ``prefetch`` + ``FusionQuery(RRF)``
would also do one round trip, but it returns only the fused score (the raw cosine is what
thresholds and callers need), fuses with a fixed constant and unit weights, and cannot give each
modality a quota. Fusing a few dozen hits in Python costs nothing next to the embedding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field, field_validator
from qdrant_client import QdrantClient, models

from .images import ImageInput
from .store import DEFAULT_COLLECTION, StoreError, StoreSettings, field_match, open_client

Modality = Literal["text", "image"]
Fusion = Literal["rrf", "quota", "score"]
#: Every modality mrag stores, in the order ties are broken when nothing else decides.
MODALITIES: tuple[str, ...] = ("text", "image")
#: Top-level payload key holding the caller's own id when it is not a UUID (see ``vectorstore``).
DOC_ID_KEY = "doc_id"

_OVERRIDABLE = frozenset(
    {
        "k",
        "text_k",
        "image_k",
        "image_share",
        "fusion",
        "rrf_k",
        "modality_weights",
        "score_threshold",
        "filter",
    }
)


@dataclass(frozen=True)
class Hit:
    """One search result of one modality, before fusion."""

    id: str
    modality: str
    score: float
    payload: dict[str, Any]
    #: 1-based rank among the hits of the same modality.
    modality_rank: int


@dataclass(frozen=True)
class FusionSettings:
    """How per-modality rankings become one list (see the module docstring)."""

    k: int = 8
    fusion: Fusion = "rrf"
    rrf_k: int = 60
    text_k: int | None = None
    image_k: int | None = None
    image_share: float = 0.5
    modality_weights: Mapping[str, float] | None = None

    def quotas(self) -> dict[str, int]:
        """Per-modality counts for ``"quota"`` fusion: explicit counts, else ``image_share``."""
        if self.text_k is not None and self.image_k is not None:
            return {"text": self.text_k, "image": self.image_k}
        if self.image_k is not None:
            return {"text": max(self.k - self.image_k, 0), "image": self.image_k}
        if self.text_k is not None:
            return {"text": self.text_k, "image": max(self.k - self.text_k, 0)}
        images = round(self.k * self.image_share)
        return {"text": self.k - images, "image": images}

    def caps(self) -> dict[str, int]:
        """Most hits of each modality worth fetching: ``k``, or less when a count is given."""
        return {
            "text": self.k if self.text_k is None else min(self.text_k, self.k),
            "image": self.k if self.image_k is None else min(self.image_k, self.k),
        }

    def fetch_limits(self) -> dict[str, int]:
        """How many hits to ask Qdrant for, per modality."""
        if self.fusion == "quota":
            # The whole of k, not just the quota: a short modality's slots go to the other.
            return {modality: self.k for modality in MODALITIES}
        return self.caps()


def rrf_score(rank: int, rrf_k: int = 60, weight: float = 1.0) -> float:
    """Reciprocal rank fusion contribution of a 1-based ``rank``."""
    return weight / (rrf_k + rank)


def fuse(hits: Mapping[str, Sequence[Hit]], settings: FusionSettings) -> list[Hit]:
    """Merge per-modality hit lists (each best first) into one list of at most ``settings.k``.

    Ties in the fused score (same rank in both modalities, equal weights) go to the higher raw
    score, then to the modality order of :data:`MODALITIES`, so results are deterministic.
    """
    k = settings.k
    if k <= 0:
        return []
    pool = [hit for modality in MODALITIES for hit in hits.get(modality, ())]
    if settings.fusion == "score":
        return sorted(pool, key=lambda hit: (-hit.score, MODALITIES.index(hit.modality)))[:k]
    if settings.fusion not in ("rrf", "quota"):
        raise ValueError(f"unknown fusion {settings.fusion!r}; use 'rrf', 'quota' or 'score'")

    weights = {modality: 1.0 for modality in MODALITIES}
    weights.update(settings.modality_weights or {})

    def fused(hit: Hit) -> tuple[float, float, int]:
        score = rrf_score(hit.modality_rank, settings.rrf_k, weights.get(hit.modality, 1.0))
        return (-score, -hit.score, MODALITIES.index(hit.modality))

    if settings.fusion == "rrf":
        caps = settings.caps()
        pool = [hit for hit in pool if hit.modality_rank <= caps.get(hit.modality, k)]
        return sorted(pool, key=fused)[:k]

    quotas = settings.quotas()
    chosen = [hit for hit in pool if hit.modality_rank <= quotas.get(hit.modality, 0)]
    if len(chosen) < k:
        # Backfill: the best of what the quotas left out, in fused order.
        taken = {hit.id for hit in chosen}
        rest = sorted((hit for hit in pool if hit.id not in taken), key=fused)
        chosen += rest[: k - len(chosen)]
    return sorted(chosen, key=fused)[:k]


def document_id(point_id: Any, payload: Mapping[str, Any]) -> str:
    """The id a caller knows a point by: its own non-UUID id if it gave one, else the point id."""
    given = payload.get(DOC_ID_KEY)
    return str(given) if given is not None else str(point_id)


def split_filter(
    conditions: Mapping[str, Any] | models.Filter | None,
) -> tuple[list[str], models.Filter | None]:
    """Split a retriever filter into the modalities to search and a Qdrant filter for the rest.

    A mapping holds ``{metadata key: value}`` pairs (a list value matches any of its items); its
    ``modality`` entry picks which modalities are searched. A ``models.Filter`` is used as given
    and both modalities are searched (one that matches nothing simply returns nothing).
    """
    if conditions is None:
        return list(MODALITIES), None
    if isinstance(conditions, models.Filter):
        return list(MODALITIES), conditions
    modalities = list(MODALITIES)
    must: list[models.Condition] = []
    for key, value in conditions.items():
        if value is None:
            continue
        if key == "modality":
            wanted = [value] if isinstance(value, str) else list(value)
            unknown = [item for item in wanted if item not in MODALITIES]
            if unknown:
                raise ValueError(f"unknown modality {unknown[0]!r}; use 'text' or 'image'")
            modalities = [modality for modality in MODALITIES if modality in wanted]
        else:
            must.append(field_match(key, value))
    return modalities, (models.Filter(must=must) if must else None)


def _modality_filter(modality: str, rest: models.Filter | None) -> models.Filter:
    must: list[models.Condition] = [field_match("modality", modality)]
    if rest is not None:
        must.append(rest)
    return models.Filter(must=must)


def hit_document(hit: Hit, rank: int | None = None) -> Document:
    """A search hit as a LangChain ``Document``: stored metadata plus ``score`` and ``rank``.

    ``score`` is the raw cosine similarity to the query; ``rank`` the 1-based place in the
    fused list. Image hits keep ``mime_type`` and ``image_base64`` from the payload.
    """
    stored = hit.payload.get("metadata") or {}
    metadata: dict[str, Any] = {"modality": hit.modality, "source": None, "page": None}
    metadata.update(stored)
    metadata["modality"] = hit.modality
    metadata["score"] = hit.score
    if rank is not None:
        metadata["rank"] = rank
    return Document(
        id=hit.id, page_content=str(hit.payload.get("page_content") or ""), metadata=metadata
    )


class MultimodalRetriever(BaseRetriever):
    """Retrieve passages and images together, each modality ranked on its own, then fused.

    Args:
        client: an open ``QdrantClient`` (local mode or server).
        collection: the mrag collection to search.
        embeddings: embeds the query; ``embed_image`` is needed for :meth:`search_by_image`.
        k: total number of documents returned.
        text_k, image_k: per-modality counts: exact quotas for ``"quota"`` fusion, caps otherwise.
        image_share: for ``"quota"`` without counts, the share of ``k`` given to images.
        fusion: ``"rrf"`` (default), ``"quota"`` or ``"score"`` (raw cosine, shows the gap).
        rrf_k: the RRF constant; larger values flatten the difference between ranks.
        modality_weights: RRF weight per modality (default 1.0 each).
        score_threshold: minimum raw cosine per modality, e.g. ``{"text": 0.5, "image": 0.2}``;
            hits below it are dropped before fusion, so a modality with nothing relevant gives
            its places to the other.
        filter: ``{metadata key: value}`` (``modality``, ``source``, ``page`` or any stored key;
            a list matches any item), or a ready ``qdrant_client.models.Filter``.

    Every field can also be overridden per call: ``retriever.invoke(query, k=3, filter=...)``.

    Example:
        >>> retriever = MultimodalRetriever(client=client, embeddings=JinaClipEmbeddings(), k=6)
        >>> for doc in retriever.invoke("wiring diagram of the pump"):
        ...     print(doc.metadata["rank"], doc.metadata["modality"], doc.metadata["score"])
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: QdrantClient
    collection: str = DEFAULT_COLLECTION
    embeddings: Embeddings
    k: int = Field(default=8, ge=0)
    text_k: int | None = Field(default=None, ge=0)
    image_k: int | None = Field(default=None, ge=0)
    image_share: float = Field(default=0.5, ge=0.0, le=1.0)
    fusion: Fusion = "rrf"
    rrf_k: int = Field(default=60, ge=0)
    modality_weights: dict[str, float] | None = None
    score_threshold: dict[str, float] | None = None
    filter: dict[str, Any] | models.Filter | None = None

    @field_validator("score_threshold", "modality_weights")
    @classmethod
    def _known_modalities(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key in value or {}:
            if key not in MODALITIES:
                raise ValueError(f"unknown modality {key!r}; use 'text' or 'image'")
        return value

    @classmethod
    def from_settings(
        cls, settings: StoreSettings, embeddings: Embeddings, **kwargs: Any
    ) -> MultimodalRetriever:
        """A retriever on the store described by ``settings`` (see ``StoreSettings.from_env``)."""
        return cls(
            client=open_client(settings),
            collection=settings.collection,
            embeddings=embeddings,
            **kwargs,
        )

    # -- searching -------------------------------------------------------------------------------

    def _options(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(overrides) - _OVERRIDABLE
        if unknown:
            raise TypeError(f"unexpected search option(s): {', '.join(sorted(unknown))}")
        options = {name: getattr(self, name) for name in _OVERRIDABLE}
        options.update(overrides)
        for mapping in (options["score_threshold"], options["modality_weights"]):
            for key in mapping or {}:
                if key not in MODALITIES:
                    raise ValueError(f"unknown modality {key!r}; use 'text' or 'image'")
        if options["fusion"] not in ("rrf", "quota", "score"):
            raise ValueError(f"unknown fusion {options['fusion']!r}; use 'rrf', 'quota' or 'score'")
        return options

    def search_hits(self, vector: Sequence[float], **overrides: Any) -> list[Hit]:
        """Search every wanted modality with one query vector and fuse; the ranked hits.

        ``overrides`` are any of the retriever's search fields (``k``, ``filter``, ``fusion``...).
        """
        options = self._options(overrides)
        settings = FusionSettings(
            k=int(options["k"]),
            fusion=options["fusion"],
            rrf_k=int(options["rrf_k"]),
            text_k=options["text_k"],
            image_k=options["image_k"],
            image_share=float(options["image_share"]),
            modality_weights=options["modality_weights"],
        )
        if settings.k <= 0:
            return []
        modalities, rest = split_filter(options["filter"])
        limits = settings.fetch_limits()
        modalities = [modality for modality in modalities if limits[modality] > 0]
        if not modalities:
            return []
        if not self.client.collection_exists(self.collection):
            raise StoreError(f"collection {self.collection!r} does not exist")
        thresholds = options["score_threshold"] or {}
        requests = [
            models.QueryRequest(
                query=list(vector),
                filter=_modality_filter(modality, rest),
                limit=limits[modality],
                score_threshold=thresholds.get(modality),
                with_payload=True,
                with_vector=False,
            )
            for modality in modalities
        ]
        responses = self.client.query_batch_points(self.collection, requests=requests)
        per_modality: dict[str, list[Hit]] = {}
        for modality, response in zip(modalities, responses, strict=True):
            per_modality[modality] = [
                Hit(
                    id=document_id(point.id, point.payload or {}),
                    modality=modality,
                    score=float(point.score),
                    payload=dict(point.payload or {}),
                    modality_rank=rank,
                )
                for rank, point in enumerate(response.points, start=1)
                if not math.isnan(point.score)
            ]
        return fuse(per_modality, settings)

    def search_by_vector(self, vector: Sequence[float], **overrides: Any) -> list[Document]:
        """Ranked documents for a ready query vector (text or image space alike)."""
        hits = self.search_hits(vector, **overrides)
        return [hit_document(hit, rank) for rank, hit in enumerate(hits, start=1)]

    def search_by_image(self, image: ImageInput, **overrides: Any) -> list[Document]:
        """Query with a picture (path, bytes, PIL image or ``data:`` URI): image→image and
        image→text hits, fused the same way as a text query."""
        embed_image = getattr(self.embeddings, "embed_image", None)
        if embed_image is None:
            raise TypeError(
                f"{type(self.embeddings).__name__} has no embed_image method; "
                "querying by image needs image embeddings such as JinaClipEmbeddings"
            )
        return self.search_by_vector(embed_image([image])[0], **overrides)

    def invoke_image(self, image: ImageInput, **overrides: Any) -> list[Document]:
        """Alias of :meth:`search_by_image`."""
        return self.search_by_image(image, **overrides)

    async def asearch_by_image(self, image: ImageInput, **overrides: Any) -> list[Document]:
        """Async :meth:`search_by_image`, run in the default executor."""
        return await run_in_executor(None, partial(self.search_by_image, image, **overrides))

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        # One embedding serves every modality: the space is shared, only the ranking is split.
        vector = self.embeddings.embed_query(query)
        return self.search_by_vector(vector, **kwargs)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        vector = await self.embeddings.aembed_query(query)
        return await run_in_executor(None, partial(self.search_by_vector, vector, **kwargs))
