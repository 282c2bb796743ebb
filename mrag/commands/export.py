"""``mrag export --qdrant-url URL``: move the embedded store to a Qdrant server, vectors and all."""

from __future__ import annotations

import argparse
import sys

from mrag.commands.common import EXIT_OK, UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``export`` and its options."""
    parser = subparsers.add_parser(
        "export",
        help="copy the embedded store to a Qdrant server (no re-embedding)",
        description=(
            "Copy every point of the embedded store, with its vectors, and the record of "
            "finished sources to a collection on a Qdrant server or cluster. Nothing is embedded "
            "again. Interrupted, it resumes where it stopped when run again."
        ),
    )
    parser.add_argument(
        "--qdrant-path",
        metavar="DIR",
        default=None,
        help="the embedded store to copy (env MRAG_QDRANT_PATH; default ./.mrag/qdrant)",
    )
    parser.add_argument(
        "--qdrant-url", metavar="URL", default=None, help="the server to copy to (env QDRANT_URL)"
    )
    parser.add_argument("--api-key", default=None, help="the server's API key (env QDRANT_API_KEY)")
    parser.add_argument(
        "--collection", default=None, help="collection to copy (env MRAG_COLLECTION; default mrag)"
    )
    parser.add_argument(
        "--to-collection", default=None, help="collection on the server (default: the same name)"
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import os

    from mrag.store import DEFAULT_COLLECTION, DEFAULT_QDRANT_PATH, Store, StoreSettings
    from mrag.store.transfer import export_store

    url = args.qdrant_url or os.environ.get("QDRANT_URL")
    if not url:
        raise UsageError(
            "export needs the server to copy to", hint="give --qdrant-url URL (or set QDRANT_URL)"
        )
    local = StoreSettings(
        path=args.qdrant_path or os.environ.get("MRAG_QDRANT_PATH") or str(DEFAULT_QDRANT_PATH),
        collection=args.collection or os.environ.get("MRAG_COLLECTION") or DEFAULT_COLLECTION,
    )
    remote = StoreSettings(
        url=url,
        api_key=args.api_key or os.environ.get("QDRANT_API_KEY"),
        collection=args.to_collection or local.collection,
    )

    def progress(copied: int, total: int) -> None:
        print(f"\rexported {copied:,}/{total:,} points", end="", file=sys.stderr, flush=True)

    try:
        with Store.open(local) as source, Store.open(remote) as target:
            report = export_store(source, target, progress=progress)
    finally:
        print(file=sys.stderr)  # ends the progress line, also before an error
    resumed = f", resumed after {report.resumed_from:,}" if report.resumed_from else ""
    print(
        f"exported {report.points:,} points and {report.sources:,} sources to "
        f"{remote.describe()}{resumed}"
    )
    return EXIT_OK
