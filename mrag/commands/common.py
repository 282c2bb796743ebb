"""Options shared by several subcommands: which model, which store."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import TYPE_CHECKING

from mrag.model.hub import HUB_MODEL_ID
from mrag.model.precision import DTYPE_CHOICES

if TYPE_CHECKING:
    from mrag.model.identity import ModelChoice, ModelRecord
    from mrag.store import StoreSettings

#: Exit codes, one per kind of outcome (the README lists them).
EXIT_OK = 0
#: Some inputs failed; the rest of the work was done.
EXIT_FAILURES = 1
#: Nothing was done: bad usage, or what the command needs (the store, the model, the device, the
#: parser worker) is not available, e.g. the embedded store is in use by another process.
EXIT_USAGE = 2
#: Nothing was done because no file under the given paths matched the include globs.
EXIT_NO_INPUT = 3
#: Stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
EXIT_INTERRUPTED = 130
#: Whoever read the output went away (``mrag query --json | head``): 128 + SIGPIPE.
EXIT_CLOSED_PIPE = 141


class CommandError(Exception):
    """A command could not do its work: one line for the user, maybe a hint, one exit code.

    Commands raise it (or an error of the library, which ``mrag.cli`` maps to an exit code);
    only ``mrag.cli.main`` prints it.
    """

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class UsageError(CommandError):
    """Bad command-line input or an unavailable resource: exit code 2."""


class NoInputError(CommandError):
    """No file under the given paths matched the include globs: exit code 3."""

    exit_code = EXIT_NO_INPUT


def check_device(device: str | None) -> None:
    """Raise :class:`UsageError` for a torch device this machine does not have.

    Checked before anything loads, so ``--device cuda`` on a CPU-only build is one line, not a
    traceback from deep inside torch.
    """
    if not device or device in ("cpu", "auto"):
        return
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {device}: not a torch device (try cpu or cuda)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        build = "has no CUDA support" if torch.version.cuda is None else "finds no CUDA GPU"
        raise UsageError(f"--device {device}: this torch build ({torch.__version__}) {build}")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {device}: MPS is not available on this machine")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        metavar="NAME_OR_DIR",
        default=None,
        help=f"checkpoint folder or Hub id (env MRAG_MODEL; default {HUB_MODEL_ID})",
    )
    group.add_argument("--revision", default=None, help="Hub revision (default: the pinned one)")
    group.add_argument(
        "--device",
        default=None,
        help="torch device: auto (default: CUDA when there is a GPU, else the CPU), cpu, cuda",
    )
    group.add_argument(
        "--dtype",
        default=None,
        choices=DTYPE_CHOICES,
        help="compute dtype (default auto: bfloat16 where the CPU/GPU has it natively)",
    )


def add_store_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("store")
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--qdrant-path",
        metavar="DIR",
        default=None,
        help="embedded Qdrant folder (env MRAG_QDRANT_PATH; default ./.mrag/qdrant)",
    )
    where.add_argument(
        "--qdrant-url", metavar="URL", default=None, help="Qdrant server URL (env QDRANT_URL)"
    )
    group.add_argument(
        "--collection", default=None, help="collection name (env MRAG_COLLECTION; default mrag)"
    )


def model_name(args: argparse.Namespace) -> str:
    return args.model or os.environ.get("MRAG_MODEL") or HUB_MODEL_ID


def store_settings(args: argparse.Namespace) -> StoreSettings:
    from mrag.store import StoreSettings  # qdrant-client takes a while to import; not for --help

    return StoreSettings.from_env(
        path=args.qdrant_path, url=args.qdrant_url, collection=args.collection
    )


def model_for(args: argparse.Namespace, recorded: ModelRecord | None) -> ModelChoice:
    """The model a command loads for a store that records ``recorded``: ``--model``, else
    ``MRAG_MODEL``, else the store's own model (said on stderr), else jina-clip-v1."""
    from mrag.model import CheckpointError
    from mrag.model.identity import STORE, choose_model

    try:
        choice = choose_model(args.model, args.revision, recorded)
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None
    if choice.origin == STORE and not choice.builtin:
        print(f"using {choice.describe()}", file=sys.stderr)
    return choice


def model_for_store(args: argparse.Namespace, settings: StoreSettings) -> ModelChoice:
    """The model to serve the store of ``settings`` with (see :func:`model_for`), checked to
    be the one that built it. Raises :class:`UsageError` when it cannot serve the store."""
    from mrag.model import CheckpointError, ConfigError
    from mrag.store import ModelRecord, Store, StoreInUseError

    try:
        with Store.open(settings) as store:
            recorded = store.model if store.exists() else None
            choice = model_for(args, recorded)
            if recorded is not None:
                # A checkpoint that cannot be read is reported when the model loads.
                with contextlib.suppress(CheckpointError, ConfigError):
                    store.check_model(ModelRecord.of_checkpoint(choice.name, choice.revision))
    except StoreInUseError:
        return model_for(args, None)  # searched later, once the writer is done
    return choice


def error(message: str, hint: str | None = None) -> None:
    """One line on stderr, ruff-style: ``error: <what went wrong>``, then ``hint: ...`` if any."""
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
