"""Mixed text and image retrieval over one mrag collection, with a keyword leg for text.

CLIP-style models place texts and images in one space, but not evenly: a text query lands
systematically closer to texts than to any image (the *modality gap*, measured for jina-clip-v1 by
its vendor), so sorting one mixed list by raw cosine buries every image under the weakest passage.

:class:`MultimodalRetriever` therefore ranks each modality on its own and fuses the rankings.
A text query runs three *legs* in one batched store call: BM25 keywords and the dense ``text``
vector for passages, the dense ``image`` vector for pictures (an image query runs only the two
dense legs). Each leg is a ranked list; a hit's fused score is the reciprocal rank fusion of its
legs, ``sum(leg_weight / (rrf_k + rank))``, times its modality's weight.

- ``"rrf"`` (default): that fused score. Within one modality, a passage both legs rank well
  beats a passage only one of them found; across modalities, where an item lands depends on how
  it ranks *among its own modality*, never on the raw score gap. ``modality_weights`` tilts the
  interleaving, ``leg_weights`` the legs; ``text_k``/``image_k`` cap each modality.
- ``"quota"``: exactly ``text_k`` passages and ``image_k`` images (by default an even split, see
  ``image_share``); a modality with too few hits hands its slots to the other.
- ``"score"``: one list sorted by raw cosine. Kept to show the problem; not for production.

Every hit reports its raw cosine as ``score`` (a BM25-only hit is scored against its stored text
vector), which is also what ``score_threshold`` applies to. Qdrant's own ``prefetch`` + RRF would
also do one round trip, but it returns only the fused score, cannot give each modality a quota
and cannot threshold on the cosine; fusing a few dozen hits in Python costs nothing next to the
embedding.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
from pydantic import ConfigDict, Field, field_validator, model_validator

from mrag.images import ImageInput
from mrag.model.identity import choose_model
from mrag.store import (
    DEFAULT_COLLECTION,
    Filter,
    Found,
    Leg,
    ModelRecord,
    Store,
    StoreError,
    StoreSettings,
)
from mrag.store import as_filter as _as_filter

_log = logging.getLogger(__name__)

Modality = Literal["text", "image"]
Fusion = Literal["rrf", "quota", "score"]
#: Every modality mrag stores, in the order ties are broken when nothing else decides.
MODALITIES: tuple[str, ...] = ("text", "image")
#: The ranked lists a query runs, and the modality each one finds.
LEGS: dict[str, str] = {"bm25": "text", "text": "text", "image": "image"}
#: RRF weight of each leg. The keyword leg weighs more than one dense leg: an exact match of a
#: query's rare terms (part numbers, names, error codes: what manuals get searched for) then
#: outranks a passage only one dense leg found, while a passage both text legs rank well still
#: leads. Measured with random weights, where the dense legs rank noise: a passage is in the top
#: 3 for three of its rarest words in 78 of 84 passages of a 15-page report at 1.0, all 84 at 1.5.
DEFAULT_LEG_WEIGHTS: dict[str, float] = {"bm25": 1.5, "text": 1.0, "image": 1.0}
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
        "leg_weights",
        "hybrid",
        "score_threshold",
        "filter",
    }
)


@dataclass(frozen=True)
class Hit:
    """One search result of one modality, before fusion across modalities."""

    id: str
    modality: str
    #: Raw cosine similarity to the query vector.
    score: float
    payload: dict[str, Any]
    #: 1-based rank among the hits of the same modality.
    modality_rank: int
    #: Reciprocal rank fusion of the legs that found it; None means one leg, ``modality_rank``.
    rrf: float | None = None
    #: 1-based rank in each leg that found it.
    legs: dict[str, int] = field(default_factory=dict)


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
        """How many hits to ask the store for, per modality (each of its legs)."""
        if self.fusion == "quota":
            # The whole of k, not just the quota: a short modality's slots go to the other.
            return {modality: self.k for modality in MODALITIES}
        return self.caps()


def rrf_score(rank: int, rrf_k: int = 60, weight: float = 1.0) -> float:
    """Reciprocal rank fusion contribution of a 1-based ``rank``."""
    return weight / (rrf_k + rank)


def fuse(hits: Mapping[str, Sequence[Hit]], settings: FusionSettings) -> list[Hit]:
    """Merge per-modality hit lists (each best first) into one list of at most ``settings.k``.

    Ties in the fused score (same rank in both modalities, equal weights) go to the hit with
    the better rank in one of its legs, then to the higher raw score, then to the modality order
    of :data:`MODALITIES`, so results are deterministic.
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

    def fused(hit: Hit) -> tuple[float, int, float, int]:
        own = hit.rrf if hit.rrf is not None else rrf_score(hit.modality_rank, settings.rrf_k)
        best_leg = min(hit.legs.values(), default=hit.modality_rank)
        return (
            -own * weights.get(hit.modality, 1.0),
            best_leg,
            -hit.score,
            MODALITIES.index(hit.modality),
        )

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
    conditions: Mapping[str, Any] | Filter | Any | None,
) -> tuple[list[str], Filter | None]:
    """Split a retriever filter into the modalities to search and a store filter for the rest.

    A mapping holds ``{metadata key: value}`` pairs (a list value matches any of its items); its
    ``modality`` entry picks which modalities are searched; a ``source`` is a path as the user
    types it or a bare file name (:func:`~mrag.store.filters.source_condition`). A
    :class:`mrag.store.Filter` or a ``qdrant_client.models.Filter`` is used as given and both
    modalities are searched (one that matches nothing simply returns nothing).
    """
    if conditions is None:
        return list(MODALITIES), None
    if not isinstance(conditions, Mapping):
        return list(MODALITIES), _as_filter(conditions)
    modalities = list(MODALITIES)
    rest: dict[str, Any] = {}
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
            rest[key] = value  # a "source" becomes a path-or-file-name condition there
    return modalities, _as_filter(rest) if rest else None


