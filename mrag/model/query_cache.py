"""A bounded cache of recent single-text embeddings, so a repeated query costs no model run.

Searches repeat: the same question typed again, a page reloaded, a retriever called once per
modality with one text. :class:`QueryCache` keeps the text tower's output for the most recently
used texts, least recently used out first. Keys hold everything the output depends on besides
the text (see :meth:`mrag.model.JinaClipModel.encode_text`): which weights, in which dtype and
on which device, and the token budget; so a model converted to another dtype, or given other
weights, never returns a vector of its former self.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

import torch

#: Texts kept by default: 1,024 vectors of 768 values take 1.5 MB in bfloat16, 3 MB in float32.
DEFAULT_QUERY_CACHE_SIZE = 1024


class QueryCache:
    """Least-recently-used map from a key (ending in the exact text) to a features tensor.

    Safe to share between threads. ``maxsize=0`` turns caching off. Stored tensors are private
    copies, and :meth:`get` hands out the stored tensor, which callers must not modify.
    """

    def __init__(self, maxsize: int = DEFAULT_QUERY_CACHE_SIZE) -> None:
        if maxsize < 0:
            raise ValueError("maxsize must be at least 0")
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> torch.Tensor | None:
        """The features stored under ``key`` (now the most recent), or ``None``."""
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: torch.Tensor) -> None:
        """Store a copy of ``value`` under ``key``, dropping the least recently used beyond size."""
        if self.maxsize == 0:
            return
        copy = value.detach().clone()
        with self._lock:
            self._entries[key] = copy
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry (the hit and miss counts stay)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __getstate__(self) -> dict[str, int]:
        return {"maxsize": self.maxsize}

    def __setstate__(self, state: dict[str, int]) -> None:
        self.__init__(state["maxsize"])
