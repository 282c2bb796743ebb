"""What goes wrong with a store, as one family of errors (the CLI exits 2 on any of them)."""

from __future__ import annotations


class StoreError(RuntimeError):
    """The store cannot be opened or used."""


class StoreInUseError(StoreError):
    """Another process holds the embedded store."""


class OldLayoutError(StoreError):
    """The store was written in an older layout; ``mrag migrate`` re-indexes it."""


class ModelMismatchError(StoreError):
    """The store was built with another model than the one in use."""
