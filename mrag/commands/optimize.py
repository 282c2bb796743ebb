"""``mrag optimize``: build the store's search index (HNSW) now."""

from __future__ import annotations

import argparse
import time

from mrag.commands.common import EXIT_FAILURES, EXIT_OK, add_store_options, error, store_settings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
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


def run(args: argparse.Namespace) -> int:
    from mrag.store import Store, StoreError

    settings = store_settings(args)
    try:
        with Store.open(settings) as store:
            if not store.exists():
                error(f"{settings.describe()}: nothing to optimize, the store is empty")
                return EXIT_FAILURES
            started = time.perf_counter()
            changed = store.optimize()
    except StoreError as exc:
        error(str(exc))
        return EXIT_FAILURES
    seconds = time.perf_counter() - started
    print(
        f"{'optimized' if changed else 'already optimal'}: {settings.describe()} ({seconds:.1f} s)"
    )
    return EXIT_OK
