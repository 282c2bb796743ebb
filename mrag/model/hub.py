"""Finding a checkpoint folder: a local path, or a Hub id fetched into the Hugging Face cache.

Kept free of torch so that the command line and pipeline files can name models cheaply.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

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


#: How long to wait for the Hub to answer a connection before saying it cannot be reached.
HUB_PROBE_TIMEOUT_S = 1.5
_COMMIT = re.compile(r"[0-9a-f]{40}")
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


class CheckpointError(RuntimeError):
    """A checkpoint could not be found, downloaded or loaded; ``hint`` says what to do, if
    anything can be done."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        # Outside the CLI (which prints the hint on a line of its own) the advice stays in view.
        return f"{self.message}; {self.hint}" if self.hint else self.message


def _hub_unreachable(endpoint: str) -> str | None:
    """Why the Hub cannot be reached (DNS, refused, timed out), or None if it answers.

    huggingface_hub retries a failed request for about half a minute; one TCP connection with a
    short timeout tells the same in a second. Behind a proxy the check is left to the client.
    """
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return None
    parts = urlsplit(endpoint)
    host = parts.hostname
    if not host:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT_S).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(str(exc) or type(exc).__name__)

    # Name resolution ignores socket timeouts; a thread bounds it too.
    thread = threading.Thread(target=probe, daemon=True, name="mrag-hub-probe")
    thread.start()
    thread.join(HUB_PROBE_TIMEOUT_S + 0.2)
    if not outcome:
        return f"no answer from {host} within {HUB_PROBE_TIMEOUT_S:g} s"
    return None if outcome[0] is None else f"{host}: {outcome[0]}"


def looks_like_hub_id(name: str) -> bool:
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
    if path.exists() or not looks_like_hub_id(name):
        raise CheckpointError(f"{name}: not a checkpoint folder (and not a Hub id like owner/name)")
    if revision is None:
        revision = DEFAULT_REVISION if name == HUB_MODEL_ID else "main"
    try:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        raise CheckpointError("downloading from the Hub needs huggingface_hub installed") from None
    where = f"{name}@{revision[:12]}"
    how_to = (
        f"download it where there is a connection (`hf download {name} --revision {revision}`) "
        "or pass a local checkpoint folder (--model PATH or MRAG_MODEL=PATH)"
    )
    patterns = list(CHECKPOINT_FILES)
    offline = bool(constants.HF_HUB_OFFLINE)
    if offline or _COMMIT.fullmatch(revision):
        # A commit never changes: when it is in the cache, no request is needed at all.
        try:
            return Path(
                snapshot_download(
                    name, revision=revision, allow_patterns=patterns, local_files_only=True
                )
            )
        except LocalEntryNotFoundError:
            if offline:
                raise CheckpointError(
                    f"{where} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and "
                    f"offline mode is on (HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE')}), "
                    "so the Hub is not asked",
                    hint=how_to,
                ) from None
        except Exception:  # a damaged cache entry: let the download below repair it
            pass
    unreachable = _hub_unreachable(constants.ENDPOINT)
    if unreachable is not None:
        raise CheckpointError(
            f"{where} is not in the Hugging Face cache and the Hub cannot be reached "
            f"({unreachable})",
            hint=how_to,
        )
    try:
        folder = snapshot_download(name, revision=revision, allow_patterns=patterns)
    except LocalEntryNotFoundError:
        raise CheckpointError(
            f"{where} is not in the Hugging Face cache and the Hub cannot be reached", hint=how_to
        ) from None
    except Exception as exc:
        raise CheckpointError(f"{where}: download failed ({exc})") from None
    return Path(folder)


def cached_checkpoint(name: str, revision: str | None) -> Path | None:
    """The Hugging Face cache folder of Hub id ``name`` holding its weights, never asking the
    network; None when it is not cached (or ``name`` is no Hub id)."""
    if not looks_like_hub_id(name):
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                name,
                revision=revision or "main",
                allow_patterns=["model.safetensors"],
                local_files_only=True,
            )
        )
    except Exception:  # not in the cache, or a damaged entry
        return None
