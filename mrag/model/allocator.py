"""Keep freed memory in the process, so large activations do not page-fault on every layer.

glibc serves blocks over its mmap threshold (dynamic, at most 32 MB) with fresh ``mmap``s and
returns free memory at the top of the heap to the kernel once it exceeds twice that threshold.
A transformer allocates and frees the same 10-50 MB activations in every layer, so by default
each layer touches, faults in and zeroes them again: at bf16 speed that was a fifth of the text
tower's time (8 x 512 tokens, 814-960 ms against 660-690 ms with the memory kept). Raising both
thresholds keeps the process at its peak footprint instead of giving memory back between
layers, which is what an embedding process wants; PyTorch's CUDA allocator does the same.

It is done once, when a model is loaded for the CPU, and only where glibc is the allocator and
the user has not set the thresholds (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
``GLIBC_TUNABLES``) or opted out with ``MRAG_KEEP_FREED_MEMORY=0``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

#: Blocks up to this size come from the heap, and this much free heap is kept.
KEEP_BYTES = 1 << 30

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to :data:`KEEP_BYTES`; whether they are raised.

    Idempotent: only the first call in a process does anything.
    """
    global _done
    if _done is None:
        _done = _raise_thresholds()
    return _done


def _raise_thresholds() -> bool:
    if os.environ.get("MRAG_KEEP_FREED_MEMORY", "1").strip().lower() in {"0", "false", "no", "off"}:
        return False
    if any(name in os.environ for name in _USER_SETTINGS):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES)
    )
