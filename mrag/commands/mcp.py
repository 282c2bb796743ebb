"""``mrag mcp``: the MCP server over stdio, for agents that start it as a subprocess."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mrag.commands.common import (
    EXIT_OK,
    UsageError,
    add_model_options,
    add_store_options,
    check_device,
    model_for_store,
    store_settings,
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``mcp`` and its options."""
    parser = subparsers.add_parser(
        "mcp",
        help="serve the store to agents over the Model Context Protocol (stdio)",
        description=(
            "Run an MCP server on stdin/stdout with the tools search, list_sources and (with "
            "--allow-ingest) ingest. `mrag serve` offers the same tools at /mcp over HTTP. "
            "Needs the 'serve' extra."
        ),
    )
    add_allow_ingest(parser)
    add_model_options(parser)
    add_store_options(parser)
    parser.set_defaults(run=run)
    return parser


def add_allow_ingest(parser: argparse.ArgumentParser) -> None:
    """``--allow-ingest DIR``, shared with ``serve``."""
    parser.add_argument(
        "--allow-ingest",
        action="append",
        default=[],
        metavar="DIR",
        help="let the MCP ingest tool read files under DIR (repeatable; off by default)",
    )


def allowed_folders(given: list[str]) -> list[Path]:
    """The ``--allow-ingest`` folders, resolved; a usage error for one that is not a folder."""
    folders = []
    for folder in given:
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise UsageError(f"--allow-ingest {folder}: not a folder")
        folders.append(path)
    return folders


def run(args: argparse.Namespace) -> int:
    """Load the model and answer MCP requests on stdio until the client closes it."""
    try:
        from mrag.server.mcp_server import run_stdio
    except ModuleNotFoundError as exc:
        raise UsageError(
            f"{exc.name} is not installed", hint="install it with: pip install 'mrag[serve]'"
        ) from None
    from mrag.model.embeddings import load_shared_model
    from mrag.server.limits import APIError

    folders = allowed_folders(args.allow_ingest)
    check_device(args.device)
    settings = store_settings(args)
    choice = model_for_store(args, settings)
    # stdout carries the protocol: everything for people goes to stderr.
    print(f"loading {choice.name} ...", file=sys.stderr)
    model = load_shared_model(
        choice.name, revision=choice.revision, device=args.device, dtype=args.dtype
    )
    try:
        run_stdio(model, settings, folders)
    except APIError as exc:  # the store cannot be opened (in use, another model's, ...)
        raise UsageError(exc.message) from None
    return EXIT_OK
