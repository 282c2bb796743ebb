"""``mrag serve``: the OpenAI-compatible embeddings and search server."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from mrag.commands.common import (
    EXIT_OK,
    UsageError,
    add_model_options,
    add_store_options,
    check_device,
    model_for_store,
    store_settings,
)
from mrag.commands.mcp import add_allow_ingest, allowed_folders
from mrag.server import limits as defaults
from mrag.server import uploads

#: The request limits of ``serve``: (``ServerLimits`` field, type, default, help). Each is one
#: option, its flag the field's name (``max_inputs`` -> ``--max-inputs``).
LIMIT_OPTIONS: tuple[tuple[str, type, float, str], ...] = (
    ("max_inputs", int, defaults.DEFAULT_MAX_INPUTS, "inputs per embeddings request"),
    ("max_text_tokens", int, defaults.DEFAULT_MAX_TEXT_TOKENS, "tokens per text, longer refused"),
    ("max_image_bytes", int, defaults.DEFAULT_MAX_IMAGE_BYTES, "encoded bytes per image"),
    ("max_pixels", int, defaults.DEFAULT_MAX_PIXELS, "decoded pixels per image"),
    ("max_body_bytes", int, defaults.DEFAULT_MAX_BODY_BYTES, "bytes per request body"),
    ("url_timeout", float, defaults.DEFAULT_URL_TIMEOUT, "seconds per image download"),
)
#: The upload limits: (``UploadLimits`` field, flag, default, help).
UPLOAD_OPTIONS: tuple[tuple[str, str, int, str], ...] = (
    ("max_file_bytes", "--max-upload-bytes", uploads.DEFAULT_MAX_FILE_BYTES, "bytes per file"),
    ("max_files", "--max-upload-files", uploads.DEFAULT_MAX_FILES, "files per upload request"),
    (
        "max_total_bytes",
        "--max-upload-total-bytes",
        uploads.DEFAULT_MAX_TOTAL_BYTES,
        "bytes per upload request, all files together",
    ),
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``serve`` and its options."""
    parser = subparsers.add_parser(
        "serve",
        help="serve OpenAI-compatible embeddings and search over HTTP",
        description=(
            "Serve the search page at /, POST /v1/embeddings (OpenAI-compatible, texts and "
            "images), GET /v1/models, POST /v1/search, uploads at /v1/documents (ingested in "
            "the background), the MCP tools at /mcp and GET /healthz. Needs the 'serve' extra."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' on every endpoint but /healthz "
        "(env MRAG_API_KEY; prefer the variable, command lines are visible to other users)",
    )
    parser.add_argument(
        "--served-model-name",
        action="append",
        default=[],
        metavar="NAME",
        help="extra name the model answers to, reported in responses (repeatable)",
    )
    add_allow_ingest(parser)
    add_model_options(parser)
    add_store_options(parser)

    group = parser.add_argument_group("limits")
    group.add_argument(
        "--allow-urls",
        action="store_true",
        help="accept http(s) image URLs (never to private, loopback or link-local addresses)",
    )
    for field, kind, default, text in LIMIT_OPTIONS:
        flag = "--" + field.replace("_", "-")
        group.add_argument(flag, type=kind, default=default, help=f"{text} (default %(default)s)")

    for field, flag, default, text in UPLOAD_OPTIONS:
        group.add_argument(
            flag,
            dest=f"upload_{field}",
            type=int,
            default=default,
            help=f"{text} (default %(default)s)",
        )

    batching = parser.add_argument_group("batching")
    batching.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="most inputs per model batch (default %(default)s)",
    )
    batching.add_argument(
        "--batch-wait-ms",
        type=float,
        default=5.0,
        help="longest wait for a batch to fill, in ms (default %(default)s)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.set_defaults(run=run)
    return parser


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    """Load the model and serve until interrupted."""
    try:
        import uvicorn

        from mrag.server.app import ServerConfig, create_app, default_model_names
    except ModuleNotFoundError as exc:
        raise UsageError(
            f"{exc.name} is not installed",
            hint="install the server with: pip install 'mrag[serve]'",
        ) from None
    from mrag.model.embeddings import load_shared_model
    from mrag.server.limits import ServerLimits

    try:
        chosen = {field: getattr(args, field) for field, *_ in LIMIT_OPTIONS}
        limits = ServerLimits(allow_urls=args.allow_urls, **chosen)
        upload_limits = uploads.UploadLimits(
            **{field: getattr(args, f"upload_{field}") for field, *_ in UPLOAD_OPTIONS}
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    folders = allowed_folders(args.allow_ingest)
    if args.batch_size < 1 or args.batch_wait_ms < 0:
        raise UsageError("--batch-size must be at least 1 and --batch-wait-ms not negative")
    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    api_key = args.api_key or os.environ.get("MRAG_API_KEY") or None
    if api_key is None and not _is_loopback(args.host):
        print(
            f"warning: serving on {args.host} without an API key; anyone who can reach it can "
            "use it (set MRAG_API_KEY)",
            file=sys.stderr,
        )

    check_device(args.device)
    settings = store_settings(args)
    choice = model_for_store(args, settings)
    name = choice.name
    print(f"loading {name} ...", file=sys.stderr)
    model = load_shared_model(name, revision=choice.revision, device=args.device, dtype=args.dtype)
    print(f"computing in {model.dtype_choice} on {model.device}", file=sys.stderr)
    config = ServerConfig(
        model_names=default_model_names(name, args.served_model_name),
        limits=limits,
        api_key=api_key,
        max_batch_size=args.batch_size,
        max_wait=args.batch_wait_ms / 1000.0,
        store=settings,
        uploads=upload_limits,
        allow_ingest=folders,
        host=args.host,
    )
    app = create_app(model, config)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return EXIT_OK
