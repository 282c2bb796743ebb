"""``mrag optimize``: build the store's search index (HNSW) now."""

from __future__ import annotations

import argparse
import time

from mrag.commands.common import EXIT_OK, UsageError, add_store_options, store_settings


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``optimize`` and its options."""
    parser = subparsers.add_parser(
        "optimize",
        help="build the embedded store's HNSW index now",
        description=(
            "Build the HNSW index of the embedded store, so searches stop being exact scans. "
            "Ingestion does this at the end of a run once the store is large; a Qdrant server "
            "indexes by itself."
        ),
    )
    add_store_options(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from mrag.store import Store

    settings = store_settings(args)
    with Store.open(settings) as store:
        if not store.exists():
            raise UsageError(f"{settings.describe()}: nothing to optimize, the store is empty")
        started = time.perf_counter()
        changed = store.optimize()
    seconds = time.perf_counter() - started
    print(
        f"{'optimized' if changed else 'already optimal'}: {settings.describe()} ({seconds:.1f} s)"
    )
    return EXIT_OK