def _cosine(query: Sequence[float], stored: Sequence[float] | None) -> float:
    if not stored:
        return float("nan")
    dot = sum(a * b for a, b in zip(query, stored, strict=False))
    norms = math.sqrt(sum(a * a for a in query)) * math.sqrt(sum(b * b for b in stored))
    return dot / norms if norms else 0.0


def rank_modality(
    legs: Mapping[str, Sequence[Found]],
    modality: str,
    *,
    rrf_k: int,
    leg_weights: Mapping[str, float],
    cosine: Mapping[str, float] | None = None,
) -> list[Hit]:
    """One modality's hits from its legs' ranked lists, best first by the legs' fused score.

    ``cosine`` gives the raw cosine of hits a leg scored otherwise (BM25); a dense leg's own
    score is the cosine.
    """
    ranks: dict[str, dict[str, int]] = {}
    found: dict[str, Found] = {}
    scores: dict[str, float] = {}
    for leg, hits in legs.items():
        for rank, hit in enumerate(hits, start=1):
            ranks.setdefault(hit.id, {})[leg] = rank
            found.setdefault(hit.id, hit)
            if leg != "bm25":
                scores[hit.id] = hit.score
            elif hit.id not in scores and cosine is not None and hit.id in cosine:
                scores[hit.id] = cosine[hit.id]
    fused = {
        point: sum(leg_weights.get(leg, 1.0) / (rrf_k + rank) for leg, rank in legs_of.items())
        for point, legs_of in ranks.items()
    }
    order = sorted(
        fused,
        key=lambda point: (-fused[point], min(ranks[point].values()), -scores.get(point, 0.0)),
    )
    return [
        Hit(
            id=document_id(point, found[point].payload),
            modality=modality,
            score=scores.get(point, float("nan")),
            payload=found[point].payload,
            modality_rank=rank,
            rrf=fused[point],
            legs=ranks[point],
        )
        for rank, point in enumerate(order, start=1)
    ]


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


def model_record_of(embeddings: Embeddings) -> ModelRecord | None:
    """The record of the model behind ``embeddings`` when it is mrag's (else None: only the
    vector size can then be checked against the store)."""
    model = getattr(embeddings, "model", None)
    dimension = getattr(model, "embedding_dim", None)
    if not isinstance(dimension, int):
        return None
    return ModelRecord.of(getattr(model, "name_or_path", None) or None, None, dimension)


def open_default(
    path: str | None, url: str | None, collection: str | None, model: str | None
) -> tuple[Store, Embeddings]:
    """The store from arguments or the environment, and its model: ``model`` (or
    ``MRAG_MODEL``) when given, else the one the store records, else jina-clip-v1; checked to
    be the model that built the store."""
    from mrag.model.embeddings import JinaClipEmbeddings

    store = Store.open(StoreSettings.from_env(path=path, url=url, collection=collection))
    try:
        choice = choose_model(model, None, store.model if store.exists() else None)
        _log.info("embedding queries with %s", choice.describe())
        embeddings = JinaClipEmbeddings(choice.name, revision=choice.revision)
        record = model_record_of(embeddings)
        if record is not None and store.exists():
            store.check_model(record)
    except BaseException:
        store.close()
        raise
    return store, embeddings


