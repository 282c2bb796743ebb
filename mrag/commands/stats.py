"""``mrag stats``: what the store holds."""

from __future__ import annotations

import argparse
import json

from mrag.commands.common import EXIT_OK, add_store_options, store_settings


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``stats`` and its options."""
    parser = subparsers.add_parser(
        "stats",
        help="show what the store holds",
        description="Show what the store holds: sources, pages, text and image points, the model "
        "that built it, and whether its search index is complete. --sources lists every source.",
    )
    add_store_options(parser)
    parser.add_argument("--sources", action="store_true", help="list every source")
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from mrag.model.device import resolve_device
    from mrag.model.precision import auto_dtype
    from mrag.store import Store

    settings = store_settings(args)
    device = resolve_device(None)
    with Store.open(settings) as store:
        sources = store.sources()
        model = store.model
        info = {
            "store": settings.describe(),
            "collection_exists": store.exists(),
            "layout": store.layout().version if store.exists() else None,
            "model": model.describe() if model else None,
            "points": store.count(),
            "text_points": store.count("text"),
            "image_points": store.count("image"),
            "needs_optimize": store.needs_optimize(),
            "sources": len(sources),
            "pages": sum(record.pages for record in sources),
            # Where ingest and query compute by default here (device and dtype "auto").
            "device": device,
            "auto_dtype": str(auto_dtype(device)),
        }
        if args.sources:
            info["source_list"] = [record.__dict__ for record in sources]
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"store:   {info['store']}")
    print(f"compute: {info['auto_dtype']} on {info['device']}")
    if not info["collection_exists"]:
        print("empty: nothing ingested yet (run `mrag ingest PATH`)")
        return EXIT_OK
    print(f"sources: {info['sources']} ({info['pages']} pages)")
    print(f"points:  {info['points']} ({info['text_points']} text, {info['image_points']} image)")
    print(f"model:   {info['model']} (layout {info['layout']})")
    if info["needs_optimize"]:
        print("search:  partly exact; `mrag optimize` builds the HNSW index for the rest")
    for record in sources if args.sources else []:
        print(f"  {record.source}  {record.points} points  {record.ingested_at}")
    return EXIT_OK
