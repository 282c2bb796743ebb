"""Linear layers with their elementwise tail computed inside the matrix product.

With AMX a bf16 matrix product runs at 2-3 TFLOP/s on two cores, so the separate passes that
follow it (the GLU gates, the residual adds) cost nearly as much as the products: each reads and
writes a tensor too large for the caches. oneDNN's inner product applies an activation, or a
multiply or add with a second tensor, to each output tile while it is still in registers (a
"post-op"). Measured on two Sapphire Rapids cores at bf16: the text tower's GEGLU MLP over 4096
tokens took 50 ms as one 6144-wide product with eager gates in 1024-token slices, and 31 ms
fused, equal to within one bf16 rounding.

Products of few rows (a search query is a dozen tokens) read every weight for little arithmetic.
Given a plain weight, oneDNN first copies it into its blocked layout on every call, so such a
product moves the weight three times instead of once: measured on two AMD Zen 4 cores (AVX-512
BF16, no AMX), 12 rows through the text tower's 60 products took 26 ms on plain weights and
14 ms on weights laid out once (:class:`SmallRowsWeights`), with bit-identical results. Where
that applies is decided per CPU feature by :func:`packs_small_rows`. In float32, few-row products
run as ``weight @ x.T`` (:func:`product`), which reads each weight once in the order it is stored.

Every function here is exact in meaning: it equals the eager expression in its docstring (a
few-row float32 product within float32 rounding), to which it falls back wherever oneDNN does
not apply: tensors that need gradients, devices other than the CPU, dtypes other than bfloat16,
and graph capture (``torch.compile``, ONNX export), which must see standard operators.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from mrag.model.precision import read_cpu_flags

_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
_BF16 = _ONEDNN and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
_enabled = True

#: Products of at most this many rows run on packed weights, where :func:`packs_small_rows`.
SMALL_ROWS = 64
#: Float32 products of at most this many rows run as ``weight @ x.T`` (see :func:`product`).
FEW_ROWS_FLOAT32 = 16
#: The row count oneDNN lays packed weights out for: a typical short query. (Measured: packed
#: for 12 rows, products of 1 to 64 rows ran 1.5-2x as fast as on plain weights.)
PACK_ROWS_HINT = 12


def packs_small_rows(flags: Iterable[str] | None = None) -> bool:
    """Whether few-row bfloat16 products run on pre-packed weights on this CPU (or ``flags``).

    Yes with AVX-512 BF16 and no AMX, where it was measured to halve a short query's products.
    Not on AMX CPUs, whose tile kernels were tuned and measured on plain weights and stay as
    they were; and not without native bfloat16, where the model computes in float32 (oneDNN's
    float32 kernels on packed weights measured slower than ``F.linear`` at 12 rows, MKL's
    packed float32 GEMM four times slower).
    """
    available = read_cpu_flags() if flags is None else frozenset(flags)
    return "avx512_bf16" in available and "amx_bf16" not in available


_small_rows = _BF16 and packs_small_rows()
_few_rows_transposed = True


def has_few_row_path(dtype: torch.dtype) -> bool:
    """Whether few-row products take a path of their own in ``dtype`` on this CPU, the one
    :func:`unpacked` turns off: packed weights in bfloat16, ``weight @ x.T`` in float32."""
    return dtype == torch.float32 or (dtype == torch.bfloat16 and _BF16 and packs_small_rows())


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run the eager expressions instead of the fused kernels (for A/B measurements)."""
    global _enabled
    previous, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = previous


@contextlib.contextmanager
def unpacked() -> Iterator[None]:
    """Run few-row products as ``F.linear`` on the plain weights (for A/B measurements)."""
    global _small_rows, _few_rows_transposed
    previous = _small_rows, _few_rows_transposed
    _small_rows = _few_rows_transposed = False
    try:
        yield
    finally:
        _small_rows, _few_rows_transposed = previous


def capturing() -> bool:
    """Whether a graph is being captured (``torch.compile``, ``torch.export``, ONNX export, a
    trace): the model then runs its plain operators, which every backend knows."""
    compiler = torch.compiler
    return compiler.is_compiling() or compiler.is_exporting() or torch.jit.is_tracing()


