"""Floating-point operation counts of jina-clip-v1, from the architecture config.

A multiply-add counts as 2 operations. Only matrix products are counted (linear layers, the patch
convolution and the two attention products); normalisation, activations, RoPE, softmax and the
ALiBi bias are a fraction of a percent and are left out, as is usual for such figures.
"""

from __future__ import annotations

from mrag.model.config import JinaClipConfig, TextConfig, VisionConfig


def vision_tokens(config: VisionConfig) -> int:
    """Sequence length of the vision tower: one token per patch plus the CLS token."""
    return config.grid_size**2 + 1


def vision_gemm_shapes(config: VisionConfig, batch: int) -> list[tuple[int, int, int]]:
    """(M, K, N) of every linear layer of one vision block for ``batch`` images."""
    m = batch * vision_tokens(config)
    width, hidden = config.width, config.mlp_hidden
    return [
        (m, width, 3 * width),  # q, k, v in one product
        (m, width, width),  # attention output projection
        (m, width, hidden),  # SwiGLU w1
        (m, width, hidden),  # SwiGLU w2
        (m, hidden, width),  # SwiGLU w3
    ]


def image_flops(config: VisionConfig) -> float:
    """Operations to embed one image."""
    length = vision_tokens(config)
    patches = config.grid_size**2
    patch = 2.0 * patches * config.width * 3 * config.patch_size**2
    linear = sum(2.0 * m * k * n for m, k, n in vision_gemm_shapes(config, 1))
    attention = 4.0 * length * length * config.width  # q·kᵀ and weights·v, all heads
    return patch + config.layers * (linear + attention)


def text_gemm_shapes(config: TextConfig, tokens: int) -> list[tuple[int, int, int]]:
    """(M, K, N) of every linear layer of one text layer for ``tokens`` tokens in the batch."""
    width, inner = config.hidden_size, config.intermediate_size
    return [
        (tokens, width, 3 * width),  # Wqkv
        (tokens, width, width),  # out_proj
        (tokens, width, 2 * inner),  # GEGLU gate and value in one product
        (tokens, inner, width),  # wo
    ]


def text_flops(config: TextConfig, batch: int, length: int) -> float:
    """Operations the text tower executes on a (batch, length) id tensor, padding included."""
    tokens = batch * length
    linear = sum(2.0 * m * k * n for m, k, n in text_gemm_shapes(config, tokens))
    attention = 4.0 * batch * length * length * config.hidden_size
    return config.num_hidden_layers * (linear + attention)


def text_flops_per_token(config: TextConfig) -> float:
    """Operations per token without attention (the length-independent part)."""
    return text_flops(config, 1, 1) - 4.0 * config.hidden_size * config.num_hidden_layers


def check_against_reference(config: JinaClipConfig) -> dict[str, float]:
    """The counts for this config next to the published jina-clip-v1 figures (35 GFLOP per
    image, 0.23 GFLOP per token, 125 GFLOP per 512-token text)."""
    return {
        "image_gflop": round(image_flops(config.vision) / 1e9, 2),
        "text_gflop_per_token": round(text_flops_per_token(config.text) / 1e9, 4),
        "text_512_gflop": round(text_flops(config.text, 1, 512) / 1e9, 2),
        "reference_image_gflop": 35.0,
        "reference_text_gflop_per_token": 0.23,
        "reference_text_512_gflop": 125.0,
    }
