"""The text tower: JinaBERT v2 (BERT with ALiBi attention, GEGLU MLP, post-LayerNorm).

Parameter names follow the official checkpoint (``text_model.transformer.*``) so that its
``model.safetensors`` loads without renaming.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mrag.model import fused
from mrag.model.config import TextConfig

#: Position-wise layers run on slices whose largest intermediate is at most this many bytes.
SLICE_BYTES = 24 << 20


def rows_per_slice(width: int, dtype: torch.dtype) -> int:
    """How many tokens a slice of a position-wise layer with ``width``-wide intermediates holds.

    At 8 x 512 tokens the GLU intermediates are 25-50 MB each. With glibc's default thresholds
    (see :mod:`.allocator`) blocks over 32 MB are fresh ``mmap``s on every call, whose page
    faults cost as much as a sixth of the text tower's time; slices under it can be reused.
    Slices much smaller than that lose more in matrix-product efficiency than they gain in cache
    hits (measured: 1024 rows made the 3072 -> 768 product of the text MLP half as fast as 4096
    at bf16).
    """
    element = torch.empty((), dtype=dtype).element_size()
    return max(256, SLICE_BYTES // (width * element))


def apply_by_rows(
    fn: Callable[..., torch.Tensor], *tensors: torch.Tensor, rows: int
) -> torch.Tensor:
    """``fn(*tensors)`` for a position-wise ``fn``, computed on slices of at most ``rows`` tokens.

    The tensors share their leading (token) dimensions. Each row's result is exactly what one
    call on the whole tensors gives; see :func:`rows_per_slice` for why slices.
    """
    leading = tensors[0].shape[:-1]
    if fused.capturing():  # a captured graph keeps the shape symbolic: one piece
        return fn(*tensors)
    flat = [tensor.reshape(-1, tensor.shape[-1]) for tensor in tensors]
    total = flat[0].shape[0]
    if total <= rows:
        return fn(*tensors)
    pieces = [fn(*(part[start : start + rows] for part in flat)) for start in range(0, total, rows)]
    return torch.cat(pieces).view(*leading, -1)


#: Packed sequences as runs of (length, how many in a row of that length), in order.
Groups = list[tuple[int, int]]


def equal_length_runs(lengths: list[int]) -> Groups:
    """Runs of equal lengths: each run attends in one call, as one batch of equal sequences."""
    groups: Groups = []
    for length in lengths:
        if groups and groups[-1][0] == length:
            groups[-1] = (length, groups[-1][1] + 1)
        else:
            groups.append((length, 1))
    return groups


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """ALiBi head slopes; for a head count that is not a power of two, the interleaved extension."""

    def power_of_two_slopes(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(num_heads).is_integer():
        return torch.tensor(power_of_two_slopes(num_heads))
    closest = 2 ** math.floor(math.log2(num_heads))
    extra = power_of_two_slopes(2 * closest)[0::2][: num_heads - closest]
    return torch.tensor(power_of_two_slopes(closest) + extra)


class TextEmbeddings(nn.Module):
    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # Single-segment inputs only: every token has type 0.
        return self.word_embeddings(input_ids) + self.token_type_embeddings.weight[0]


class AlibiSelfAttention(nn.Module):
    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.Wqkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.small_rows = fused.SmallRowsWeights()

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor, groups: Groups | None = None
    ) -> torch.Tensor:
        """``x`` plus the attention output: the residual add is fused into the last product.

        ``x`` is (batch, length, width) with ``bias`` for the whole batch, or with ``groups``
        the (tokens, width) of sequences packed end to end, ``bias`` then covering the longest.
        """
        packs = self.small_rows
        qkv = fused.linear(
            x, self.Wqkv.weight, self.Wqkv.bias, packs.get("Wqkv", x, self.Wqkv.weight)
        )
        if groups is None:
            batch, length, width = x.shape
            out = self._attend(qkv.view(batch, length, -1), bias).transpose(1, 2)
            out = out.reshape(batch, length, width)
        else:
            out = torch.empty_like(x)
            start = 0
            for length, count in groups:
                stop = start + length * count
                sequences = qkv[start:stop].view(count, length, -1)
                heads = self._attend(sequences, bias[..., :length, :length])
                out[start:stop].view(count, length, self.num_heads, -1).copy_(heads.transpose(1, 2))
                start = stop
        weight = self.out_proj.weight
        return fused.linear_add(out, weight, self.out_proj.bias, x, packs.get("out", out, weight))

    def _attend(self, qkv: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """(batch, heads, length, head_dim) attention of (batch, length, 3 x width) projections."""
        batch, length, _ = qkv.shape
        q, k, v = qkv.view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


class GegluMlp(nn.Module):
    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.intermediate_size = config.intermediate_size
        self.gated_layers = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.wo = nn.Linear(config.intermediate_size, config.hidden_size)
        self.small_rows = fused.SmallRowsWeights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` plus the MLP output: the residual add is fused into the last product."""
        rows = rows_per_slice(self.intermediate_size, x.dtype)
        return apply_by_rows(self._forward, x, rows=rows)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # Gate and value as two products, so that GELU and the gating multiply run inside them
        # (the checkpoint stores both halves in one matrix; its row halves are views).
        gate_weight, value_weight = self.gated_layers.weight.split(self.intermediate_size)
        packs = self.small_rows
        gate = fused.linear_gelu(x, gate_weight, None, packs.get("gate", x, gate_weight))
        hidden = fused.linear_mul(x, value_weight, None, gate, packs.get("value", x, value_weight))
        out_weight = self.wo.weight
        return fused.linear_add(
            hidden, out_weight, self.wo.bias, x, packs.get("wo", hidden, out_weight)
        )


