"""Finding the files to ingest, and what a source is called.

A source's identity is the file's real path: absolute, symlinks resolved, always with ``/``, so
the same file is the same source from any working directory. Point ids derive from it (with
modality and position), ``mrag delete`` and source filters match it. File names may hold any bytes;
the identity keeps them in a reversible, JSON-safe form (:func:`portable_name`).

What people see is shorter: :func:`display_path` is the path relative to the working directory
when the file is inside it, with control characters escaped so a name cannot break a line.

Walking a folder reads only regular files whose real path lies inside one of the folders given;
links out of them, devices, FIFOs, sockets and anything under ``/proc``, ``/sys`` or ``/dev`` are
skipped with a reason. A file named directly is the user's choice and is read wherever it is, as
long as it is a regular file.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from mrag.store.source_names import native_name, portable_name, source_key

#: Real paths under these are never ingested by walking a folder: they are the system, not files.
SYSTEM_ROOTS = ("/proc", "/sys", "/dev")

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def source_path(source: str) -> Path:
    """The file a source identity names."""
    return Path(native_name(source))


def escape_controls(text: str) -> str:
    """``text`` with control characters shown as escapes, so it stays on one line."""
    return _CONTROL.sub(lambda m: _SHORT_ESCAPES.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def display_path(source: str, cwd: str | os.PathLike[str] | None = None) -> str:
    """How a source is shown: relative to ``cwd`` when inside it, else absolute; one line."""
    base = portable_name(Path(os.path.realpath(cwd or os.getcwd())).as_posix()).rstrip("/")
    shown = source[len(base) + 1 :] if source.startswith(base + "/") else source
    return escape_controls(shown)


def legacy_source_name(path: Path, cwd: Path | None = None) -> str | None:
    """How mrag 0.1 named a source: relative to the working directory when inside it.

    Stores written by 0.1 hold these names; a run that finds one for a file replaces it. None
    for a name 0.1 could not store (undecodable bytes stopped its runs).
    """
    resolved = path.resolve()
    base = (cwd or Path.cwd()).resolve()
    try:
        name = resolved.relative_to(base).as_posix()
    except ValueError:
        name = resolved.as_posix()
    return None if _SURROGATE.search(name) else name


# -- walking folders ---------------------------------------------------------------------------


@cache
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob where ``*`` stays within one folder and ``**/`` spans any number of them."""
    out = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(out) + r"\Z", re.IGNORECASE | re.DOTALL)


def matches(relative: str, patterns: Iterable[str]) -> bool:
    """Whether a ``/``-separated relative path matches any of the glob ``patterns``."""
    return any(_glob_regex(pattern).match(relative) for pattern in patterns)


@dataclass(frozen=True)
class SourceFile:
    """A file to ingest: where to read it and its identity."""

    path: Path
    source: str


@dataclass
class FoundFiles:
    """What walking the paths given found: files to read, and files skipped with the reason."""

    files: list[SourceFile] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _inside(real: str, roots: Iterable[str]) -> bool:
    return any(real == root or real.startswith(root.rstrip("/") + "/") for root in roots)


def _why_not(file: Path, real: str, roots: Sequence[str]) -> str | None:
    """Why a file reached by walking a folder is not read, or None to read it."""
    try:
        mode = os.stat(file).st_mode
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc}): a broken link?"
    system = next((root for root in SYSTEM_ROOTS if _inside(real, [root])), None)
    if system is not None:
        return f"links to {portable_name(real)}, a system file under {system}"
    if not stat.S_ISREG(mode):
        return f"{_kind(mode)}, not a document"
    if not _inside(real, roots):
        return f"links to {portable_name(real)}, outside the folders given"
    return None


def walk_sources(
    paths: Sequence[str | os.PathLike[str]], *, include: Sequence[str], exclude: Sequence[str]
) -> FoundFiles:
    """Files named by ``paths``: files as given, folders walked recursively through the globs.

    Raises ``FileNotFoundError`` for a path that does not exist. Folder symlinks met while walking
    are not followed (no loops). Each file appears once, however many links lead to it; files are
    sorted by identity.
    """
    found = FoundFiles()
    chosen: dict[str, SourceFile] = {}
    skipped: dict[str, str] = {}
    roots = [os.path.realpath(p) for p in paths if os.path.isdir(p)]
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for folder, dirnames, filenames in os.walk(path):
                dirnames.sort()
                for filename in sorted(filenames):
                    file = Path(folder) / filename
                    relative = file.relative_to(path).as_posix()
                    if not matches(relative, include) or matches(relative, exclude):
                        continue
                    real = os.path.realpath(file)
                    reason = _why_not(file, real, roots)
                    if reason is None:
                        key = source_key(real)
                        chosen.setdefault(key, SourceFile(Path(real), key))
                    else:
                        skipped.setdefault(portable_name(os.path.abspath(file)), reason)
        elif path.exists():
            real = os.path.realpath(path)
            mode = os.stat(path).st_mode
            if stat.S_ISREG(mode):
                key = source_key(real)
                chosen.setdefault(key, SourceFile(Path(real), key))
            else:
                skipped.setdefault(portable_name(os.path.abspath(path)), f"{_kind(mode)}")
        else:
            raise FileNotFoundError(f"{portable_name(str(path))}: no such file or folder")
    found.files = [chosen[key] for key in sorted(chosen)]
    found.skipped = sorted((name, reason) for name, reason in skipped.items() if name not in chosen)
    return found


def find_files(
    paths: Sequence[str | Path], *, include: Sequence[str], exclude: Sequence[str]
) -> list[Path]:
    """The real paths of the files :func:`walk_sources` would read."""
    return [file.path for file in walk_sources(paths, include=include, exclude=exclude).files]


def file_hash(path: Path) -> str:
    """SHA-256 of the file's bytes: a source whose hash is unchanged is not ingested again."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
