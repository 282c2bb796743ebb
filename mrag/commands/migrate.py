"""``mrag migrate``: re-index a store of the old layout into the current one, without embedding."""

from __future__ import annotations

import argparse
import sys

from mrag.commands.common import EXIT_OK, UsageError, add_store_options, model_name, store_settings


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``migrate`` and its options."""
    parser = subparsers.add_parser(
        "migrate",
        help="re-index a store written by an older mrag (no re-embedding)",
        description=(
            "Re-index a store of layout 1 (qdrant-client local mode, one unnamed vector) into "
            "layout 2 (named text/image vectors, BM25 keywords, payload indexes), keeping every "
            "vector and the record of finished sources. An embedded store is re-indexed in its "
            "own folder; a server collection into --to-collection. Interrupted, it resumes."
        ),
    )
    add_store_options(parser)
    parser.add_argument(
        "--to-collection",
        default=None,
        help="target collection (default: the same name in a folder; NAME_v2 on a server)",
    )
    parser.add_argument(
        "--model",
        default=None,
        metavar="NAME_OR_DIR",
        help="the model the old vectors were made with, to record (env MRAG_MODEL; default "
        "jinaai/jina-clip-v1); nothing is loaded",
    )
    parser.add_argument("--revision", default=None, help="that model's revision")
    parser.add_argument(
        "--remove-old", action="store_true", help="delete the old collection once migrated"
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mrag.store import ModelRecord, Store, StoreSettings
    from mrag.store.edge import EdgeStore
    from mrag.store.server import LegacySource
    from mrag.store.transfer import migrate_legacy

    settings = store_settings(args)
    old = settings.collection
    if settings.url:
        new = args.to_collection or f"{old}_v2"
        if new == old:
            raise UsageError("on a server, migrate into another collection (--to-collection)")
    else:
        new = args.to_collection or old
        if not (Path(settings.path or ".") / "meta.json").is_file():
            raise UsageError(f"{settings.path}: no store of the old layout here")

    def progress(copied: int, total: int) -> None:
        print(f"\rre-indexed {copied:,}/{total:,} points", end="", file=sys.stderr, flush=True)

    legacy = LegacySource.connect(settings)
    try:
        if settings.url:
            target = Store.open(
                StoreSettings(url=settings.url, api_key=settings.api_key, collection=new)
            )
        else:
            target = EdgeStore(Path(str(settings.path)), new, migrating=True)
        with target:
            model = ModelRecord.of(model_name(args), args.revision, legacy.dimension())
            report = migrate_legacy(legacy, target, model, progress=progress)
            if args.remove_old:
                legacy.drop()
    finally:
        print(file=sys.stderr)  # ends the progress line, also before an error
        legacy.close()
    print(
        f"migrated {report.points:,} points and {report.sources:,} sources of {old!r} to layout 2 "
        f"in {target.describe()}"
        + ("" if args.remove_old else "; the old collection is kept (--remove-old deletes it)")
    )
    return EXIT_OK
