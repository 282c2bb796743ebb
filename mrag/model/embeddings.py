"""LangChain embeddings backed by the native jina-clip-v1 model."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import torch
from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor

from mrag.images import ImageInput
from mrag.model import HUB_MODEL_ID, JinaClipModel
from mrag.model.clip import DEFAULT_BATCH_SIZE
from mrag.model.device import AUTO_DEVICE, resolve_device
from mrag.model.precision import AUTO, choose_dtype
from mrag.model.tokenizer import DEFAULT_MAX_LENGTH

_MODELS: dict[tuple[str, str | None, str, str], JinaClipModel] = {}
_MODELS_LOCK = threading.Lock()


def load_shared_model(
    name_or_path: str | os.PathLike[str] = HUB_MODEL_ID,
    *,
    revision: str | None = None,
    device: str | torch.device | None = AUTO_DEVICE,
    dtype: torch.dtype | str | None = AUTO,
) -> JinaClipModel:
    """Load a model once per (checkpoint, revision, device, dtype) and share it.

    Several embeddings objects, retrievers and pipelines in one process then hold one copy of
    the weights instead of one each. ``"auto"`` shares the model of the dtype it resolves to.
    """
    device = resolve_device(device)
    resolved = choose_dtype(dtype, device).dtype
    key = (str(name_or_path), revision, device, resolved)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = JinaClipModel.from_pretrained(
                name_or_path, revision=revision, device=device, dtype=dtype
            )
            _MODELS[key] = model
    return model


class JinaClipEmbeddings(Embeddings):
    """jina-clip-v1 as LangChain ``Embeddings``: texts and images in one space.

    ``embed_documents`` and ``embed_query`` embed text; ``embed_image`` embeds images given as
    paths, URLs or ``data:`` URIs (the method name LangChain's other CLIP embeddings use, so vector
    stores that support images find it). All vectors are L2-normalised lists of Python floats.

    ``model_name`` is a checkpoint folder or Hub id; without one, ``MRAG_MODEL`` or
    ``jinaai/jina-clip-v1``. ``dtype="auto"`` computes in bfloat16 where the CPU or GPU does so
    natively (vectors within about 5e-3 of float32) and in float32 elsewhere; pass
    ``dtype="float32"`` for float32 everywhere. ``device="auto"`` (the default) computes on
    CUDA when there is a GPU, else on the CPU. Models are loaded once per process and shared
    between instances.

    Example:
        >>> embeddings = JinaClipEmbeddings()  # downloads jinaai/jina-clip-v1 once
        >>> embeddings.embed_query("a red motorcycle")[:3]
    """

    def __init__(
        self,
        model_name: str | os.PathLike[str] | None = None,
        *,
        revision: str | None = None,
        device: str | torch.device | None = AUTO_DEVICE,
        dtype: torch.dtype | str | None = AUTO,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_length: int = DEFAULT_MAX_LENGTH,
        model: JinaClipModel | None = None,
    ) -> None:
        model_name = model_name or os.environ.get("MRAG_MODEL") or HUB_MODEL_ID
        self.model_name = str(model_name)
        self.batch_size = batch_size
        self.max_length = max_length
        self.model = model or load_shared_model(
            model_name, revision=revision, device=device, dtype=dtype
        )

    @property
    def dimension(self) -> int:
        """Length of every vector this object returns."""
        return self.model.embedding_dim

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed a list of texts."""
        if not texts:
            return []
        vectors = self.model.encode_text(
            list(texts), batch_size=self.batch_size, max_length=self.max_length
        )
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one query text; a repeat comes from the model's query cache, unchanged."""
        return self.embed_documents([text])[0]

    def embed_image(self, uris: Sequence[ImageInput]) -> list[list[float]]:
        """Embed images: paths, ``http(s)`` URLs, ``data:`` URIs, bytes or PIL images."""
        if not uris:
            return []
        return self.model.encode_image(list(uris), batch_size=self.batch_size).tolist()

    async def aembed_image(self, uris: Sequence[ImageInput]) -> list[list[float]]:
        """Async :meth:`embed_image`, run in the default executor."""
        return await run_in_executor(None, self.embed_image, uris)
