"""Ingestion against hostile and odd input: every file gets an outcome, nothing leaks or doubles.

Real files on a real store with the real model class (tiny random weights). The crafted PDF below
has a ToUnicode map that sends glyphs to a lone surrogate, NUL and BEL, which is what a broken
font map in a real document does to pypdf's text.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import zipfile
from pathlib import Path

import docgen
import pytest
from helpers import REPO, run_python

from mrag.extract.document import ExtractionError
from mrag.extract.formats.archive import ArchiveLimits, check_archive
from mrag.extract.read import parse
from mrag.ingestion.progress import ConsoleProgress, format_summary
from mrag.ingestion.run import ingest
from mrag.model import JinaClipModel
from mrag.store import Store, StoreError, StoreSettings

MARKER = "MRAG_SECRET_MARKER_7f3a9c"
BAD_BYTES = os.fsdecode(b"badbytes_\xff\xfe.txt")

_BROKEN_CMAP = b"""/CIDInit /ProcSet findresource begin 12 dict begin begincmap
/CMapName /Broken def 1 begincodespacerange <00> <FF> endcodespacerange
3 beginbfchar <41> <D800> <42> <0000> <43> <0007> endbfchar
endcmap CMapName currentdict /CMap defineresource pop end end"""


def broken_font_pdf(path: Path, pages: list[bytes]) -> Path:
    """A PDF whose glyphs A, B, C map to U+D800, NUL and BEL; each page shows its given text."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages))).encode()
    objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)))
    font = 3 + 2 * len(pages)
    for index, text in enumerate(pages):
        content = b"BT /F1 12 Tf 72 700 Td (" + text + b") Tj ET"
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>" % (font, 4 + 2 * index)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode %d 0 R >>" % (font + 1)
    )
    objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(_BROKEN_CMAP), _BROKEN_CMAP))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    path.write_bytes(bytes(out))
    return path


def zip_bomb_docx(path: Path, inflated_mib: int = 64) -> Path:
    """A real .docx plus one member of zeros that deflates about a thousandfold."""
    import docx

    document = docx.Document()
    document.add_paragraph("An ordinary paragraph.")
    document.save(str(path))
    with (
        zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("word/media/zeros.bin", "w") as member,
    ):
        block = b"\0" * (1 << 20)
        for _ in range(inflated_mib):
            member.write(block)
    return path


def _payloads(store_path: Path) -> list[dict]:
    with Store.open(StoreSettings(path=str(store_path))) as store:
        return [found.payload for found in store.iter_points()]


def _ingest(paths: list, store_path: Path, model: JinaClipModel, **kwargs):
    with Store.open(StoreSettings(path=str(store_path))) as store:
        return ingest(paths, store=store, model=model, **kwargs)


# -- extraction --------------------------------------------------------------------------------


def test_lone_surrogates_and_control_characters_in_page_text_are_cleaned(tmp_path: Path) -> None:
    path = broken_font_pdf(tmp_path / "broken-font.pdf", [b"AB CAB Plain words here."])
    document = parse(path)
    text = document.text
    assert "Plain words here." in text
    assert not re.search("[\ud800-\udfff\x00-\x08\x0b-\x1f]", text), repr(text)


def test_a_garbage_text_layer_counts_as_a_page_without_text(tmp_path: Path) -> None:
    path = broken_font_pdf(tmp_path / "garbage.pdf", [b"Readable page one.", b"ABCABCABC" * 8])
    document = parse(path)
    assert 2 in document.no_text_pages  # page 1 is short: whether it is OCR'd is the reader's call
    assert [page.text for page in document.pages] == ["Readable page one.", ""]


def test_a_file_named_directly_is_read_by_its_content_whatever_its_suffix(tmp_path: Path) -> None:
    path = broken_font_pdf(tmp_path / "crash-1234.fuzz", [b"Plain words here."])
    assert parse(path).text == "Plain words here."
    (tmp_path / "notes.xyz").write_text("no magic here")
    with pytest.raises(ExtractionError, match=r"unsupported file type \.xyz \(and no PDF"):
        parse(tmp_path / "notes.xyz")


@pytest.mark.parametrize(
    ("encoding", "guessed"),
    [
        ("utf-16", False),  # with a BOM
        ("utf-16-le", True),
        ("utf-16-be", True),
        ("utf-32", False),
        ("utf-8-sig", False),
    ],
)
def test_utf16_and_other_unicode_text_files(tmp_path: Path, encoding: str, guessed: bool) -> None:
    text = "Pump manual: the valve opens at 3 bar. Größe, café, naïve."
    path = tmp_path / "notes.txt"
    path.write_bytes(text.encode(encoding))
    document = parse(path)
    assert document.pages[0].text == text
    assert any("guessed" in problem for problem in document.problems) == guessed


