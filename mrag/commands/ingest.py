"""``mrag ingest PATH...``: put documents into the store."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import TYPE_CHECKING

from mrag.commands.common import (
    EXIT_FAILURES,
    EXIT_OK,
    NoInputError,
    UsageError,
    add_model_options,
    add_store_options,
    check_device,
)

if TYPE_CHECKING:
    from mrag.ingestion.events import Events
    from mrag.ingestion.pipeline import Pipeline
    from mrag.ingestion.report import IngestReport


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``ingest`` and its options."""
    parser = subparsers.add_parser(
        "ingest",
        help="ingest files and folders (PDF, images, text, Markdown, HTML, DOCX)",
        description="Split documents into text chunks and images, embed both with jina-clip-v1 "
        "and store them in Qdrant. Unchanged files are skipped; changed files are replaced, and "
        "so are files that this mrag would read differently (OCR installed, other chunking).",
    )
    # "*", not "+": in `ingest --ray docs/` argparse hands the folder to --ray (see _ray_paths).
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or folders to ingest")
    parser.add_argument("--pipeline", metavar="FILE", help="pipeline definition (TOML)")
    add_model_options(parser)
    add_store_options(parser)
    group = parser.add_argument_group("ingestion")
    group.add_argument("--batch-size", type=int, default=None, help="embedding batch size")
    group.add_argument("--max-tokens", type=int, default=None, help="chunk size limit in tokens")
    group.add_argument(
        "--overlap-tokens",
        type=int,
        default=None,
        help="tokens a chunk repeats from the one before (below --max-tokens)",
    )
    group.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="N",
        help='parser worker processes (a number or "auto"; default: the pipeline\'s '
        "[limits] workers)",
    )
    group.add_argument("--include", action="append", metavar="GLOB", help="only files matching")
    group.add_argument("--exclude", action="append", metavar="GLOB", help="skip files matching")
    group.add_argument(
        "--password", action="append", default=[], help="password to try on encrypted PDFs"
    )
    group.add_argument("--passwords-file", metavar="FILE", help="passwords to try, one a line")
    group.add_argument(
        "--prune",
        action="store_true",
        help="delete stored sources under the given folders whose files are gone",
    )
    group.add_argument(
        "--force",
        action="store_true",
        help="read every file named again, also those whose file and extraction are unchanged",
    )
    group.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on a Ray cluster (auto, HOST:PORT or ray://HOST:PORT; default: the pipeline's "
        "[ray] address, RAY_ADDRESS, else a Ray instance on this machine); needs mrag[ray]",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Ingest the paths; exit 1 when some files failed, 3 when no file matched the globs."""
    from mrag.model.openmp import spin_briefly

    # Here as well as in ingest(): --device is checked with torch before ingest() runs.
    spin_briefly()
    from mrag.ingestion.progress import ConsoleProgress, format_summary

    address = _ray_paths(args)
    if not args.paths:
        raise UsageError("give at least one PATH to ingest")
    pipeline = _pipeline(args)
    check_device(pipeline.model.device)
    progress = ConsoleProgress()
    try:
        report = _ingest(args, address, pipeline, progress)
    finally:
        progress.finish()
    if not report.files:
        raise NoInputError(
            f"no file to ingest in {', '.join(args.paths)}",
            hint=f"tried the globs {', '.join(pipeline.sources.include)}"
            + (f" minus {', '.join(pipeline.sources.exclude)}" if pipeline.sources.exclude else "")
            + "; widen them with --include GLOB",
        )
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_summary(report))
    return EXIT_OK if report.ok else EXIT_FAILURES


def _pipeline(args: argparse.Namespace) -> Pipeline:
    """The pipeline the command line describes: ``--pipeline`` (or the built-in one) overridden
    by the options given."""
    from mrag.ingestion.pipeline import Pipeline

    pipeline = Pipeline.from_toml(args.pipeline) if args.pipeline else Pipeline.default()
    return pipeline.override(
        model__name=args.model or os.environ.get("MRAG_MODEL") or None,
        model__revision=args.revision,
        model__device=args.device,
        model__dtype=args.dtype,
        model__batch_size=args.batch_size,
        chunking__max_tokens=args.max_tokens,
        chunking__overlap_tokens=args.overlap_tokens,
        limits__workers=args.workers,
        sources__include=tuple(args.include) if args.include else None,
        sources__exclude=tuple(args.exclude) if args.exclude else None,
        sources__passwords_file=args.passwords_file,
        store__path=args.qdrant_path,
        store__url=args.qdrant_url,
        store__collection=args.collection,
    )


def _workers(value: str) -> int | str:
    """``--workers``: "auto" or a whole number of at least one."""
    if value == "auto":
        return value
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f'{value!r} is neither "auto" nor a number of at least 1')
    return number


def _ingest(
    args: argparse.Namespace, address: str | None, pipeline: Pipeline, progress: Events
) -> IngestReport:
    from mrag.ingestion.run import ingest
    from mrag.model import CheckpointError, ConfigError

    try:
        if args.ray is not None:
            return _ingest_on_ray(args, address, pipeline, progress)
        return ingest(
            args.paths,
            pipeline=pipeline,
            passwords=args.password,
            prune=args.prune,
            force=args.force,
            events=progress,
        )
    except FileNotFoundError as exc:
        raise UsageError(str(exc).strip("'\"")) from None
    except (CheckpointError, ConfigError):
        raise  # reported by mrag.cli as "cannot load the model"
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _ray_paths(args: argparse.Namespace) -> str | None:
    """The Ray address of ``--ray [ADDRESS]``; a value that is no address is a path, put back."""
    if not args.ray:
        return None
    if _is_ray_address(args.ray):
        return args.ray
    args.paths.insert(0, args.ray)
    return None


def _is_ray_address(value: str) -> bool:
    return bool(re.match(r"(auto|local|ray://\S+|[\w.-]+:\d+)\Z", value))


def _ingest_on_ray(
    args: argparse.Namespace, address: str | None, pipeline: Pipeline, progress: Events
) -> IngestReport:
    try:
        from mrag.ingestion.ray import ingest_on_ray
    except ModuleNotFoundError as exc:
        if exc.name != "ray":
            raise
        raise UsageError("--ray needs Ray: pip install 'mrag[ray]'") from None
    return ingest_on_ray(
        args.paths,
        address=address,
        pipeline=pipeline,
        passwords=args.password,
        prune=args.prune,
        force=args.force,
        events=progress,
    )
