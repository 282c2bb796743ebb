"""Finding the files to ingest and naming them.

A source's name is its path as the user sees it: relative to the working directory when the file
is inside it, absolute otherwise, always with ``/``. That name is what results show, what
``mrag delete`` takes, and (with modality and position) what point ids derive from.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path


def source_name(path: Path, cwd: Path | None = None) -> str:
    """The stable name of the file at ``path`` (see the module docstring)."""
    resolved = path.resolve()
    base = (cwd or Path.cwd()).resolve()
    try:
        return resolved.relative_to(base).as_posix()
    except ValueError:
        return resolved.as_posix()


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
    return re.compile("".join(out) + r"\Z", re.IGNORECASE)


def matches(relative: str, patterns: Iterable[str]) -> bool:
    """Whether a ``/``-separated relative path matches any of the glob ``patterns``."""
    return any(_glob_regex(pattern).match(relative) for pattern in patterns)


def find_files(
    paths: Sequence[str | Path], *, include: Sequence[str], exclude: Sequence[str]
) -> list[Path]:
    """Files named by ``paths``: files as given, folders walked recursively through the globs.

    Raises ``FileNotFoundError`` for a path that does not exist. Folder symlinks are not followed
    (no loops, no escaping the folder); the result is sorted and free of duplicates.
    """
    found: dict[Path, None] = {}
    for given in paths:
        path = Path(given)
        if path.is_file():
            found[path] = None
        elif path.is_dir():
            for folder, dirnames, filenames in os.walk(path):
                dirnames.sort()
                for filename in sorted(filenames):
                    file = Path(folder) / filename
                    relative = file.relative_to(path).as_posix()
                    wanted = matches(relative, include) and not matches(relative, exclude)
                    if wanted and file.is_file():
                        found[file] = None
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return sorted(found, key=lambda p: p.as_posix())


def file_hash(path: Path) -> str:
    """SHA-256 of the file's bytes: a source whose hash is unchanged is not ingested again."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
