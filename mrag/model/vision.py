"""The vision tower: EVA-02 ViT (2-D RoPE, q/v biases, sub-LayerNorms, SwiGLU, CLS output).

Parameter names follow the official checkpoint (``vision_model.*``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mrag.model import fused
from mrag.model.config import VisionConfig
from mrag.model.text import apply_by_rows, rows_per_slice


def rope_tables(config: VisionConfig, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables of the 2-D rotary embedding for the patch grid, each (patches, head_width).

    Each half of a head rotates by one axis: the first half by the patch row, the second by the
    patch column. Positions are rescaled to the pre-training grid (``pt_hw_seq_len``), which for
    jina-clip-v1 is the grid itself, so they stay the integers 0..13.
    """
    axis_dim = config.head_width // 2
    freqs = theta ** (-torch.arange(0, axis_dim, 2, dtype=torch.float64) / axis_dim)
    grid = config.grid_size
    positions = torch.arange(grid, dtype=torch.float64) * (config.pt_hw_seq_len / grid)
    angles = (positions[:, None] * freqs[None, :]).repeat_interleave(2, dim=-1)  # (grid, axis_dim)
    rows = angles[:, None, :].expand(grid, grid, axis_dim)
    cols = angles[None, :, :].expand(grid, grid, axis_dim)
    table = torch.cat([rows, cols], dim=-1).reshape(grid * grid, 2 * axis_dim)
    return table.cos().float(), table.sin().float()


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """Turn each adjacent pair (a, b) of the last dimension into (-b, a)."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def fused_weight(
    owner: nn.Module,
    name: str,
    parts: tuple[torch.Tensor, ...],
    build: Callable[..., torch.Tensor] = lambda *parts: torch.cat(parts),
) -> torch.Tensor:
    """``build(*parts)`` (by default ``torch.cat(parts)``), kept while none of the parts changes.

    Concatenating the weights of q/k/v (or w1/w2) every call copies megabytes per layer, which
    costs as much as the product itself for one image. Without autograd the result is cached on
    ``owner`` and rebuilt when any part is replaced (``.to()``, ``load_state_dict``...) or changed
    in place (its version counter moves). With autograd on, it is concatenated every time, and
    so it is under graph capture, where the cache's look-up (by data pointer) would break the
    graph and the compiler folds the concatenation of frozen weights itself.
    """
    if fused.capturing() or (torch.is_grad_enabled() and any(p.requires_grad for p in parts)):
        return build(*parts)
    try:
        key = tuple((part.data_ptr(), part._version, part.dtype, part.device) for part in parts)
    except RuntimeError:  # inference tensors have no version counter: do not cache
        return build(*parts)
    cache: dict[str, tuple[tuple[object, ...], torch.Tensor]] = owner.__dict__.setdefault(
        "_fused_cache", {}
    )
    hit = cache.get(name)
    if hit is None or hit[0] != key:
        with torch.no_grad():
            hit = (key, build(*parts))
        cache[name] = hit
    return hit[1]


def rope_for_all_tokens(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE tables for the whole sequence, shaped to broadcast over (batch, tokens, q/k, heads).

    The CLS token gets cos 1 and sin 0, which leaves it exactly as it is, so q and k can be
    turned in one pass without slicing the CLS token off and concatenating it back. The sign of
    :func:`rotate_pairs` is folded into the sine table (minus on even lanes), so the rotation is a
    swap of each adjacent pair.
    """
    cos = torch.cat((torch.ones_like(cos[:1]), cos))
    sin = torch.cat((torch.zeros_like(sin[:1]), sin))
    sign = torch.tensor([-1.0, 1.0], dtype=sin.dtype, device=sin.device)
    sin = (sin.unflatten(-1, (-1, 2)) * sign).flatten(-2)
    return cos[:, None, None, :], sin[:, None, None, :]


