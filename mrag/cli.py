"""``mrag``: ingest documents, query the store, serve embeddings.

Commands raise; :func:`main` is the one place that prints an error (``error: ...``, then
``hint: ...`` when there is one) and turns its kind into the exit code (see ``ERROR_KINDS``).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from mrag import __version__
from mrag.commands.common import (
    EXIT_CLOSED_PIPE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CommandError,
    error,
)

#: Subcommand modules under ``mrag.commands``, in the order ``--help`` lists them.
COMMANDS = ("ingest", "query", "delete", "stats", "serve", "mcp", "optimize", "export", "migrate")

#: Errors of the library a command may let through: (module, class, exit code, message prefix).
#: Each is looked up only if its module was imported, so ``mrag --help`` imports none of them.
#: Every one means nothing was done (the store, the model, the parser worker, the pipeline or
#: the picture cannot be used), hence exit code 2.
ERROR_KINDS: tuple[tuple[str, str, int, str], ...] = (
    ("mrag.store", "StoreError", EXIT_USAGE, ""),
    ("mrag.model", "CheckpointError", EXIT_USAGE, "cannot load the model: "),
    ("mrag.model", "ConfigError", EXIT_USAGE, "cannot load the model: "),
    ("mrag.extract.worker", "WorkerError", EXIT_USAGE, ""),
    ("mrag.ingestion.pipeline", "PipelineError", EXIT_USAGE, ""),
    ("mrag.images", "ImageError", EXIT_USAGE, ""),
)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors read like every other ``mrag`` error.

    A subcommand's mistake is shown with that subcommand's usage, and an unknown flag close to a
    known one gets a ``hint: did you mean ...`` line.
    """

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        error(message, _did_you_mean(self, message))
        sys.exit(EXIT_USAGE)


def _did_you_mean(parser: argparse.ArgumentParser, message: str) -> str | None:
    """``did you mean X?`` for an unknown flag or a mistyped choice close to a known one."""
    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
    if choice:
        # Choices are quoted up to Python 3.12 and bare after it.
        given, known = choice[1], [c.strip().strip("'") for c in choice[2].split(",")]
        candidates = [given]
    elif message.startswith("unrecognized arguments: "):
        known = [flag for action in parser._actions for flag in action.option_strings]
        words = message.removeprefix("unrecognized arguments: ").split()
        candidates = [word.split("=", 1)[0] for word in words if word.startswith("-")]
    else:
        return None
    for candidate in candidates:
        close = difflib.get_close_matches(candidate, known, n=1, cutoff=0.6)
        if close:
            return f"did you mean {close[0]}?"
    return None


def build_parser() -> argparse.ArgumentParser:
    """The ``mrag`` parser with every subcommand whose module imports."""
    parser = Parser(
        prog="mrag",
        description="Multimodal RAG: documents into one jina-clip-v1 space in Qdrant.",
    )
    parser.add_argument("--version", action="version", version=f"mrag {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"mrag.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"mrag.commands.{name}":
                raise
            continue
        subparser = module.add_parser(subparsers)
        if subparser is not None:
            subparser.set_defaults(parser=subparser)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; unknown arguments are reported by the subcommand they were given to."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        owner = getattr(args, "parser", None) or parser
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def exit_code(exc: BaseException) -> tuple[int, str] | None:
    """The exit code and message prefix of a library error, or None for an unexpected one."""
    for module_name, class_name, code, prefix in ERROR_KINDS:
        module = sys.modules.get(module_name)
        kind = getattr(module, class_name, None) if module is not None else None
        if kind is not None and isinstance(exc, kind):
            return code, prefix
    return None


def _closed_pipe() -> int:
    # Whatever is still buffered cannot be written either; point stdout at nothing so the
    # interpreter's own flush at exit does not fail a second time.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_CLOSED_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``mrag`` command; the exit code."""
    parser = build_parser()
    args = parse(parser, argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        code = int(args.run(args))
        sys.stdout.flush()
        return code
    except CommandError as exc:
        error(str(exc), exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return _closed_pipe()
    except Exception as exc:
        known = exit_code(exc)
        if known is None:
            raise
        code, prefix = known
        hint = getattr(exc, "hint", None)
        message = getattr(exc, "message", str(exc)) if hint else str(exc)
        error(f"{prefix}{message}", hint)
        return code


if __name__ == "__main__":
    sys.exit(main())
