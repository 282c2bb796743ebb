"""``mrag query``: ask the store a question (or show it a picture) and print the ranked hits."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import shutil
import sys
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mrag.commands.common import (
    EXIT_FAILURES,
    EXIT_OK,
    UsageError,
    add_model_options,
    add_store_options,
    check_device,
    error,
    model_for,
    store_settings,
)
from mrag.images import load_image
from mrag.ingestion.sources import display_path, escape_controls

if TYPE_CHECKING:
    from langchain_core.documents import Document

    from mrag.store import Store

#: The fewest characters of text a hit shows, however narrow the terminal.
_MIN_SNIPPET = 16
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``query`` and its options."""
    parser = subparsers.add_parser(
        "query",
        help="search the store with a question or an image",
        description=(
            "Search passages and images together. Each modality is ranked on its own and the "
            "rankings are fused (reciprocal rank fusion by default), so images are not buried "
            "under passages by the text-image score gap."
        ),
    )
    parser.add_argument("query", nargs="?", default=None, help="the question (or use --image)")
    parser.add_argument(
        "--image", metavar="PATH", default=None, help="query with this picture instead of text"
    )
    parser.add_argument("-k", "--k", type=int, default=8, help="results to show (default 8)")
    results = parser.add_argument_group("ranking and filters")
    results.add_argument(
        "--modality", choices=["text", "image"], default=None, help="only passages or only images"
    )
    results.add_argument(
        "--element",
        choices=["text", "table", "figure", "page"],
        default=None,
        help="only passages (text), tables, figures or whole pages kept as pictures",
    )
    results.add_argument(
        "--source",
        action="append",
        default=None,
        metavar="SOURCE",
        help="only hits from this source: its path or its bare file name (repeatable)",
    )
    results.add_argument(
        "--page",
        action="append",
        type=int,
        default=None,
        metavar="N",
        help="only hits from this page (repeatable)",
    )
    results.add_argument(
        "--fusion",
        choices=["rrf", "quota", "score"],
        default="rrf",
        help="how modalities are merged: rrf (default), quota, or score "
        "(raw cosine; shows the modality gap)",
    )
    results.add_argument(
        "--image-share",
        type=float,
        default=0.5,
        metavar="SHARE",
        help="share of k given to images with --fusion quota (default 0.5)",
    )
    results.add_argument(
        "--no-hybrid",
        action="store_true",
        help="dense vectors only: no BM25 keyword leg for passages",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print the hits as JSON")
    output.add_argument(
        "--long", action="store_true", help="show each hit's full path, not just its file name"
    )
    output.add_argument(
        "--save-images",
        metavar="DIR",
        default=None,
        help="write the image hits into DIR as NN-<file stem>-p<page>.<ext> and list them",
    )
    add_model_options(parser)
    add_store_options(parser)
    parser.set_defaults(run=run)
    return parser


def _check_arguments(args: argparse.Namespace) -> None:
    if args.query is not None and args.image is not None:
        raise UsageError("give either a question or --image, not both")
    if args.image is None and (args.query is None or not args.query.strip()):
        raise UsageError("the question is empty", hint="give some text, or --image PATH")
    if args.k < 1:
        raise UsageError(f"-k must be at least 1, not {args.k}")
    if not 0.0 <= args.image_share <= 1.0:
        raise UsageError(f"--image-share must be between 0 and 1, not {args.image_share}")
    if args.image is not None and not Path(args.image).is_file():
        raise UsageError(f"{args.image}: no such image file")
    check_device(args.device)


def safe_file_name(name: str, fallback: str = "image") -> str:
    """``name`` reduced to letters, digits, ``.``, ``_`` and ``-``: no separators, no ``..``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    cleaned = re.sub(r"\.{2,}", ".", cleaned).strip("._-")
    return cleaned[:80] or fallback


def saved_name(document: Document, rank: int) -> str:
    """``NN-<file stem>-p<page>``: the name an image hit is saved under, before its extension."""
    stem = PurePosixPath(str(document.metadata.get("source") or "image")).stem
    page = document.metadata.get("page")
    return safe_file_name(f"{rank:02d}-{stem}" + (f"-p{page}" if page is not None else ""))


def save_image(document: Document, rank: int, folder: Path) -> Path | None:
    """Write an image hit's stored picture into ``folder``; the path written, or None."""
    encoded = document.metadata.get("image_base64")
    if not encoded:
        return None
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    extension = _EXTENSIONS.get(str(document.metadata.get("mime_type")), ".bin")
    root = folder.resolve()
    target = (root / f"{saved_name(document, rank)}{extension}").resolve()
    # Belt and braces: the name is already sanitised, but never write outside the folder.
    if target.parent != root:
        raise UsageError(f"refusing to write {target} outside {root}")
    target.write_bytes(data)
    return target


def element(metadata: dict[str, Any]) -> str:
    """What a hit is: ``passage``, ``figure``, ``table`` or ``page`` (a whole rendered page).

    The payload's ``element`` when the ingestion recorded one (its ``text`` reads ``passage``),
    else derived from the modality.
    """
    recorded = metadata.get("element")
    if recorded:
        return "passage" if recorded == "text" else str(recorded)
    return "figure" if metadata.get("modality") == "image" else "passage"


def location(metadata: dict[str, Any], long: bool = False) -> str:
    """``file name:page`` (the full path with ``long``), or just the name for a pageless hit."""
    source = str(metadata.get("source") or "-")
    shown = display_path(source) if long else escape_controls(PurePosixPath(source).name or source)
    page = metadata.get("page")
    return f"{shown}:{page}" if page is not None else shown


def snippet(document: Document) -> str:
    """The hit's text on one line; an image's size comes first."""
    text = escape_controls(" ".join(document.page_content.split()))
    metadata = document.metadata
    if metadata.get("modality") == "image" and metadata.get("width") and metadata.get("height"):
        text = f"{metadata['width']}x{metadata['height']} {text}".rstrip()
    return text


def clip(text: str, width: int, keep_end: bool = False) -> str:
    """``text`` cut to ``width`` characters with an ellipsis; ``keep_end`` cuts the start."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    return "…" + text[-(width - 1) :] if keep_end else text[: width - 1] + "…"


def format_table(documents: list[Document], width: int, long: bool = False) -> str:
    """The ranked hits, one line each, fitted to ``width`` columns.

    The location column is as wide as its longest entry (at most 60% of what the other columns
    leave, cut at the start so the file name and page stay visible); the snippet gets the rest.
    """
    rows = [
        (
            str(int(document.metadata.get("rank", 0))),
            location(document.metadata, long),
            element(document.metadata),
            f"{float(document.metadata.get('score', 0.0)):.4f}",
            snippet(document),
        )
        for document in documents
    ]
    header = ("#", "source:page", "element", "score", "snippet")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    fixed = widths[0] + widths[2] + widths[3] + 4 * 2
    free = width - fixed
    widths[1] = min(widths[1], max(12, min(free - _MIN_SNIPPET, free * 3 // 5)))
    rest = max(_MIN_SNIPPET, free - widths[1])
    lines = []
    for rank, where, kind, score, text in [header, *rows]:
        lines.append(
            f"{rank:>{widths[0]}}  {clip(where, widths[1], keep_end=True):<{widths[1]}}  "
            f"{kind:<{widths[2]}}  {score:>{widths[3]}}  {clip(text, rest)}".rstrip()
        )
    return "\n".join(lines)


def to_json(documents: list[Document], saved: dict[int, Path]) -> list[dict[str, Any]]:
    """The hits as JSON-ready dicts; pictures are referenced by saved path, not inlined."""
    rows = []
    for document in documents:
        metadata = {
            key: value
            for key, value in document.metadata.items()
            if key not in ("image_base64", "rank", "score")
        }
        rank = int(document.metadata.get("rank", 0))
        row: dict[str, Any] = {
            "rank": rank,
            "id": document.id,
            "modality": document.metadata.get("modality"),
            "element": element(document.metadata),
            "score": document.metadata.get("score"),
            "source": document.metadata.get("source"),
            "page": document.metadata.get("page"),
            "text": document.page_content,
            "metadata": metadata,
        }
        if rank in saved:
            row["image_file"] = str(saved[rank])
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> int:
    """Search and print; exit 2 when nothing could be searched (bad input, no store, a store of
    another model, no model), 1 when a ``--source`` matched nothing."""
    _check_arguments(args)
    settings = store_settings(args)
    if settings.path and not Path(settings.path).exists():
        raise UsageError(f"no store at {settings.path}", hint="run `mrag ingest PATH` first")
    # Deferred: importing torch and the model costs seconds that usage errors should not pay.
    from mrag.store import Store

    with Store.open(settings) as store:
        documents = _search(args, store)
        unmatched = [given for given in args.source or [] if not store.count_named(given)]
    for given in unmatched:
        error(
            f"--source {given}: no stored source has this path or file name",
            hint="`mrag stats --sources` lists them",
        )
    saved = _save_images(documents, Path(args.save_images)) if args.save_images else {}
    _print(args, documents, saved)
    return EXIT_FAILURES if unmatched else EXIT_OK


def _search(args: argparse.Namespace, store: Store) -> list[Document]:
    """The ranked hits for the question or picture of ``args``."""
    from mrag.model.embeddings import JinaClipEmbeddings
    from mrag.retrieval.retriever import MultimodalRetriever
    from mrag.store import ModelRecord

    if not store.exists():
        raise UsageError(
            f"collection {store.collection!r} does not exist in {store.location}",
            hint="run `mrag ingest PATH` first, or pick another --collection",
        )
    query_image = load_image(args.image) if args.image is not None else None
    choice = model_for(args, store.model)
    # Checked before the model loads: a mismatch would only rank noise.
    store.check_model(ModelRecord.of_checkpoint(choice.name, choice.revision))
    try:
        embeddings = JinaClipEmbeddings(
            choice.name, revision=choice.revision, device=args.device, dtype=args.dtype
        )
    except OSError as exc:
        raise UsageError(f"cannot load the model: {exc}") from None
    retriever = MultimodalRetriever(
        store=store,
        embeddings=embeddings,
        k=args.k,
        fusion=args.fusion,
        image_share=args.image_share,
        hybrid=not args.no_hybrid,
        filter={
            "modality": args.modality,
            "element": args.element,
            "source": args.source,
            "page": args.page,
        },
    )
    if query_image is not None:
        return retriever.search_by_image(query_image)
    return retriever.invoke(args.query.strip())


def _save_images(documents: list[Document], folder: Path) -> dict[int, Path]:
    """Write the image hits into ``folder``: the path of each saved one, by rank."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise UsageError(f"{folder}: cannot create the folder ({reason})") from None
    saved = {}
    for document in documents:
        rank = int(document.metadata.get("rank", 0))
        path = save_image(document, rank, folder)
        if path is not None:
            saved[rank] = path
    return saved


def _print(args: argparse.Namespace, documents: list[Document], saved: dict[int, Path]) -> None:
    if args.json:
        json.dump(to_json(documents, saved), sys.stdout, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write("\n")
        return
    if not documents:
        print("no results", file=sys.stderr)
        return
    print(format_table(documents, shutil.get_terminal_size().columns, long=args.long))
    if saved:
        print(f"\nsaved {len(saved)} image{'s' if len(saved) != 1 else ''}:")
        for rank in sorted(saved):
            print(f"  {saved[rank] if args.long else display_path(str(saved[rank]))}")
