"""Which model made a set of vectors: a name, a revision, a dimension and a weights fingerprint.

A store records the :class:`ModelRecord` of the model that built it. Two records conflict when
their vectors cannot be compared (another size, or other weights); the fingerprint makes a
renamed copy of the same checkpoint the same model. A record can also name what to load to
embed queries for such a store (:meth:`ModelRecord.checkpoint`): the recorded folder if it is
still there, else the Hub id at its revision.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from mrag.model.config import JinaClipConfig
from mrag.model.hub import (
    DEFAULT_REVISION,
    HUB_MODEL_ID,
    CheckpointError,
    cached_checkpoint,
    looks_like_hub_id,
    resolve_checkpoint,
)

#: Where a :class:`ModelChoice` came from.
GIVEN, STORE, DEFAULT = "given", "store", "default"
#: Bytes read from each end of a weights file for its fingerprint.
_FINGERPRINT_BYTES = 1 << 20


def weights_fingerprint(folder: Path) -> str | None:
    """A short digest of a checkpoint's weights file (size, first and last MiB): the same
    weights under any folder name give the same digest, other weights another one."""
    weights = folder / "model.safetensors"
    try:
        size = weights.stat().st_size
        digest = hashlib.sha256(str(size).encode())
        with weights.open("rb") as handle:
            digest.update(handle.read(_FINGERPRINT_BYTES))
            handle.seek(max(size - _FINGERPRINT_BYTES, 0))
            digest.update(handle.read(_FINGERPRINT_BYTES))
    except OSError:
        return None
    return digest.hexdigest()[:16]


def local_checkpoint(name: str, revision: str | None) -> Path | None:
    """The folder holding ``name``'s weights on this machine: the folder itself, or the Hub
    id's entry in the Hugging Face cache (the network is never asked)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    return cached_checkpoint(name, revision)


def recorded_name(name_or_path: str | os.PathLike[str]) -> str:
    """How a model is recorded: a checkpoint folder by its absolute path (so the record still
    finds it from another working directory), anything else as given."""
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.is_dir() else str(name_or_path)


@dataclass(frozen=True)
class ModelRecord:
    """Which model made a store's vectors: its name (Hub id or folder), revision, dimension and
    a fingerprint of its weights."""

    name: str | None
    revision: str | None
    dimension: int
    fingerprint: str | None = None

    @classmethod
    def of(
        cls,
        name_or_path: str | os.PathLike[str] | None,
        revision: str | None,
        dimension: int,
        *,
        folder: Path | None = None,
    ) -> ModelRecord:
        """The record of a model as the user names it (a Hub id or a checkpoint folder).

        The weights are fingerprinted from ``folder``, the folder named, or the Hugging Face
        cache (never the network); a model found nowhere is compared by dimension only.
        """
        if name_or_path is None:
            return cls(None, revision, dimension)
        name = recorded_name(name_or_path)
        if revision is None and name == HUB_MODEL_ID:
            revision = DEFAULT_REVISION
        if folder is None:
            folder = local_checkpoint(name, revision)
        fingerprint = weights_fingerprint(folder) if folder is not None else None
        return cls(name, revision, dimension, fingerprint)

    @classmethod
    def of_checkpoint(
        cls, name_or_path: str | os.PathLike[str], revision: str | None
    ) -> ModelRecord:
        """The record of a checkpoint, read from its files without loading the model (a Hub id
        is fetched into the cache first, as loading it would)."""
        folder = resolve_checkpoint(name_or_path, revision=revision)
        dimension = JinaClipConfig.from_folder(folder).embedding_dim
        return cls.of(name_or_path, revision, dimension, folder=folder)

    def describe(self) -> str:
        name = self.name or "an unnamed model"
        revision = f"@{self.revision[:12]}" if self.revision else ""
        return f"{name}{revision} ({self.dimension}-d)"

    def conflicts_with(self, other: ModelRecord) -> bool:
        """True when vectors of ``other`` cannot be compared with vectors of this model."""
        if self.dimension != other.dimension:
            return True
        return bool(
            self.fingerprint and other.fingerprint and self.fingerprint != other.fingerprint
        )

    def checkpoint(self) -> tuple[str, str | None]:
        """What to load to embed like this model: ``(folder or Hub id, revision)``.

        The recorded folder while it exists; else the Hub id at the recorded revision. Raises
        :class:`~mrag.model.CheckpointError` naming the recorded model when neither is usable
        (no name recorded, or a folder that is gone and is no Hub id).
        """
        if not self.name:
            raise CheckpointError(
                f"the store records no model name (only {self.dimension}-d vectors); "
                "name the model that built it (--model/MRAG_MODEL)"
            )
        if Path(self.name).expanduser().is_dir():
            return self.name, None
        if looks_like_hub_id(self.name):
            return self.name, self.revision
        raise CheckpointError(
            f"the store was built with {self.describe()}, and that checkpoint folder is gone; "
            "pass the same model (--model/MRAG_MODEL)"
        )


@dataclass(frozen=True)
class ModelChoice:
    """The model to load, and why: ``origin`` is :data:`GIVEN` (an argument or
    ``MRAG_MODEL``), :data:`STORE` (the model the store records) or :data:`DEFAULT`."""

    name: str
    revision: str | None
    origin: str

    @property
    def builtin(self) -> bool:
        """Whether this is jina-clip-v1 at the pinned revision, the model mrag uses anyway."""
        return self.name == HUB_MODEL_ID and self.revision in (None, DEFAULT_REVISION)

    def describe(self) -> str:
        """The choice for a message: ``the store's model /ckpt``, ``jinaai/jina-clip-v1``."""
        return f"the store's model {self.name}" if self.origin == STORE else self.name


def choose_model(
    given: str | os.PathLike[str] | None, revision: str | None, recorded: ModelRecord | None
) -> ModelChoice:
    """The model to embed with: the one ``given`` (else ``MRAG_MODEL``); else the one the store
    records (``recorded``, see :meth:`ModelRecord.checkpoint`); else jina-clip-v1.

    Raises :class:`~mrag.model.CheckpointError` naming the recorded model when the store's
    model is wanted but cannot be found.
    """
    named = str(given) if given else os.environ.get("MRAG_MODEL") or None
    if named:
        return ModelChoice(named, revision, GIVEN)
    if recorded is not None and recorded.name:
        name, recorded_revision = recorded.checkpoint()
        return ModelChoice(name, revision or recorded_revision, STORE)
    return ModelChoice(HUB_MODEL_ID, revision, DEFAULT)