class MultimodalRetriever(BaseRetriever):
    """Retrieve passages and images together, each modality ranked on its own, then fused.

    Args:
        store: an open :class:`mrag.store.Store` (``client=`` and ``collection=`` with a
            ``QdrantClient`` are accepted too).
        embeddings: embeds the query; ``embed_image`` is needed for :meth:`search_by_image`.
        k: total number of documents returned.
        text_k, image_k: per-modality counts: exact quotas for ``"quota"`` fusion, caps otherwise.
        image_share: for ``"quota"`` without counts, the share of ``k`` given to images.
        fusion: ``"rrf"`` (default), ``"quota"`` or ``"score"`` (raw cosine, shows the gap).
        rrf_k: the RRF constant; larger values flatten the difference between ranks.
        hybrid: run the BM25 keyword leg for text queries (default True).
        leg_weights: RRF weight per leg, ``bm25``, ``text`` and ``image`` (defaults in
            :data:`DEFAULT_LEG_WEIGHTS`: 1.5 for keywords, 1.0 for each dense leg).
        modality_weights: RRF weight per modality (default 1.0 each).
        score_threshold: minimum raw cosine per modality, e.g. ``{"text": 0.5, "image": 0.2}``;
            hits below it are dropped before fusion, so a modality with nothing relevant gives
            its places to the other.
        filter: ``{metadata key: value}`` (``modality``, ``source``, ``page`` or any stored key;
            a list matches any item; a source may be a path or a bare file name), an
            :class:`mrag.store.Filter`, or a
            ``qdrant_client.models.Filter``.

    Every field can also be overridden per call: ``retriever.invoke(query, k=3, filter=...)``.

    Example:
        >>> retriever = MultimodalRetriever.open(k=6)  # ./.mrag and jina-clip-v1
        >>> for doc in retriever.invoke("wiring diagram of the pump"):
        ...     print(doc.metadata["rank"], doc.metadata["modality"], doc.metadata["score"])
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: Store
    embeddings: Embeddings
    k: int = Field(default=8, ge=0)
    text_k: int | None = Field(default=None, ge=0)
    image_k: int | None = Field(default=None, ge=0)
    image_share: float = Field(default=0.5, ge=0.0, le=1.0)
    fusion: Fusion = "rrf"
    rrf_k: int = Field(default=60, ge=0)
    hybrid: bool = True
    leg_weights: dict[str, float] | None = None
    modality_weights: dict[str, float] | None = None
    score_threshold: dict[str, float] | None = None
    filter: Any = None

    @model_validator(mode="before")
    @classmethod
    def _client_to_store(cls, data: Any) -> Any:
        if isinstance(data, dict) and "store" not in data and "client" in data:
            data = dict(data)
            client = data.pop("client")
            collection = data.pop("collection", None) or DEFAULT_COLLECTION
            data["store"] = Store.from_client(client, collection)
        return data

    @field_validator("score_threshold", "modality_weights")
    @classmethod
    def _known_modalities(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key in value or {}:
            if key not in MODALITIES:
                raise ValueError(f"unknown modality {key!r}; use 'text' or 'image'")
        return value

    @field_validator("leg_weights")
    @classmethod
    def _known_legs(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key in value or {}:
            if key not in LEGS:
                raise ValueError(f"unknown leg {key!r}; use 'bm25', 'text' or 'image'")
        return value

    @property
    def collection(self) -> str:
        return self.store.collection

    @classmethod
    def from_settings(
        cls, settings: StoreSettings, embeddings: Embeddings, **kwargs: Any
    ) -> MultimodalRetriever:
        """A retriever on the store described by ``settings`` (see ``StoreSettings.from_env``)."""
        return cls(store=Store.open(settings), embeddings=embeddings, **kwargs)

    @classmethod
    def open(
        cls,
        path: str | None = None,
        *,
        url: str | None = None,
        collection: str | None = None,
        model: str | None = None,
        **kwargs: Any,
    ) -> MultimodalRetriever:
        """The retriever an app wants in one line: the store from arguments or the environment
        (``./.mrag/qdrant`` by default) and ``model`` (or ``MRAG_MODEL``), else the model the
        store records, else jina-clip-v1.

        Raises :class:`~mrag.store.StoreError` when the store was built with another model.
        """
        store, embeddings = open_default(path, url, collection, model)
        try:
            return cls(store=store, embeddings=embeddings, **kwargs)
        except BaseException:
            store.close()
            raise

    def check_model(self) -> None:
        """Raise :class:`~mrag.store.ModelMismatchError` if the store was built with another
        model than :attr:`embeddings` (known for mrag's own embeddings)."""
        if not self.store.exists():
            raise StoreError(f"collection {self.store.collection!r} does not exist")
        record = model_record_of(self.embeddings)
        if record is not None:
            self.store.check_model(record)

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
        for key in options["leg_weights"] or {}:
            if key not in LEGS:
                raise ValueError(f"unknown leg {key!r}; use 'bm25', 'text' or 'image'")
        if options["fusion"] not in ("rrf", "quota", "score"):
            raise ValueError(f"unknown fusion {options['fusion']!r}; use 'rrf', 'quota' or 'score'")
        return options

    def _check_vector(self, vector: Sequence[float]) -> None:
        dimension = self.store.dimension
        if dimension is not None and len(vector) != dimension:
            model = self.store.model
            raise StoreError(
                f"{self.store.describe()} holds vectors of {model.describe() if model else '?'}, "
                f"but the query vector has {len(vector)} dimensions; query with the model the "
                "store was built with"
            )

    def search_hits(
        self, vector: Sequence[float], *, text: str | None = None, **overrides: Any
    ) -> list[Hit]:
        """Search every wanted modality with one query vector and fuse; the ranked hits.

        ``text`` (the query's text) adds the BM25 leg when ``hybrid`` is on. ``overrides`` are
        any of the retriever's search fields (``k``, ``filter``, ``fusion``...).
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
        if not self.store.exists():
            raise StoreError(f"collection {self.store.collection!r} does not exist")
        self._check_vector(vector)
        thresholds = options["score_threshold"] or {}
        legs: list[tuple[str, Leg]] = []
        for modality in modalities:
            legs.append(
                (
                    modality,
                    Leg(
                        using=modality,
                        query=list(vector),
                        limit=limits[modality],
                        filter=rest,
                        score_threshold=thresholds.get(modality),
                    ),
                )
            )
        keywords = text.strip() if text else ""
        if options["hybrid"] and keywords and "text" in modalities:
            # Scored by cosine too (its stored vector comes back), so thresholds and callers
            # see one kind of score.
            legs.append(("bm25", Leg("bm25", keywords, limits["text"], rest, None, ("text",))))
        found_by_leg = self.store.search([leg for _, leg in legs])
        results = dict(zip((name for name, _ in legs), found_by_leg, strict=True))
        cosine: dict[str, float] = {}
        for found in results.get("bm25", []):
            cosine[found.id] = _cosine(vector, found.vectors.get("text"))
        if "bm25" in results and thresholds.get("text") is not None:
            floor = thresholds["text"]
            results["bm25"] = [f for f in results["bm25"] if cosine.get(f.id, 0.0) >= floor]
        weights = {**DEFAULT_LEG_WEIGHTS, **(options["leg_weights"] or {})}
        per_modality = {
            modality: rank_modality(
                {leg: hits for leg, hits in results.items() if LEGS[leg] == modality},
                modality,
                rrf_k=settings.rrf_k,
                leg_weights=weights,
                cosine=cosine,
            )
            for modality in modalities
        }
        return fuse(per_modality, settings)

    def search(self, query: str, **overrides: Any) -> list[Document]:
        """Ranked documents for a text query: keyword and dense legs, fused."""
        return self.search_by_vector(self.embeddings.embed_query(query), text=query, **overrides)

    def search_by_vector(
        self, vector: Sequence[float], *, text: str | None = None, **overrides: Any
    ) -> list[Document]:
        """Ranked documents for a ready query vector (text or image space alike); ``text``, the
        query's words when there are any, adds the keyword leg."""
        hits = self.search_hits(vector, text=text, **overrides)
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
        return self.search(query, **kwargs)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        vector = await self.embeddings.aembed_query(query)

        search = partial(self.search_by_vector, vector, text=query, **kwargs)
        return await run_in_executor(None, search)
