"""Limits for zip-based formats (DOCX), checked on the archive's directory before parsing.

A zip bomb is small on disk and huge once inflated: a 2 MB DOCX can expand to gigabytes of XML.
The central directory states every member's compressed and uncompressed size, and Python's
``zipfile`` never inflates a member past its stated size (a member that lies fails its CRC check),
so checking the directory bounds what parsing can allocate. XML inside is parsed by lxml with
entity resolution off (python-docx's parser), so entity-expansion bombs stay unexpanded.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from mrag.extract.document import ExtractionError

_MIB = 1024 * 1024


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps on a zip archive's inflated size.

    ``max_ratio`` applies to members of at least ``ratio_floor_bytes`` inflated: tiny members of
    repetitive XML compress far better than that without harm.
    """

    max_total_bytes: int = 1024 * _MIB
    max_member_bytes: int = 256 * _MIB
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 1 * _MIB
    max_members: int = 10_000


DEFAULT_ARCHIVE_LIMITS = ArchiveLimits()


def _mib(size: int) -> str:
    if size < _MIB:
        return f"{size / 1024:,.1f} KiB"
    return f"{size / _MIB:,.1f} MiB"


def check_archive(path: Path, limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS) -> None:
    """Raise :class:`ExtractionError` if the zip at ``path`` would inflate past ``limits``."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ExtractionError(f"{path}: not a zip archive / broken file ({exc})") from None
    if len(members) > limits.max_members:
        raise ExtractionError(
            f"{path}: refused: {len(members):,} archive members (limit {limits.max_members:,})"
        )
    total = 0
    for member in members:
        size = member.file_size
        total += size
        if size > limits.max_member_bytes:
            raise ExtractionError(
                f"{path}: refused: member {member.filename} inflates to {_mib(size)} "
                f"(limit {_mib(limits.max_member_bytes)} per member)"
            )
        if size >= limits.ratio_floor_bytes:
            ratio = size / max(member.compress_size, 1)
            if ratio > limits.max_ratio:
                raise ExtractionError(
                    f"{path}: refused: member {member.filename} inflates {ratio:,.0f}x "
                    f"({_mib(member.compress_size)} to {_mib(size)}; limit {limits.max_ratio:g}x), "
                    "a zip bomb?"
                )
    if total > limits.max_total_bytes:
        raise ExtractionError(
            f"{path}: refused: the archive inflates to {_mib(total)} "
            f"(limit {_mib(limits.max_total_bytes)})"
        )
