"""``mrag delete SOURCE...``: remove sources and all their points from the store."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..commands.common import (
    EXIT_FAILURES,
    EXIT_OK,
    EXIT_USAGE,
    add_store_options,
    error,
    store_settings,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "delete",
        help="remove sources from the store",
        description="Remove sources (as `mrag stats` lists them) and all their points.",
    )
    parser.add_argument("sources", nargs="+", metavar="SOURCE")
    add_store_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..sources import source_name
    from ..store import Store, StoreError

    try:
        store = Store.open(store_settings(args))
    except StoreError as exc:
        error(str(exc))
        return EXIT_USAGE
    status = EXIT_OK
    with store:
        for given in args.sources:
            # Accept the stored name, or a path to the file that resolves to it.
            candidates = [given]
            if Path(given).exists():
                candidates.append(source_name(Path(given)))
            for source in dict.fromkeys(candidates):
                known = store.source_record(source) is not None
                if known or (store.exists() and store.point_ids_of(source)):
                    removed = store.delete_source(source)
                    print(f"deleted {source} ({removed} points)")
                    break
            else:
                error(f"{given}: no such source in the store")
                status = EXIT_FAILURES
    return status