class TextLayer(nn.Module):
    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.mixer = AlibiSelfAttention(config)
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = GegluMlp(config)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor, groups: Groups | None = None
    ) -> torch.Tensor:
        x = self.norm1(self.mixer(x, bias, groups))
        return self.norm2(self.mlp(x))


class TextEncoder(nn.Module):
    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TextLayer(config) for _ in range(config.num_hidden_layers))


class JinaBertModel(nn.Module):
    """Token ids in, one mean-pooled vector per sequence out.

    Right-padded batches (what :meth:`JinaClipModel.pad` makes) run packed: the real tokens of
    all sequences end to end, so padding costs nothing in the position-wise layers, and each
    sequence attends over its own length with a slice of one cached ALiBi table instead of a
    (batch, heads, length, length) mask built per call. Other inputs, and traced graphs
    (ONNX export), take the padded path with its mask; both give the same features.
    """

    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = TextEmbeddings(config)
        self.emb_ln = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = TextEncoder(config)
        self.register_buffer(
            "alibi_slopes", alibi_slopes(config.num_attention_heads), persistent=False
        )
        #: Run right-padded batches packed (see the class docstring); off, always padded.
        self.pack_sequences = True

    def alibi_table(self, length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The ALiBi distance penalty, (1, heads, length, length).

        A slice of one table kept for the longest length asked so far (6 MB at 512 tokens in
        bf16), so that a batch does not rebuild it.
        """
        cached: torch.Tensor | None = self.__dict__.get("_alibi_table")
        if (
            cached is None
            or cached.shape[-1] < length
            or cached.dtype != dtype
            or cached.device != device
        ):
            positions = torch.arange(length, device=device)
            distance = (positions[None, :] - positions[:, None]).abs().to(torch.float32)
            slopes = self.alibi_slopes.to(device=device, dtype=torch.float32)
            cached = (-slopes[:, None, None] * distance).to(dtype)[None]
            self.__dict__["_alibi_table"] = cached
        return cached[..., :length, :length]

    def attention_bias(self, input_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """ALiBi distance penalty plus -inf on padded keys, for the padded path.

        Shaped (1, heads, len, len) when nothing is padded, so it broadcasts over the batch
        instead of being copied per sequence; (batch, heads, len, len) otherwise, built in one
        pass (at batch 32 and 512 tokens that tensor alone is 400 MB of float32).
        """
        length = input_ids.shape[1]
        positions = torch.arange(length, device=input_ids.device)
        distance = (positions[None, :] - positions[:, None]).abs().to(torch.float32)
        slopes = self.alibi_slopes.to(device=input_ids.device, dtype=torch.float32)
        bias = (-slopes[:, None, None] * distance).to(dtype)[None]  # (1, H, L, L)
        padded = input_ids == self.config.pad_token_id
        # The shortcut is a data-dependent branch, which a captured graph (ONNX export) cannot hold.
        if not fused.capturing() and not bool(padded.any()):
            return bias
        blocked = torch.tensor(float("-inf"), dtype=dtype, device=input_ids.device)
        return torch.where(padded[:, None, None, :], blocked, bias)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        lengths = self._packable_lengths(input_ids)
        if lengths is not None:
            return self._forward_packed(input_ids, lengths)
        x = self.emb_ln(self.embeddings(input_ids))
        bias = self.attention_bias(input_ids, x.dtype)
        for layer in self.encoder.layers:
            x = layer(x, bias)
        keep = (input_ids != self.config.pad_token_id).unsqueeze(-1).to(x.dtype)
        return (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)

    def _packable_lengths(self, input_ids: torch.Tensor) -> list[int] | None:
        """Each row's length if every row is real tokens then only padding, else ``None``."""
        if not self.pack_sequences or fused.capturing():
            return None
        real = input_ids != self.config.pad_token_id
        lengths = real.sum(dim=1)
        prefix = torch.arange(input_ids.shape[1], device=input_ids.device) < lengths[:, None]
        if not bool((real == prefix).all()) or not bool((lengths > 0).all()):
            return None
        return lengths.tolist()

    def _forward_packed(self, input_ids: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        tokens = input_ids[input_ids != self.config.pad_token_id]  # row by row: end to end
        x = self.emb_ln(self.embeddings(tokens))
        table = self.alibi_table(max(lengths), x.dtype, x.device)
        groups = equal_length_runs(lengths)
        for layer in self.encoder.layers:
            x = layer(x, table, groups)
        return torch.stack([sequence.mean(dim=0) for sequence in x.split(lengths)])


class TextTower(nn.Module):
    """Holds the text tower under the official ``text_model.transformer`` prefix."""

    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.transformer = JinaBertModel(config)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.transformer(input_ids)
