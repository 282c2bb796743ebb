"""``mrag delete SOURCE...``: remove sources and all their points from the store."""

from __future__ import annotations

import argparse

from mrag.commands.common import (
    EXIT_FAILURES,
    EXIT_OK,
    add_store_options,
    error,
    store_settings,
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``delete`` and its options."""
    parser = subparsers.add_parser(
        "delete",
        help="remove sources from the store",
        description="Remove sources and all their points. A source is named by its path (as "
        "typed, from any folder, even once the file is gone) or by its bare file name.",
    )
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="a stored source: its path, or its bare file name when that is unique "
        "(`mrag stats --sources` lists them)",
    )
    add_store_options(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from mrag.ingestion.sources import display_path
    from mrag.store import Store
    from mrag.store.source_names import match_sources, source_candidates

    store = Store.open(store_settings(args))
    status = EXIT_OK
    with store:
        known = [record.source for record in store.sources()]
        for given in args.sources:
            found = match_sources(given, known)
            if not found and store.exists():
                # Points of a source whose run was killed before its ledger entry was written.
                found = [c for c in source_candidates(given) if store.point_ids_of(c)][:1]
            if len(found) > 1:
                shown = ", ".join(display_path(source) for source in found)
                error(
                    f"{given}: {len(found)} stored sources have this file name ({shown})",
                    hint="give the path of the one to delete",
                )
                status = EXIT_FAILURES
                continue
            if not found:
                error(
                    f"{given}: no stored source has this path or file name",
                    hint="`mrag stats --sources` lists them",
                )
                status = EXIT_FAILURES
                continue
            removed = store.delete_source(found[0])
            print(f"deleted {display_path(found[0])} ({removed} points)")
    return status
