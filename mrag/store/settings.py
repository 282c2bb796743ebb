"""Where a store lives: an embedded folder (the default, Qdrant Edge) or a Qdrant server URL."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mrag.store.errors import StoreError

DEFAULT_COLLECTION = "mrag"
DEFAULT_QDRANT_PATH = Path(".mrag") / "qdrant"


@dataclass(frozen=True)
class StoreSettings:
    """Where the store lives: an embedded folder (default, Qdrant Edge) or a Qdrant server URL."""

    path: str | None = None
    url: str | None = None
    api_key: str | None = None
    collection: str = DEFAULT_COLLECTION

    @classmethod
    def from_env(
        cls,
        *,
        path: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        collection: str | None = None,
    ) -> StoreSettings:
        """Explicit values first, then ``MRAG_QDRANT_PATH``, ``QDRANT_URL``, ``QDRANT_API_KEY``,
        ``MRAG_COLLECTION``; with neither a path nor a URL, the embedded store in ``./.mrag``."""
        if path and url:
            raise StoreError("give either a Qdrant path or a Qdrant URL, not both")
        if not path and not url:
            url = os.environ.get("QDRANT_URL") or None
            if not url:
                path = os.environ.get("MRAG_QDRANT_PATH") or str(DEFAULT_QDRANT_PATH)
        return cls(
            path=path,
            url=url,
            api_key=api_key or os.environ.get("QDRANT_API_KEY") or None,
            collection=collection or os.environ.get("MRAG_COLLECTION") or DEFAULT_COLLECTION,
        )

    def describe(self) -> str:
        """The store for messages: its folder or URL and its collection."""
        return f"{self.url or self.path} (collection {self.collection!r})"