def product(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``; float32 products of few rows on the CPU as ``weight @ x.T``.

    ``F.linear`` hands the weight to the GEMM as a transposed operand, which at a few rows runs
    far below the speed of reading the weight; the other orientation streams the weight once, as
    it is stored. Measured on two Ice Lake cores, 12 rows through the text tower's 48 products:
    61.6 ms as ``F.linear``, 36.2 ms as ``weight @ x.T``; reading the weights alone takes 21.7 ms.
    Results agree within float32 rounding (another summation order), not bit for bit.
    """
    rows = x.numel() // max(1, x.shape[-1])
    if (
        not _few_rows_transposed
        or rows > FEW_ROWS_FLOAT32
        or x.dtype != torch.float32
        or weight.dtype != torch.float32
        or x.device.type != "cpu"
        or capturing()
    ):
        return F.linear(x, weight, bias)
    flat = x.reshape(rows, x.shape[-1]).t()
    out = torch.mm(weight, flat) if bias is None else torch.addmm(bias.unsqueeze(1), weight, flat)
    return out.t().contiguous().view(*x.shape[:-1], weight.shape[0])


def _applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    # bfloat16 only: at float32 the products are slow enough that the separate passes matter
    # little, and oneDNN's float32 kernels with these tails measured 4-7% slower than eager.
    if not _enabled or not _BF16 or x.device.type != "cpu":
        return False
    if x.dtype != torch.bfloat16 or weight.dtype != torch.bfloat16:
        return False
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return False
    return not capturing()


class SmallRowsWeights:
    """One module's weights laid out once in oneDNN's blocked layout, for few-row products.

    :meth:`get` returns the packed copy of a weight for an input of few rows on a CPU where
    that is faster (see :func:`packs_small_rows`), else ``None`` (use the plain weight). Copies
    are made on first use, so a process that never embeds a short text never holds them (for
    the text tower in bfloat16 they take as much memory as its weights, 226 MB), and remade
    when the weight changes (a new dtype, device or loaded values). They are never pickled or
    deep-copied: the copy packs again.
    """

    def __init__(self) -> None:
        self._packs: dict[str, tuple[tuple[Any, ...], torch.Tensor]] = {}
        self._lock = threading.Lock()

    def get(self, name: str, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor | None:
        """The packed ``weight`` for multiplying ``x``, or ``None`` where it does not apply."""
        # _applies first: under graph capture the row count must not become a guard.
        if not _small_rows or not _applies(x, weight) or x.numel() > SMALL_ROWS * x.shape[-1]:
            return None
        stamp = (weight.data_ptr(), weight._version, weight.shape, weight.dtype, weight.device)
        entry = self._packs.get(name)
        if entry is None or entry[0] != stamp:
            with self._lock:
                entry = self._packs.get(name)
                if entry is None or entry[0] != stamp:
                    packed = torch.ops.mkldnn._reorder_linear_weight(weight, PACK_ROWS_HINT)
                    entry = self._packs[name] = (stamp, packed)
        return entry[1]

    def clear(self) -> None:
        """Drop every packed copy (they are made again on the next few-row product)."""
        with self._lock:
            self._packs.clear()

    def __len__(self) -> int:
        return len(self._packs)

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()

    def __deepcopy__(self, memo: dict[int, Any]) -> SmallRowsWeights:
        return SmallRowsWeights()


def _unary(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    tail: tuple[str, str, Callable[[torch.Tensor], torch.Tensor]],
    packed: torch.Tensor | None,
) -> torch.Tensor:
    attr, algorithm, eager = tail
    if _applies(x, weight):
        chosen = weight if packed is None else packed
        return torch.ops.mkldnn._linear_pointwise(x, chosen, bias, attr, [], algorithm)
    return eager(product(x, weight, bias))


def _binary(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    other: torch.Tensor,
    tail: tuple[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]],
    packed: torch.Tensor | None,
) -> torch.Tensor:
    attr, eager = tail
    if _applies(x, weight) and other.dtype == x.dtype:
        chosen = weight if packed is None else packed
        return torch.ops.mkldnn._linear_pointwise.binary(x, other, chosen, bias, attr)
    return eager(product(x, weight, bias), other)


def linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    packed: torch.Tensor | None = None,
) -> torch.Tensor:
    """``F.linear(x, weight, bias)``; ``packed`` is ``weight`` from :class:`SmallRowsWeights`."""
    return _unary(x, weight, bias, ("none", "", lambda y: y), packed)


def linear_gelu(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    packed: torch.Tensor | None = None,
) -> torch.Tensor:
    """``F.gelu(F.linear(x, weight, bias))``, the exact (erf) GELU."""
    return _unary(x, weight, bias, ("gelu", "none", F.gelu), packed)


def linear_silu(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    packed: torch.Tensor | None = None,
) -> torch.Tensor:
    """``F.silu(F.linear(x, weight, bias))``."""
    return _unary(x, weight, bias, ("swish", "", F.silu), packed)


def linear_mul(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    other: torch.Tensor,
    packed: torch.Tensor | None = None,
) -> torch.Tensor:
    """``F.linear(x, weight, bias) * other``, ``other`` of the output's shape."""
    return _binary(x, weight, bias, other, ("mul", torch.mul), packed)


def linear_add(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    other: torch.Tensor,
    packed: torch.Tensor | None = None,
) -> torch.Tensor:
    """``F.linear(x, weight, bias) + other``, ``other`` of the output's shape (a residual)."""
    return _binary(x, weight, bias, other, ("add", torch.add), packed)
