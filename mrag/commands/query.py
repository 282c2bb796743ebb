"""``mrag query``: ask the store a question (or show it a picture) and print the ranked hits."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mrag.images import ImageError, load_image
from mrag.model import CheckpointError, ConfigError

if TYPE_CHECKING:
    from langchain_core.documents import Document
from mrag.commands.common import (
    EXIT_FAILURES,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_model_options,
    add_store_options,
    check_device,
    error,
    model_for,
    store_settings,
)

_SNIPPET_WIDTH = 64
_SOURCE_WIDTH = 32
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
        "--source",
        action="append",
        default=None,
        metavar="SOURCE",
        help="only hits from this source (repeatable)",
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
        "--save-images", metavar="DIR", default=None, help="write the image hits into DIR"
    )
    add_model_options(parser)
    add_store_options(parser)
    parser.set_defaults(run=run)
    return parser


def _check_arguments(args: argparse.Namespace) -> None:
    if args.query is not None and args.image is not None:
        raise UsageError("give either a question or --image, not both")
    if args.image is None and (args.query is None or not args.query.strip()):
        raise UsageError("the question is empty; give some text or --image PATH")
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


def save_image(document: Document, rank: int, folder: Path) -> Path | None:
    """Write an image hit's stored picture into ``folder``; the path written, or None."""
    metadata = document.metadata
    encoded = metadata.get("image_base64")
    if not encoded:
        return None
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    extension = _EXTENSIONS.get(str(metadata.get("mime_type")), ".bin")
    source = Path(str(metadata.get("source") or "image")).name
    page = metadata.get("page")
    stem = safe_file_name(f"{rank:02d}-{source}" + (f"-p{page}" if page is not None else ""))
    root = folder.resolve()
    target = (root / f"{stem}{extension}").resolve()
    # Belt and braces: the name is already sanitised, but never write outside the folder.
    if target.parent != root:
        raise UsageError(f"refusing to write {target} outside {root}")
    target.write_bytes(data)
    return target


def _location(document: Document) -> str:
    source = str(document.metadata.get("source") or "-")
    page = document.metadata.get("page")
    return f"{source}:{page}" if page is not None else source


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _snippet(document: Document) -> str:
    text = document.page_content
    if document.metadata.get("modality") == "image":
        label = "image"
        if document.metadata.get("width") and document.metadata.get("height"):
            label += f" {document.metadata['width']}x{document.metadata['height']}"
        text = f"[{label}] {text}"
    return text


def format_table(documents: list[Document], saved: dict[int, Path]) -> str:
    """The ranked hits as a fixed-width table."""
    header = f"{'rank':>4}  {'modality':<8}  {'score':>7}  {'source:page':<{_SOURCE_WIDTH}}"
    lines = [f"{header}  snippet"]
    for document in documents:
        rank = int(document.metadata.get("rank", 0))
        snippet = _snippet(document)
        if rank in saved:
            snippet = f"{snippet} -> {saved[rank].name}"
        lines.append(
            f"{rank:>4}  {document.metadata.get('modality', '?'):<8}  "
            f"{float(document.metadata.get('score', 0.0)):>7.4f}  "
            f"{_clip(_location(document), _SOURCE_WIDTH):<{_SOURCE_WIDTH}}  "
            f"{_clip(snippet, _SNIPPET_WIDTH)}"
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
        raise UsageError(f"no store at {settings.path}; run 'mrag ingest' first")
    filters: dict[str, Any] = {"modality": args.modality, "source": args.source, "page": args.page}

    # Deferred: importing torch and the model costs seconds that usage errors should not pay.
    from mrag.model.embeddings import JinaClipEmbeddings
    from mrag.retrieval.retriever import MultimodalRetriever
    from mrag.store import ModelRecord, Store, StoreError

    try:
        store = Store.open(settings)
    except StoreError as exc:
        error(str(exc))
        return EXIT_USAGE
    with store:
        if not store.exists():
            raise UsageError(
                f"collection {settings.collection!r} does not exist in {store.location}; "
                "run 'mrag ingest' first or pick another --collection"
            )
        query_image = None
        if args.image is not None:
            try:
                query_image = load_image(args.image)
            except ImageError as exc:
                raise UsageError(str(exc)) from None
        try:
            # Checked before the model loads: a mismatch would only rank noise.
            choice = model_for(args, store.model)
            store.check_model(ModelRecord.of_checkpoint(choice.name, choice.revision))
            embeddings = JinaClipEmbeddings(
                choice.name, revision=choice.revision, device=args.device, dtype=args.dtype
            )
        except StoreError as exc:
            error(str(exc))
            return EXIT_USAGE
        except (CheckpointError, ConfigError, OSError) as exc:
            error(f"cannot load the model: {exc}")
            return EXIT_USAGE
        retriever = MultimodalRetriever(
            store=store,
            embeddings=embeddings,
            k=args.k,
            fusion=args.fusion,
            image_share=args.image_share,
            hybrid=not args.no_hybrid,
            filter=filters,
        )
        if query_image is not None:
            documents = retriever.search_by_image(query_image)
        else:
            documents = retriever.invoke(args.query.strip())
        unmatched = [given for given in args.source or [] if not store.count_named(given)]
    for given in unmatched:
        error(
            f"--source {given}: no stored source has this path or file name "
            "(`mrag stats --sources` lists them)"
        )

    saved: dict[int, Path] = {}
    if args.save_images:
        folder = Path(args.save_images)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or exc
            raise UsageError(f"{folder}: cannot create the folder ({reason})") from None
        for document in documents:
            rank = int(document.metadata.get("rank", 0))
            path = save_image(document, rank, folder)
            if path is not None:
                saved[rank] = path

    if args.json:
        json.dump(to_json(documents, saved), sys.stdout, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write("\n")
    elif documents:
        print(format_table(documents, saved))
    else:
        print("no results", file=sys.stderr)
    return EXIT_FAILURES if unmatched else EXIT_OK
