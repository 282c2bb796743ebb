"""``python -m mrag``: ingest documents, query the store, serve embeddings."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mrag import __version__
from mrag.commands.common import EXIT_USAGE, UsageError, error

#: Subcommand modules under ``mrag.commands``, in the order ``--help`` lists them.
COMMANDS = ("ingest", "query", "delete", "stats", "serve", "mcp", "optimize", "export", "migrate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrag",
        description="Multimodal RAG: documents into one jina-clip-v1 space in Qdrant.",
    )
    parser.add_argument("--version", action="version", version=f"mrag {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".commands.{name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.commands.{name}":
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.run(args))
    except UsageError as exc:
        error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
