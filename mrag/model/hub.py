"""Finding a checkpoint folder: a local path, or a Hub id fetched into the Hugging Face cache.

Kept free of torch so that the command line and pipeline files can name models cheaply.
"""

from __future__ import annotations

import os
from pathlib import Path

HUB_MODEL_ID = "jinaai/jina-clip-v1"
#: The Hub commit of jinaai/jina-clip-v1 whose weights mrag was checked against.
DEFAULT_REVISION = "ceb3e44ca4d6eceaa4f3fb58b1c1a5748b3f29b6"
#: What a checkpoint folder must hold; ``vocab.txt`` is a fallback for ``tokenizer.json``.
CHECKPOINT_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "preprocessor_config.json",
)


class CheckpointError(RuntimeError):
    """A checkpoint could not be found, downloaded or loaded."""


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not name.startswith((".", "~"))
        and os.sep not in name.replace("/", "")
    )


def resolve_checkpoint(
    name_or_path: str | os.PathLike[str], *, revision: str | None = None
) -> Path:
    """A local checkpoint folder for ``name_or_path``, downloading from the Hub only for a Hub id.

    A path that exists is used as it is. A Hub id (``owner/name``) is fetched with
    ``huggingface_hub`` into its usual cache at ``revision`` (for jina-clip-v1 the pinned
    :data:`DEFAULT_REVISION`); with ``HF_HUB_OFFLINE=1`` only the cache is consulted.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if path.exists() or not _looks_like_hub_id(name):
        raise CheckpointError(f"{name}: not a checkpoint folder (and not a Hub id like owner/name)")
    if revision is None:
        revision = DEFAULT_REVISION if name == HUB_MODEL_ID else "main"
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        raise CheckpointError("downloading from the Hub needs huggingface_hub installed") from None
    try:
        folder = snapshot_download(name, revision=revision, allow_patterns=list(CHECKPOINT_FILES))
    except LocalEntryNotFoundError:
        raise CheckpointError(
            f"{name}@{revision[:12]} is not in the Hugging Face cache and the Hub cannot be "
            f"reached (HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')}); download it where "
            f"there is a connection (`hf download {name} --revision {revision}`) or pass a local "
            "checkpoint folder (--model PATH / MRAG_MODEL=PATH)"
        ) from None
    except Exception as exc:
        raise CheckpointError(f"{name}@{revision[:12]}: download failed ({exc})") from None
    return Path(folder)
