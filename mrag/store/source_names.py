"""What a source is called: its identity in the store, and matching what a user types to it.

A source's identity is the file's real path: absolute, symlinks resolved, always with ``/``, so
the same file is the same source from any working directory. Point ids derive from it (with
modality and position); ``mrag delete`` and source filters match it, by the path as typed or by
a bare file name. File names may hold any bytes; the identity keeps them in a reversible,
JSON-safe form (:func:`portable_name`).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

_ESCAPED = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})")
_NEEDS_ESCAPE = re.compile("[\\\\\ud800-\udfff]")


def portable_name(text: str) -> str:
    """A path string as JSON-safe text, reversibly (see :func:`native_name`).

    Python hands undecodable bytes of a file name over as lone surrogates (``surrogateescape``);
    they cannot be encoded, stored or sent as JSON. Each becomes ``\\xNN`` (the original byte), any
    other lone surrogate ``\\uNNNN``, and a backslash is doubled so the mapping can be undone.
    """
    if not _NEEDS_ESCAPE.search(text):
        return text
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif "\udc80" <= char <= "\udcff":
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        elif "\ud800" <= char <= "\udfff":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


def native_name(name: str) -> str:
    """The path string (as ``os`` functions take it) that :func:`portable_name` made ``name`` of."""
    if "\\" not in name:
        return name

    def undo(match: re.Match[str]) -> str:
        token = match.group(1)
        if token == "\\":
            return "\\"
        if token[0] == "x":
            return chr(0xDC00 + int(token[1:], 16))
        return chr(int(token[1:], 16))

    return _ESCAPED.sub(undo, name)


def source_key(path: str | os.PathLike[str]) -> str:
    """The identity of the file at ``path``: its real path, absolute, portable (see above)."""
    return portable_name(Path(os.path.realpath(path)).as_posix())


def file_name(source: str) -> str:
    """The bare file name of a source (stored in each point as ``metadata.file_name``)."""
    return PurePosixPath(source).name


def source_candidates(given: str, cwd: str | os.PathLike[str] | None = None) -> list[str]:
    """Stored identities a typed source may mean: the path resolved from ``cwd``, and as typed.

    A bare file name (no ``/``) also matches every source with that file name; see
    :func:`is_bare_name` and :func:`match_sources`.
    """
    typed = portable_name(given)
    absolute = os.path.normpath(os.path.join(cwd or os.getcwd(), os.path.expanduser(given)))
    candidates = [portable_name(Path(absolute).as_posix()), typed]
    # A NUL byte or a loop of links names no file; the lexical candidates still stand.
    with contextlib.suppress(OSError, ValueError):
        candidates.insert(0, source_key(absolute))
    return list(dict.fromkeys(candidates))


def is_bare_name(given: str) -> bool:
    """Whether a typed source is just a file name, to be matched against ``file_name``."""
    return bool(given) and "/" not in given and given not in (".", "..")


def match_sources(
    given: str, known: Iterable[str], cwd: str | os.PathLike[str] | None = None
) -> list[str]:
    """The stored sources among ``known`` that a typed path or bare file name means."""
    known = list(known)
    candidates = set(source_candidates(given, cwd))
    exact = [source for source in known if source in candidates]
    if exact or not is_bare_name(given):
        return exact
    name = portable_name(given)
    return [source for source in known if file_name(source) == name]