def test_zip_bomb_docx_is_refused_with_the_numbers(tmp_path: Path) -> None:
    path = zip_bomb_docx(tmp_path / "bomb.docx")
    started = time.perf_counter()
    with pytest.raises(ExtractionError, match=r"zeros\.bin inflates [\d,]+x .* limit 200x"):
        parse(path)
    # Refused from the archive's header: inflating the member would take minutes.
    assert time.perf_counter() - started < 20
    small = ArchiveLimits(max_member_bytes=32 << 20, max_total_bytes=10**12, max_ratio=10**9)
    with pytest.raises(
        ExtractionError, match=r"zeros\.bin inflates to 64\.0 MiB \(limit 32\.0 MiB per member"
    ):
        check_archive(path, small)
    total = ArchiveLimits(max_total_bytes=1 << 20, max_ratio=10**9)
    with pytest.raises(ExtractionError, match=r"archive inflates to 64\.\d MiB \(limit 1\.0 MiB\)"):
        check_archive(path, total)


# -- whole runs --------------------------------------------------------------------------------


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A folder of everything that broke runs or leaked data before."""
    folder = tmp_path / "docs"
    outside = tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    (outside / "secret.md").write_text(f"# Secret\n\n{MARKER} from outside the folder")
    os.symlink("/proc/self/environ", folder / "env.txt")
    os.symlink("/etc/passwd", folder / "passwd.txt")
    os.symlink(outside / "secret.md", folder / "linked-out.md")
    os.symlink(folder / "notes.md", folder / "linked-in.md")  # inside: same source as notes.md
    os.mkfifo(folder / "pipe.txt")
    (folder / "notes.md").write_text("# Notes\n\nThe pump is wired to the red terminal.")
    (folder / BAD_BYTES).write_text("A file whose name is not UTF-8.")
    (folder / "new\nline.md").write_text("A file whose name holds a newline.")
    (folder / "empty.md").write_bytes(b"")
    (folder / "blank.md").write_text("   \n\n  ")
    (folder / "utf16.txt").write_bytes("Text saved by a Windows editor.".encode("utf-16-le"))
    broken_font_pdf(folder / "broken-font.pdf", [b"AB CAB Plain words here."])
    zip_bomb_docx(folder / "bomb.docx")
    return folder


def test_a_hostile_folder_gives_every_file_an_outcome_and_leaks_nothing(
    hostile: Path, tmp_path: Path, tiny_model: JinaClipModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MARKER, MARKER)  # the worker's /proc/self/environ holds it
    monkeypatch.chdir(tmp_path)
    log = io.StringIO()
    progress = ConsoleProgress(log, interactive=False)
    report = _ingest([Path("docs")], tmp_path / "store", tiny_model, events=progress)
    by_path = {outcome.path: outcome for outcome in report.files}
    statuses = {path: outcome.status for path, outcome in by_path.items()}
    assert statuses == {
        "docs/env.txt": "skipped",
        "docs/passwd.txt": "skipped",
        "docs/linked-out.md": "skipped",
        "docs/pipe.txt": "skipped",
        "docs/notes.md": "ingested",
        "docs/badbytes_\\xff\\xfe.txt": "ingested",
        "docs/new\\nline.md": "ingested",
        "docs/empty.md": "failed",
        "docs/blank.md": "no_content",
        "docs/utf16.txt": "ingested",
        "docs/broken-font.pdf": "ingested",
        "docs/bomb.docx": "failed",
    }
    assert "/proc" in by_path["docs/env.txt"].reason
    assert "outside the folders given" in by_path["docs/passwd.txt"].reason
    assert "FIFO" in by_path["docs/pipe.txt"].reason
    assert "zip bomb" in by_path["docs/bomb.docx"].reason
    assert by_path["docs/empty.md"].reason == "0-byte file"

    payloads = _payloads(tmp_path / "store")
    dumped = json.dumps(payloads, ensure_ascii=False)
    assert MARKER not in dumped and "root:x:0:0" not in dumped
    assert not re.search(r"[\x00\ud800-\udfff]", dumped)
    assert "Text saved by a Windows editor." in dumped
    names = {payload["metadata"]["file_name"] for payload in payloads}
    assert "badbytes_\\xff\\xfe.txt" in names and "new\nline.md" in names

    # The summary and the JSON report are printable and parseable as they are.
    json.loads(json.dumps(report.to_dict(), ensure_ascii=False).encode("utf-8"))
    lines = log.getvalue().splitlines()
    # Lines of their own: the count, what the run does, one per file, embedding progress.
    doing = ("hashing ", "reading ", "loading the model", "optimizing the store")
    starts = ("ingesting ", "[", "  embedded ", *doing)
    assert all(line.startswith(starts) for line in lines), lines
    files = [line for line in lines if line.startswith("[")]
    assert len(files) == len(report.files)  # one line per file: no name breaks a line
    assert all(line.count("docs/") == 1 for line in files)  # the path once
    summary = format_summary(report)
    assert "1 ingested (no content)" in summary and "4 skipped" in summary
    assert "docs/broken-font.pdf: pypdf" in summary or "failed: docs/bomb.docx" in summary

    again = _ingest([Path("docs")], tmp_path / "store", tiny_model)
    for outcome in again.files:
        expected = {"ingested": "unchanged", "no_content": "unchanged"}
        assert outcome.status == expected.get(statuses[outcome.path], statuses[outcome.path])


def test_the_same_folder_from_two_working_directories_is_stored_once(
    tmp_path: Path, tiny_model: JinaClipModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "project" / "docs"
    folder.mkdir(parents=True)
    docgen.markdown_file(folder / "notes.md")
    (folder / "other.txt").write_text("Another document about valves.")
    store = tmp_path / "store"
    monkeypatch.chdir(tmp_path / "project")
    first = _ingest([Path("docs")], store, tiny_model)
    count = len(_payloads(store))
    monkeypatch.chdir(folder)
    second = _ingest([Path(".")], store, tiny_model)
    assert [o.status for o in first.files] == ["ingested", "ingested"]
    assert [o.status for o in second.files] == ["unchanged", "unchanged"]
    assert [o.path for o in second.files] == ["notes.md", "other.txt"]  # short, from here
    assert len(_payloads(store)) == count


def test_a_store_of_the_old_cwd_relative_names_is_migrated(
    tmp_path: Path, tiny_model: JinaClipModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mrag.store import SourceRecord
    from mrag.store.payload import make_point, text_payload

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("The valve opens at three bar.")
    monkeypatch.chdir(tmp_path)
    vector = tiny_model.encode_text(["old"])[0]
    with Store.open(StoreSettings(path=str(tmp_path / "store"))) as store:
        store.ensure_collection(tiny_model.embedding_dim)
        old = make_point(
            "docs/notes.txt", "text", 0, vector, text_payload("old", {"source": "docs/notes.txt"})
        )
        store.replace_source(SourceRecord("docs/notes.txt", "x", 1, 1, 0, 1, "then"), [old])
    report = _ingest([Path("docs")], tmp_path / "store", tiny_model)
    assert [o.status for o in report.files] == ["ingested"]
    sources = {payload["metadata"]["source"] for payload in _payloads(tmp_path / "store")}
    assert sources == {(tmp_path / "docs" / "notes.txt").resolve().as_posix()}


class _FailsOnMarker(JinaClipModel):
    """The real model, except that embedding a text with BOOM in it raises."""

    def encode_ids(self, ids, **kwargs):
        marker = self.tokenize(["BOOM"])[0][1:-1]  # without [CLS] and [SEP]
        for sequence in ids:
            windows = (sequence[i : i + len(marker)] for i in range(len(sequence)))
            if any(window == marker for window in windows):
                raise RuntimeError("the text tower choked")
        return super().encode_ids(ids, **kwargs)


def test_one_source_failing_in_the_main_process_fails_alone_and_keeps_its_stored_version(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    model = _FailsOnMarker.from_pretrained(tiny_checkpoint)
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("a.md", "b.md", "c.md"):
        (folder / name).write_text(f"# {name}\n\nSome text about pumps in {name}.")
    _ingest([folder], tmp_path / "store", model)
    before = [p for p in _payloads(tmp_path / "store") if p["metadata"]["file_name"] == "b.md"]
    (folder / "b.md").write_text("# b\n\nNow with BOOM inside.")
    (folder / "a.md").write_text("# a\n\nChanged too, and fine.")
    report = _ingest([folder], tmp_path / "store", model)
    outcomes = {outcome.path.rsplit("/", 1)[-1]: outcome for outcome in report.files}
    assert outcomes["a.md"].status == "ingested" and outcomes["c.md"].status == "unchanged"
    assert outcomes["b.md"].status == "failed"
    assert outcomes["b.md"].reason == "RuntimeError: the text tower choked"
    after = [p for p in _payloads(tmp_path / "store") if p["metadata"]["file_name"] == "b.md"]
    assert after == before
    assert not report.ok


def test_a_store_of_another_dimension_stops_the_run_before_embedding(
    tmp_path: Path, tiny_model: JinaClipModel
) -> None:
    (tmp_path / "a.txt").write_text("hello")
    with Store.open(StoreSettings(path=str(tmp_path / "store"))) as store:
        store.ensure_collection(7)
    with pytest.raises(
        StoreError, match=r"built with an unnamed model \(7-d\), but this run uses .*192-d"
    ):
        _ingest([tmp_path / "a.txt"], tmp_path / "store", tiny_model)


# -- as users run it ---------------------------------------------------------------------------


def _readme_ingest_snippet() -> str:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    return next(block for block in blocks if "ingest(" in block and "from mrag import" in block)


def test_the_readme_ingest_snippet_runs_as_a_script_without_a_main_guard(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    (tmp_path / "docs").mkdir()
    docgen.markdown_file(tmp_path / "docs" / "notes.md")
    script = tmp_path / "script.py"
    script.write_text(_readme_ingest_snippet())
    assert "__main__" not in script.read_text()
    env = {"MRAG_MODEL": str(tiny_checkpoint), "MRAG_QDRANT_PATH": str(tmp_path / "store")}
    result = run_python(str(script), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "'ingested': 1" in result.stdout and "'failed': 0" in result.stdout, result.stdout


def test_cli_sources_by_path_or_name_from_any_folder_and_clear_failures(
    tmp_path: Path,
    tiny_checkpoint: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mrag.cli import main

    folder = tmp_path / "docs"
    folder.mkdir()
    docgen.markdown_file(folder / "pump.md")
    (folder / "valve.txt").write_text("The valve opens at three bar.")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("MRAG_MODEL", str(tiny_checkpoint))
    monkeypatch.setenv("MRAG_QDRANT_PATH", str(tmp_path / "store"))

    def cli(*args: str, cwd: Path = tmp_path) -> tuple[int, str, str]:
        monkeypatch.chdir(cwd)
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    # Nothing is created on disk when a run fails before writing; the device error is one line.
    code, _, err = cli("ingest", "docs", "--model", str(tmp_path / "none"))
    assert code == 2 and err.splitlines()[-1].startswith("error: ") and "Traceback" not in err
    code, _, err = cli("ingest", "docs", "--device", "cuda")
    assert code == 2 and err.startswith("error: --device cuda") and err.count("\n") == 1, err
    assert not (tmp_path / "store").exists()

    assert cli("ingest", "docs", "--json")[0] == 0
    code, out, _ = cli("ingest", str(folder), cwd=elsewhere)
    assert code == 0 and "0 ingested, 2 unchanged" in out, out

    code, out, err = cli("query", "valve", "--json", "--source", "valve.txt", cwd=elsewhere)
    assert code == 0, err
    assert {row["metadata"]["file_name"] for row in json.loads(out)} == {"valve.txt"}
    code, _, err = cli("query", "valve", "--source", "nothing.txt", cwd=elsewhere)
    assert code == 1 and "--source nothing.txt: no stored source" in err

    code, out, _ = cli("delete", "pump.md", cwd=elsewhere)
    assert code == 0 and out.startswith("deleted ") and "pump.md (" in out
    code, _, err = cli("delete", "pump.md", cwd=elsewhere)
    assert code == 1 and "no stored source has this path or file name" in err

    # A store held by another process: the same exit code from every command.
    holder = Store.open(StoreSettings(path=str(tmp_path / "store")))
    try:
        commands = (["ingest", "docs"], ["query", "valve"], ["stats"], ["delete", "x"])
        codes = {command[0]: cli(*command) for command in commands}
    finally:
        holder.close()
    assert {code for code, _, _ in codes.values()} == {2}, codes
    assert all("in use by another process" in err for _, _, err in codes.values())


@pytest.mark.parametrize("offline", [True, False])
def test_a_hub_id_without_the_hub_fails_fast_and_says_why(tmp_path: Path, offline: bool) -> None:
    code = (
        "import time, huggingface_hub\n"
        "from mrag.model.hub import resolve_checkpoint, CheckpointError\n"
        "started = time.perf_counter()\n"
        "try:\n"
        "    resolve_checkpoint('jinaai/jina-clip-v1')\n"
        "except CheckpointError as exc:\n"
        "    print(f'{time.perf_counter() - started:.3f}', exc)\n"
    )
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1" if offline else "0"}
    # Port 9 on loopback refuses at once, as an unreachable Hub does.
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    result = run_python("-c", code, cwd=tmp_path, env=env)
    seconds, message = result.stdout.split(" ", 1)
    # Well under one retry-with-backoff cycle of the Hub client, with room for a busy machine.
    assert float(seconds) < 8.0, result.stdout
    if offline:
        assert "offline mode is on (HF_HUB_OFFLINE=1)" in message
    else:
        assert "the Hub cannot be reached (127.0.0.1:" in message