def turn_query_key(qk: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE applied to q and k together, (batch, tokens, 2, heads, head_width), a new tensor.

    In float32 each pair (a, b) is the complex number a + ib, and the turn is one complex
    multiply by cos + i·sin: one pass over q and k, 15x as fast as the real-valued form below
    (measured at 8 x 197 tokens, same values within one float32 rounding). Other dtypes have no
    complex counterpart on the CPU (bfloat16), so they swap each pair, scale it by sin in place
    and add q·cos in the same pass (one rounding in bf16 instead of three).
    """
    # Not under graph capture: exporters and compilers handle complex tensors poorly or not at all.
    if qk.dtype == torch.float32 and not fused.capturing():
        turns = torch.complex(cos[..., 0::2], sin[..., 1::2])  # the sign is in sin's even lanes
        pairs = torch.view_as_complex(qk.unflatten(-1, (-1, 2)))
        return torch.view_as_real(pairs * turns).flatten(-2)
    turned = qk.unflatten(-1, (-1, 2)).flip(-1).flatten(-2).mul_(sin)
    return torch.addcmul(turned, qk, cos)


class PatchEmbed(nn.Module):
    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, config.width, config.patch_size, stride=config.patch_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.proj(pixel_values).flatten(2).transpose(1, 2)


class RopeAttention(nn.Module):
    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        width = config.width
        self.num_heads = config.num_heads
        self.head_dim = config.head_width
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, width, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(width))
        self.v_bias = nn.Parameter(torch.zeros(width))
        self.inner_attn_ln = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.proj = nn.Linear(width, width)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, residual: torch.Tensor
    ) -> torch.Tensor:
        """``residual`` plus attention over ``x``: the add is fused into the output product."""
        batch, length, width = x.shape
        # One GEMM for q, k and v instead of three; k has no bias in EVA-02.
        weight = fused_weight(
            self, "qkv", (self.q_proj.weight, self.k_proj.weight, self.v_proj.weight)
        )
        bias = fused_weight(
            self,
            "qkv_bias",
            (self.q_bias, self.v_bias),
            lambda q, v: torch.cat((q, torch.zeros_like(q), v)),
        )
        qkv = fused.linear(x, weight, bias).view(batch, length, 3, self.num_heads, self.head_dim)
        if cos.dim() == 2:  # tables for the patch tokens only, as rope_tables() gives them
            cos, sin = rope_for_all_tokens(cos, sin)
        q, k = turn_query_key(qkv[:, :, :2], cos, sin).permute(2, 0, 3, 1, 4).unbind(0)
        v = qkv[:, :, 2].transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(batch, length, width)
        return fused.linear_add(self.inner_attn_ln(out), self.proj.weight, self.proj.bias, residual)


class SwiGluMlp(nn.Module):
    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        hidden = config.mlp_hidden
        self.w1 = nn.Linear(config.width, hidden)
        self.w2 = nn.Linear(config.width, hidden)
        self.ffn_ln = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.w3 = nn.Linear(hidden, config.width)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``residual`` plus the MLP output: the add is fused into the last product."""
        rows = rows_per_slice(self.w1.out_features, x.dtype)
        return apply_by_rows(self._forward, x, residual, rows=rows)

    def _forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        # SiLU runs inside the w1 product and the gating multiply inside the w2 product.
        gate = fused.linear_silu(x, self.w1.weight, self.w1.bias)
        hidden = fused.linear_mul(x, self.w2.weight, self.w2.bias, gate)
        return fused.linear_add(self.ffn_ln(hidden), self.w3.weight, self.w3.bias, residual)


class VisionBlock(nn.Module):
    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.width, eps=config.layer_norm_eps)
        self.attn = RopeAttention(config)
        self.norm2 = nn.LayerNorm(config.width, eps=config.layer_norm_eps)
        self.mlp = SwiGluMlp(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = self.attn(self.norm1(x), cos, sin, residual=x)
        return self.mlp(self.norm2(x), residual=x)


class EvaVisionTransformer(nn.Module):
    """Pixels (batch, 3, 224, 224) in, the final-normed CLS token out."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.config = config
        patches = config.grid_size**2
        self.patch_embed = PatchEmbed(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, patches + 1, config.width))
        self.blocks = nn.ModuleList(VisionBlock(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.width, eps=config.layer_norm_eps)
        cos, sin = rope_tables(config)
        # Derived constants: not part of the checkpoint contract.
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(pixel_values)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        cos, sin = rope_for_all_tokens(self.rope_cos.to(x.dtype), self.rope_sin.to(x.dtype))
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.norm(x)[:, 0]
