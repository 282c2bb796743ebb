"""Finding the files to ingest and naming them: real folders, links, FIFOs and odd names."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mrag.ingestion.sources import (
    display_path,
    file_hash,
    find_files,
    legacy_source_name,
    matches,
    source_path,
    walk_sources,
)
from mrag.store.source_names import file_name, match_sources, native_name, portable_name, source_key

BAD_BYTES = os.fsdecode(b"badbytes_\xff\xfe.txt")
#: Characters the escaping must get right, mixed into arbitrary text below.
AWKWARD = ["\\", "x", "u", "ff", "\udc80", "\udcff", "\ud800", "\udfff", "\x00", "\x07", "\n"]


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [BAD_BYTES, "plain.pdf", "back\\slash\\x41.txt", "\\\\", "x\udcff\\xff", "\ud800lone"],
)
def test_portable_names_are_json_safe_and_reversible(name: str) -> None:
    portable = portable_name(name)
    json.dumps(portable, ensure_ascii=False).encode("utf-8")  # encodable everywhere
    assert native_name(portable) == name


@given(st.lists(st.one_of(st.characters(), st.sampled_from(AWKWARD))).map("".join))
def test_any_text_survives_the_round_trip(text: str) -> None:
    portable = portable_name(text)
    portable.encode("utf-8")  # no lone surrogate is left
    assert native_name(portable) == text


@given(st.binary(min_size=1))
def test_any_file_name_bytes_survive_the_round_trip(raw: bytes) -> None:
    assert os.fsencode(native_name(portable_name(os.fsdecode(raw)))) == raw


def test_undecodable_bytes_read_as_their_byte_values() -> None:
    assert portable_name(BAD_BYTES) == "badbytes_\\xff\\xfe.txt"
    assert portable_name("a\\b\ud800") == "a\\\\b\\ud800"
    assert portable_name("plain name.pdf") == "plain name.pdf"  # the common case is untouched
    assert native_name("C:\\\\x41") == "C:\\x41"  # an escaped backslash is not an escape


def test_a_source_is_the_real_absolute_path_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "docs").mkdir()
    real = tmp_path / "docs" / "a.md"
    real.write_text("text")
    (tmp_path / "link.md").symlink_to(real)
    expected = Path(os.path.realpath(real)).as_posix()
    monkeypatch.chdir(tmp_path / "docs")
    assert source_key("a.md") == expected
    monkeypatch.chdir(tmp_path)
    assert source_key("docs/a.md") == source_key("link.md") == source_key(real) == expected
    assert file_name(expected) == "a.md"


def test_a_source_with_undecodable_bytes_names_its_file(tmp_path: Path) -> None:
    path = tmp_path / BAD_BYTES
    path.write_bytes(b"the bytes")
    source = source_key(path)
    assert "\\xff\\xfe" in source and json.dumps(source)
    assert source_path(source).read_bytes() == b"the bytes"
    assert legacy_source_name(path, tmp_path) is None  # 0.1 could not store this name


def test_legacy_names_are_relative_inside_the_folder(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    path = tmp_path / "docs" / "a.md"
    path.write_text("text")
    assert legacy_source_name(path, tmp_path) == "docs/a.md"
    assert legacy_source_name(path, tmp_path / "docs" / "elsewhere") == path.resolve().as_posix()


def test_display_paths_are_short_and_one_line(tmp_path: Path) -> None:
    source = source_key(tmp_path / "docs" / "a\nb.md")
    assert display_path(source, cwd=tmp_path) == "docs/a\\nb.md"
    assert display_path(source, cwd=tmp_path / "elsewhere") == source.replace("\n", "\\n")


def test_display_paths_escape_every_line_breaker(tmp_path: Path) -> None:
    base = source_key(tmp_path)
    source = f"{base}/a\tb\rc\x1bd\u2028e\x85f.md"
    shown = display_path(source, cwd=tmp_path)
    assert shown == "a\\tb\\rc\\x1bd\\x2028e\\x85f.md"
    assert len(shown.splitlines()) == 1
    # A folder whose name only starts like the working directory is not inside it.
    sibling = f"{base}-other/x.md"
    assert display_path(sibling, cwd=tmp_path) == sibling


# -- what a user types -------------------------------------------------------------------------


@pytest.fixture
def known(tmp_path: Path) -> dict[str, str]:
    """Stored sources: two files called a.pdf in different folders, one b.md."""
    names = {"docs_a": "docs/a.pdf", "other_a": "other/a.pdf", "docs_b": "docs/b.md"}
    keys = {}
    for label, relative in names.items():
        path = tmp_path / relative
        path.parent.mkdir(exist_ok=True)
        path.write_text(label)
        keys[label] = source_key(path)
    return keys


def test_a_typed_path_matches_its_source_from_the_working_directory(
    tmp_path: Path, known: dict[str, str]
) -> None:
    stored = list(known.values())
    assert match_sources("docs/a.pdf", stored, cwd=tmp_path) == [known["docs_a"]]
    assert match_sources("./other/../docs/a.pdf", stored, cwd=tmp_path) == [known["docs_a"]]
    assert match_sources("a.pdf", stored, cwd=tmp_path / "docs") == [known["docs_a"]]
    assert match_sources(str(tmp_path / "docs" / "b.md"), stored) == [known["docs_b"]]
    (tmp_path / "link.md").symlink_to(tmp_path / "docs" / "b.md")
    assert match_sources("link.md", stored, cwd=tmp_path) == [known["docs_b"]]


def test_a_bare_name_matches_every_file_of_that_name(tmp_path: Path, known: dict[str, str]) -> None:
    stored = list(known.values())
    assert sorted(match_sources("a.pdf", stored, cwd=tmp_path)) == sorted(
        [known["docs_a"], known["other_a"]]
    )
    assert match_sources("c.pdf", stored, cwd=tmp_path) == []
    assert match_sources("docs/c.pdf", stored, cwd=tmp_path) == []  # a path is not a bare name
    assert match_sources("..", stored, cwd=tmp_path / "docs") == []


def test_a_deleted_file_still_matches_its_source(tmp_path: Path, known: dict[str, str]) -> None:
    (tmp_path / "docs" / "a.pdf").unlink()
    assert match_sources("docs/a.pdf", list(known.values()), cwd=tmp_path) == [known["docs_a"]]


# -- globs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "pattern", "expected"),
    [
        ("a.pdf", "*.pdf", True),
        ("sub/a.pdf", "*.pdf", False),  # * stays within one folder
        ("sub/a.pdf", "**/*.pdf", True),
        ("a.pdf", "**/*.pdf", True),  # **/ also spans no folder at all
        ("deep/er/a.pdf", "deep/**/a.pdf", True),
        ("deep/a.pdf", "deep/**/a.pdf", True),
        ("any/thing/at/all", "**", True),
        ("A.PDF", "*.pdf", True),  # case does not matter
        ("ab.md", "a?.md", True),
        ("a/b.md", "a?b.md", False),  # ? is not a /
        ("a+b.txt", "a+b.txt", True),  # regex characters are literal
        ("aab.txt", "a+b.txt", False),
        ("a.pdf.bak", "*.pdf", False),  # the whole path must match
        ("line\nbreak.md", "*.md", True),
    ],
)
def test_globs(relative: str, pattern: str, expected: bool) -> None:
    assert matches(relative, [pattern]) is expected


def test_any_of_several_globs_matches() -> None:
    assert matches("x.md", ["*.pdf", "*.md"])
    assert not matches("x.md", [])


# -- walking folders ---------------------------------------------------------------------------

EVERYTHING = {"include": ["**"], "exclude": []}


def _write(path: Path, text: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_folder_is_walked_through_the_globs_in_identity_order(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    for relative in ["b.md", "a.pdf", "sub/c.md", "sub/skip/d.md", "e.xyz"]:
        _write(root / relative)
    found = walk_sources([root], include=["**/*.md", "**/*.pdf"], exclude=["**/skip/**"])
    expected = [root / "a.pdf", root / "b.md", root / "sub" / "c.md"]
    assert [file.path for file in found.files] == [Path(os.path.realpath(p)) for p in expected]
    assert [file.source for file in found.files] == [source_key(p) for p in expected]
    assert found.skipped == []
    assert find_files([root], include=["**/*.md", "**/*.pdf"], exclude=["**/skip/**"]) == [
        file.path for file in found.files
    ]


def test_links_inside_count_once_and_links_out_are_skipped_with_the_reason(
    tmp_path: Path,
) -> None:
    root = tmp_path / "docs"
    target = _write(root / "a.md")
    (root / "again.md").symlink_to(target)
    outside = _write(tmp_path / "private" / "secret.md")
    (root / "secret.md").symlink_to(outside)
    (root / "gone.md").symlink_to(tmp_path / "nowhere.md")
    found = walk_sources([root], **EVERYTHING)
    assert [file.source for file in found.files] == [source_key(target)]
    reasons = dict(found.skipped)
    assert "outside the folders given" in reasons[source_key(tmp_path) + "/docs/secret.md"]
    assert "a broken link?" in reasons[source_key(tmp_path) + "/docs/gone.md"]
    # Given as a folder too, the private folder's file is read.
    both = walk_sources([root, tmp_path / "private"], **EVERYTHING)
    assert {file.source for file in both.files} == {source_key(target), source_key(outside)}
    assert [name for name, _ in both.skipped] == [source_key(tmp_path) + "/docs/gone.md"]


def test_folder_links_are_not_followed_so_loops_end(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    _write(root / "sub" / "a.md")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    elsewhere = _write(tmp_path / "elsewhere" / "b.md")
    (root / "linked").symlink_to(elsewhere.parent, target_is_directory=True)
    found = walk_sources([root], **EVERYTHING)
    assert [file.path.name for file in found.files] == ["a.md"]


def test_system_files_fifos_and_devices_are_not_documents(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    _write(root / "real.md")
    os.mkfifo(root / "pipe.md")
    (root / "null.md").symlink_to("/dev/null")
    (root / "self.md").symlink_to("/proc/self/environ")
    found = walk_sources([root], **EVERYTHING)
    assert [file.path.name for file in found.files] == ["real.md"]
    reasons = {Path(name).name: reason for name, reason in found.skipped}
    assert reasons["pipe.md"] == "a FIFO, not a document"
    assert reasons["null.md"] == "links to /dev/null, a system file under /dev"
    assert reasons["self.md"].endswith("a system file under /proc")


def test_a_file_named_directly_is_read_wherever_it_is(tmp_path: Path) -> None:
    outside = _write(tmp_path / "private" / "note.md")
    link = tmp_path / "link.md"
    link.symlink_to(outside)
    os.mkfifo(tmp_path / "pipe.md")
    found = walk_sources([link, outside, tmp_path / "pipe.md"], **EVERYTHING)
    assert [file.source for file in found.files] == [source_key(outside)]  # once
    assert found.skipped == [(source_key(tmp_path) + "/pipe.md", "a FIFO")]
    with pytest.raises(FileNotFoundError, match=r"missing\.md: no such file or folder"):
        walk_sources([tmp_path / "missing.md"], **EVERYTHING)


def test_odd_names_are_found_and_named_portably(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    _write(root / BAD_BYTES)
    _write(root / "new\nline.md")
    found = walk_sources([root], **EVERYTHING)
    sources = sorted(file.source for file in found.files)
    assert sources == sorted([source_key(root / BAD_BYTES), source_key(root / "new\nline.md")])
    for file in found.files:
        json.dumps(file.source).encode("ascii")
        assert source_path(file.source).read_text() == "text"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_found_and_hashing_it_says_why(tmp_path: Path) -> None:
    locked = _write(tmp_path / "docs" / "locked.md")
    locked.chmod(0)
    try:
        found = walk_sources([tmp_path / "docs"], **EVERYTHING)
        assert [file.path for file in found.files] == [Path(os.path.realpath(locked))]
        with pytest.raises(PermissionError):
            file_hash(locked)
    finally:
        locked.chmod(0o600)


# -- content hashes ----------------------------------------------------------------------------


def test_file_hash_is_the_sha256_of_the_bytes_across_read_blocks(tmp_path: Path) -> None:
    data = os.urandom((5 << 20) // 2)  # two and a half read blocks
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    assert file_hash(path) == hashlib.sha256(data).hexdigest()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert file_hash(path) != hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert file_hash(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()
