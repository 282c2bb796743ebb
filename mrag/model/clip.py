"""jina-clip-v1: a text tower and a vision tower that embed into one 768-d space."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import overload

import numpy as np
import torch
from torch import nn

from mrag.images import DEFAULT_MAX_PIXELS, ImageInput, load_image
from mrag.model.allocator import keep_freed_memory
from mrag.model.checkpoint import load_state_dict_strict
from mrag.model.config import JinaClipConfig
from mrag.model.device import AUTO_DEVICE, resolve_device
from mrag.model.hub import HUB_MODEL_ID, CheckpointError, resolve_checkpoint
from mrag.model.precision import AUTO, DtypeChoice, choose_dtype
from mrag.model.processing import preprocess_images
from mrag.model.query_cache import QueryCache
from mrag.model.text import TextTower, alibi_slopes
from mrag.model.tokenizer import DEFAULT_MAX_LENGTH, TextTokenizer
from mrag.model.vision import EvaVisionTransformer, rope_tables

DEFAULT_BATCH_SIZE = 32


class JinaClipModel(nn.Module):
    """jina-clip-v1, implemented natively in PyTorch.

    Load it with :meth:`from_pretrained`; embed with :meth:`encode_text` and :meth:`encode_image`,
    whose outputs are comparable with each other by cosine similarity.
    """

    def __init__(self, config: JinaClipConfig, tokenizer: TextTokenizer | None = None) -> None:
        super().__init__()
        self.config = config
        self.text_model = TextTower(config.text)
        self.vision_model = EvaVisionTransformer(config.vision)
        self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init_value))
        self.tokenizer = tokenizer
        self.name_or_path: str = ""
        self._dtype_choice: DtypeChoice | None = None
        #: Recent single texts' features: a repeated query costs no model run (see
        #: :mod:`mrag.model.query_cache`); ``QueryCache(0)`` turns it off.
        self.query_cache = QueryCache()

    # -- loading ---------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] = HUB_MODEL_ID,
        *,
        revision: str | None = None,
        device: str | torch.device | None = AUTO_DEVICE,
        dtype: torch.dtype | str | None = AUTO,
    ) -> JinaClipModel:
        """Load a checkpoint folder, or ``jinaai/jina-clip-v1`` from the Hugging Face Hub.

        The folder holds the official layout: ``config.json``, ``model.safetensors``,
        ``tokenizer.json`` and ``preprocessor_config.json``. Weights are loaded strictly: every
        key must be present with the right shape. ``dtype`` is ``"auto"`` (bfloat16 where the
        CPU or GPU computes it natively, else float32; see :mod:`mrag.model.precision`),
        ``"float32"``/``torch.float32`` or ``"bfloat16"``/``torch.bfloat16``; what was chosen,
        and why, is :attr:`dtype_choice`. ``device`` ``None`` or ``"auto"`` is CUDA when there is
        a GPU, else the CPU (:func:`~mrag.model.device.resolve_device`). On the CPU, the first
        load also makes glibc keep freed memory in the process (see :mod:`mrag.model.allocator`).
        """
        device = torch.device(resolve_device(device))
        choice = choose_dtype(dtype, device)
        if device.type == "cpu":
            keep_freed_memory()
        folder = resolve_checkpoint(name_or_path, revision=revision)
        config = JinaClipConfig.from_folder(folder)
        try:
            tokenizer = TextTokenizer.from_folder(folder)
        except Exception as exc:
            raise CheckpointError(f"{folder}: cannot load the tokenizer ({exc})") from None
        weights = folder / "model.safetensors"
        if not weights.is_file():
            raise CheckpointError(f"{weights}: file not found (only safetensors weights are read)")
        with torch.device("meta"):
            model = cls(config, tokenizer)
        model = model.to_empty(device="cpu")
        model._reset_derived_buffers()
        load_state_dict_strict(model, weights)
        model.name_or_path = str(name_or_path)
        model.eval()
        model._dtype_choice = choice
        return model.to(device=device, dtype=getattr(torch, choice.dtype))

    def _reset_derived_buffers(self) -> None:
        # Buffers are not in the checkpoint; after building on the meta device recompute them.
        self.text_model.transformer.alibi_slopes = alibi_slopes(
            self.config.text.num_attention_heads
        )
        cos, sin = rope_tables(self.config.vision)
        self.vision_model.rope_cos, self.vision_model.rope_sin = cos, sin

    # -- properties ------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    @property
    def dtype(self) -> torch.dtype:
        return self.logit_scale.dtype

    @property
    def dtype_choice(self) -> DtypeChoice:
        """The dtype the weights are in and why: ``auto: CPU has amx_bf16``, ``requested``..."""
        name = str(self.dtype).removeprefix("torch.")
        chosen = self._dtype_choice
        return chosen if chosen is not None and chosen.dtype == name else DtypeChoice(name, "set")

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding_dim

    # -- raw tower outputs -----------------------------------------------------------------------

    def get_text_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Mean-pooled text tower output (batch, 768), unnormalised; pad id 0 marks padding."""
        return self.text_model(input_ids.to(self.device))

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """CLS output of the vision tower (batch, 768), unnormalised."""
        return self.vision_model(pixel_values.to(device=self.device, dtype=self.dtype))

    def forward(
        self, input_ids: torch.Tensor | None = None, pixel_values: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        text = self.get_text_features(input_ids) if input_ids is not None else None
        image = self.get_image_features(pixel_values) if pixel_values is not None else None
        return text, image

    # -- encoding --------------------------------------------------------------------------------

    def _require_tokenizer(self) -> TextTokenizer:
        if self.tokenizer is None:
            raise RuntimeError("this model has no tokenizer; load it with from_pretrained()")
        return self.tokenizer

    def tokenize(
        self, texts: Sequence[str], *, max_length: int = DEFAULT_MAX_LENGTH
    ) -> list[list[int]]:
        """Token ids of each text, ``[CLS] ... [SEP]``, truncated to ``max_length``."""
        return self._require_tokenizer().encode(list(texts), max_length=max_length)

    def pad(self, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
        """Right-pad id sequences with the pad id into one (batch, longest) tensor."""
        pad_id = self.config.text.pad_token_id
        width = max(len(ids) for ids in sequences)
        batch = torch.full((len(sequences), width), pad_id, dtype=torch.long)
        for row, ids in enumerate(sequences):
            batch[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return batch

    @overload
    def encode_text(self, texts: str, **kwargs: object) -> np.ndarray: ...
    @overload
    def encode_text(self, texts: Sequence[str], **kwargs: object) -> np.ndarray: ...

    def encode_text(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_length: int = DEFAULT_MAX_LENGTH,
        normalize_embeddings: bool = True,
        truncate_dim: int | None = None,
    ) -> np.ndarray:
        """Embed texts as float32 numpy, (N, 768) for a list or (768,) for one string.

        Texts are batched longest first, so each batch pads little, and returned in input order.
        One text alone (a query) is looked up in :attr:`query_cache` first, and stored there.
        """
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        for index, text in enumerate(items):
            if not isinstance(text, str):
                raise TypeError(f"texts[{index}] is {type(text).__name__}, expected str")
        if len(items) == 1:
            features = self._query_features(items[0], max_length)
            dim = self.embedding_dim
            return _finish([features], [0], single, dim, normalize_embeddings, truncate_dim)
        ids = self.tokenize(items, max_length=max_length)
        return self.encode_ids(
            ids,
            batch_size=batch_size,
            normalize_embeddings=normalize_embeddings,
            truncate_dim=truncate_dim,
            single=single,
        )

    def encode_ids(
        self,
        ids: Sequence[Sequence[int]],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        normalize_embeddings: bool = True,
        truncate_dim: int | None = None,
        single: bool = False,
    ) -> np.ndarray:
        """Embed tokenised texts (see :meth:`tokenize`), batched by :meth:`text_batch_plan`."""
        plan = self.text_batch_plan([len(sequence) for sequence in ids], batch_size)
        with torch.inference_mode():
            chunks = [self.get_text_features(self.pad([ids[i] for i in batch])) for batch in plan]
        order = [index for batch in plan for index in batch]
        return _finish(
            chunks, order, single, self.embedding_dim, normalize_embeddings, truncate_dim
        )

    def _query_features(self, text: str, max_length: int) -> torch.Tensor:
        """The tower output (1, 768) for one text, from :attr:`query_cache` when it is there."""
        weight = self.text_model.transformer.embeddings.word_embeddings.weight
        # What the output depends on besides the text: these weights (as loaded and not changed
        # in place since), their dtype and device, and where the text is truncated.
        identity = (self.name_or_path, weight.data_ptr(), weight._version, weight.dtype)
        key = (identity, str(weight.device), max_length, text)
        features = self.query_cache.get(key)
        if features is None:
            ids = self.tokenize([text], max_length=max_length)
            with torch.inference_mode():
                features = self.get_text_features(self.pad(ids))
            self.query_cache.put(key, features)
        return features

    @property
    def packs_text(self) -> bool:
        """Whether padded text batches run packed, so that padding costs no compute."""
        return self.text_model.transformer.pack_sequences

    def text_batch_plan(self, lengths: Sequence[int], batch_size: int) -> list[list[int]]:
        """How :meth:`encode_ids` batches texts of these token counts (see :func:`batch_plan`)."""
        return batch_plan(lengths, batch_size, None if self.packs_text else MAX_PADDING)

    def encode_image(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        normalize_embeddings: bool = True,
        truncate_dim: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> np.ndarray:
        """Embed images as float32 numpy, (N, 768) for a list or (768,) for one image.

        An image is a path, ``pathlib.Path``, raw bytes, a PIL image, a ``data:`` URI or an
        http(s) URL; each is converted to RGB, and one over ``max_pixels`` raises ``ImageError``.
        """
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)  # type: ignore[list-item]
        order = list(range(len(items)))
        chunks = []
        step = _check_batch_size(batch_size)
        with torch.inference_mode():
            for start in range(0, len(items), step):
                batch = [
                    load_image(item, max_pixels=max_pixels) for item in items[start : start + step]
                ]
                pixels = preprocess_images(batch, self.config.preprocess)
                chunks.append(self.get_image_features(pixels))
        return _finish(
            chunks, order, single, self.embedding_dim, normalize_embeddings, truncate_dim
        )


#: A batch is closed early once adding the next (shorter) text would pad more than this share.
MAX_PADDING = 0.10
#: ...but not before it holds this many tokens: tiny batches waste more than padding does.
MIN_BATCH_TOKENS = 512


def batch_plan(
    lengths: Sequence[int], batch_size: int, max_padding: float | None = MAX_PADDING
) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first.

    Sorting by length keeps padding small and puts equal lengths side by side. With
    ``max_padding``, a batch also ends early when the next text would push its padding past that
    share of its real tokens; ``None`` (for a model that packs sequences, where padding costs
    no compute) fills every batch. Callers restore input order.
    """
    step = _check_batch_size(batch_size)
    batches: list[list[int]] = []
    current: list[int] = []
    real = 0
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if current:
            longest = lengths[current[0]]
            padding = longest * (len(current) + 1) - (real + lengths[index])
            too_padded = max_padding is not None and padding > max_padding * (real + lengths[index])
            if len(current) == step or (too_padded and real >= MIN_BATCH_TOKENS):
                batches.append(current)
                current, real = [], 0
        current.append(index)
        real += lengths[index]
    if current:
        batches.append(current)
    return batches


def _check_batch_size(batch_size: int) -> int:
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    return batch_size


def _finish(
    chunks: list[torch.Tensor],
    order: list[int],
    single: bool,
    dim: int,
    normalize: bool,
    truncate_dim: int | None,
) -> np.ndarray:
    """Stack batch outputs, restore input order, truncate and normalise, as float32 numpy."""
    if not chunks:
        return np.zeros((0, truncate_dim or dim), dtype=np.float32)
    stacked = torch.cat(chunks).float()
    result = torch.empty_like(stacked)
    result[torch.tensor(order)] = stacked
    if truncate_dim is not None:
        if not 0 < truncate_dim <= dim:
            raise ValueError(f"truncate_dim must be between 1 and {dim}")
        warnings.warn(
            "jina-clip-v1 was not trained for truncated (Matryoshka) embeddings; "
            "retrieval quality at truncate_dim < 768 is unknown",
            UserWarning,
            stacklevel=3,
        )
        result = result[:, :truncate_dim]
    if normalize:
        result = torch.nn.functional.normalize(result, dim=-1)
    array = result.cpu().numpy().astype(np.float32, copy=False)
    return array[0] if single else array
