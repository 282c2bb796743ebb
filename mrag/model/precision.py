"""Which floating-point type the model computes in.

``dtype="auto"`` (the default everywhere) picks bfloat16 where the hardware multiplies it
natively and float32 elsewhere. On a CPU that means the AVX-512 BF16 dot-product instructions
(Intel Cooper Lake and later, AMD Zen 4 and later) or AMX tiles (Intel Sapphire Rapids and later):
there bf16 matrix products run 2.5x (AVX-512 BF16) to 7.5x (AMX) as fast as float32 and the
normalised embeddings stay within a few 1e-3 of float32. Without them bf16 is emulated and
slower than float32. On CUDA it is the device's own bf16 support (Ampere and later).

The CPU check reads the kernel's flags and needs no torch, so ``mrag stats`` can report it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mrag.model.device import AUTO_DEVICE, resolve_device

if TYPE_CHECKING:
    import torch

AUTO = "auto"
#: The dtype names a pipeline file and the command line accept.
DTYPE_CHOICES = (AUTO, "float32", "bfloat16")
#: CPU flags (as Linux names them in ``/proc/cpuinfo``) that mean native bfloat16 arithmetic.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")

_NAMES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}


@dataclass(frozen=True)
class DtypeChoice:
    """A resolved dtype name (``"float32"`` or ``"bfloat16"``) and why it was chosen."""

    dtype: str
    reason: str

    def __str__(self) -> str:
        return f"{self.dtype} ({self.reason})"


def read_cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU flags every core reports (empty where ``/proc/cpuinfo`` does not exist)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    return parse_cpu_flags(text)


def parse_cpu_flags(cpuinfo_text: str) -> frozenset[str]:
    """Flags common to all cores in the text of ``/proc/cpuinfo``.

    Only what every core has counts: a thread may run on any of them.
    """
    common: set[str] | None = None
    for line in cpuinfo_text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            flags = set(value.split())
            common = flags if common is None else common & flags
    return frozenset(common or ())


def cpu_dtype(flags: Iterable[str] | None = None) -> DtypeChoice:
    """What ``auto`` means on this CPU (or on one with the given ``flags``)."""
    available = read_cpu_flags() if flags is None else frozenset(flags)
    native = [flag for flag in BF16_CPU_FLAGS if flag in available]
    if native:
        return DtypeChoice("bfloat16", "auto: CPU has " + ", ".join(native))
    return DtypeChoice("float32", "auto: CPU has no native bfloat16")


def auto_dtype(device: str | torch.device | None = None) -> DtypeChoice:
    """What ``auto`` means on ``device`` (default: the CPU; ``"auto"``: where it resolves to)."""
    if str(device) == AUTO_DEVICE:
        device = resolve_device(device)
    kind = str(device or "cpu").split(":", 1)[0]
    if kind == "cpu":
        return cpu_dtype()
    if kind == "cuda":
        import torch

        if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
            return DtypeChoice("bfloat16", "auto: CUDA device supports bfloat16")
        return DtypeChoice("float32", "auto: CUDA device without native bfloat16")
    return DtypeChoice("float32", f"auto: no bfloat16 rule for {kind} devices")


def choose_dtype(
    dtype: torch.dtype | str | None, device: str | torch.device | None = None
) -> DtypeChoice:
    """Resolve a requested dtype (``None`` and ``"auto"`` alike) to a concrete one.

    Raises:
        ValueError: for a name that is not a supported floating-point type.
    """
    if dtype is None or dtype == AUTO:
        return auto_dtype(device)
    name = str(dtype).removeprefix("torch.")
    try:
        return DtypeChoice(_NAMES[name], "requested")
    except KeyError:
        raise ValueError(f"unsupported dtype {dtype!r}; use auto, float32 or bfloat16") from None


def resolve_dtype(
    dtype: torch.dtype | str | None, device: str | torch.device | None = None
) -> torch.dtype:
    """The ``torch.dtype`` that :func:`choose_dtype` picks."""
    import torch

    return getattr(torch, choose_dtype(dtype, device).dtype)
