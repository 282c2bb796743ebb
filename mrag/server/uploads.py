"""Files uploaded to the server: limits, safe names, and where they are kept.

An upload is kept at ``<folder>/<sanitised name>``. Its identity is its name: uploading the same
file again writes the same path with the same bytes, which the ingestion ledger reports as
"unchanged"; a new version under the same name replaces the old one in the store. File names
come from the client and are treated as hostile: only the last path component is kept, control
characters, separators and leading dots (hidden files) are dropped, and the result is refused
when nothing usable is left.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mrag.server.limits import invalid, too_large

#: Largest single uploaded file.
DEFAULT_MAX_FILE_BYTES = 200 * 1024 * 1024
#: Most files in one upload.
DEFAULT_MAX_FILES = 64
#: Largest upload, all its files together.
DEFAULT_MAX_TOTAL_BYTES = 1024 * 1024 * 1024
#: Multipart framing (boundaries, part headers) allowed on top of the files' bytes.
_FRAMING_BYTES = 64 * 1024
#: Longest kept file name, in characters (file systems allow 255 bytes).
_MAX_NAME_CHARS = 120
_UNSAFE = re.compile(r'[<>:"|?*\\/]')


@dataclass(frozen=True)
class UploadLimits:
    """What one ``POST /v1/documents`` may send.

    Attributes:
        max_file_bytes: size of one file.
        max_files: files in one request.
        max_total_bytes: all files of one request together.
    """

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_files: int = DEFAULT_MAX_FILES
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_files", "max_total_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    @property
    def max_body_bytes(self) -> int:
        """The request body allowed in: the files plus their multipart framing."""
        return self.max_total_bytes + _FRAMING_BYTES * (self.max_files + 1)

    def check(self, sizes: list[tuple[str, int]]) -> None:
        """413 naming the numbers when ``sizes`` ((name, bytes) per file) break a limit."""
        if len(sizes) > self.max_files:
            raise too_large(
                f"the upload holds {len(sizes)} files; at most {self.max_files} are accepted",
                param="files",
                code="too_many_files",
            )
        for name, size in sizes:
            if size > self.max_file_bytes:
                raise too_large(
                    f"{name} is {size:,} bytes; at most {self.max_file_bytes:,} per file",
                    param="files",
                    code="file_too_large",
                )
        total = sum(size for _, size in sizes)
        if total > self.max_total_bytes:
            raise too_large(
                f"the upload is {total:,} bytes; at most {self.max_total_bytes:,} in one request",
                param="files",
                code="upload_too_large",
            )


def safe_name(given: str | None) -> str:
    """A file name safe to create under the upload folder, from a client's name.

    Raises a 400 :class:`~mrag.server.limits.APIError` when nothing usable is left.
    """
    raw = given or ""
    # The last component of either separator, so "../../etc/passwd" and "C:\\x\\y" lose theirs.
    base = re.split(r"[\\/]", raw)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(c for c in base if not unicodedata.category(c).startswith("C"))
    base = _UNSAFE.sub("_", base).strip().lstrip(".").strip()
    if len(base) > _MAX_NAME_CHARS:
        stem, dot, suffix = base.rpartition(".")
        keep = _MAX_NAME_CHARS - len(suffix) - 1
        base = f"{stem[:keep]}.{suffix}" if dot and 0 < len(suffix) < 16 else base[:_MAX_NAME_CHARS]
    if not base or base in (".", ".."):
        raise invalid(f"the file name {raw[:80]!r} has no usable characters", param="files")
    return base


class UploadFolder:
    """The folder of a store that holds uploaded files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()

    def path_of(self, name: str) -> Path:
        """Where the file called ``name`` (already sanitised) is kept."""
        path = self.folder / name
        if path.parent != self.folder:  # safe_name leaves no separator; this keeps it so
            raise invalid(f"the file name {name!r} is not a plain name", param="files")
        return path

    def save(self, name: str, data: BinaryIO) -> Path:
        """Write ``data`` to ``name`` atomically (a reader never sees half a file)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path_of(name)
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".partial-")
        try:
            with os.fdopen(handle, "wb") as out:
                shutil.copyfileobj(data, out, 1024 * 1024)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def clean(self) -> None:
        """Remove half-written files left by a server that stopped in the middle of an upload."""
        if self.folder.is_dir():
            for partial in self.folder.glob(".partial-*"):
                partial.unlink(missing_ok=True)

    def holds(self, source: str) -> bool:
        """Whether stored ``source`` is a file of this folder."""
        return Path(source).parent == self.folder.resolve()

    def remove(self, source: str) -> None:
        """Delete the kept file of ``source`` when it is one of this folder's."""
        if self.holds(source):
            Path(source).unlink(missing_ok=True)
