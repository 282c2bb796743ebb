"""The exit-code table: each kind of error, through the real CLI, ends in its one code.

| code | meaning                                                                |
|------|------------------------------------------------------------------------|
| 0    | done                                                                   |
| 1    | done, but some inputs failed (a file, a source to delete, a --source)  |
| 2    | nothing done: bad usage, or the store / model / pipeline / picture /   |
|      | parser worker cannot be used (a store error is 2 in every command)     |
| 3    | nothing done: no file under the given paths matched the include globs  |
| 141  | the reader of the output went away (``mrag query --json | head``)     |
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mrag.cli import main

REPO = Path(__file__).resolve().parents[2]


def _dead_url() -> str:
    """The URL of a local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def store(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded store holding one text file, ingested through the CLI."""
    root = tmp_path_factory.mktemp("exit-codes")
    (root / "docs").mkdir()
    (root / "docs" / "pumps.txt").write_text("The pump moves water.\n\nThe valve holds it.\n")
    code = main(
        [
            "ingest",
            str(root / "docs"),
            "--model",
            str(tiny_checkpoint),
            "--qdrant-path",
            str(root / "qdrant"),
        ]
    )
    assert code == 0
    return root / "qdrant"


def _store(store: Path, model: Path) -> list[str]:
    return ["--qdrant-path", str(store), "--model", str(model)]


def _errors(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_done_is_0(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--qdrant-path", str(store)]) == 0
    assert "sources: 1" in capsys.readouterr().out


def test_a_failed_input_is_1(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["delete", "no-such-file.pdf", "--qdrant-path", str(store)]) == 1
    assert _errors(capsys) == [
        "error: no-such-file.pdf: no stored source has this path or file name",
        "hint: `mrag stats --sources` lists them",
    ]


@pytest.mark.parametrize(
    "command",
    [
        ["stats"],
        ["delete", "a.pdf"],
        ["optimize"],
        ["migrate", "--to-collection", "new"],
        ["query", "pumps", "--model", "{model}"],
        ["ingest", "{docs}", "--model", "{model}"],
    ],
)
def test_a_store_error_is_2_in_every_command(
    command: list[str],
    tiny_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("text")
    url = _dead_url()
    args = [part.format(docs=tmp_path / "docs", model=tiny_checkpoint) for part in command]
    assert main([*args, "--qdrant-url", url]) == 2
    lines = _errors(capsys)
    assert lines[-1].startswith("error: ") and url.split("//")[1] in lines[-1]


def test_export_to_a_dead_server_is_2(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = _dead_url()
    assert main(["export", "--qdrant-path", str(store), "--qdrant-url", url]) == 2
    assert any(line.startswith("error: ") and url in line for line in _errors(capsys))


def test_usage_errors_are_2_with_the_subcommands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["ingest", "docs", "--jsn"])
    assert stopped.value.code == 2
    lines = _errors(capsys)
    assert lines[0].startswith("usage: mrag ingest ")
    assert lines[-2:] == ["error: unrecognized arguments: --jsn", "hint: did you mean --json?"]

    with pytest.raises(SystemExit) as stopped:
        main(["query", "pumps", "--modality", "video"])
    assert stopped.value.code == 2
    lines = _errors(capsys)
    assert lines[0].startswith("usage: mrag query ")
    assert lines[-1].startswith("error: argument --modality: invalid choice: 'video'")

    with pytest.raises(SystemExit) as stopped:
        main(["qury", "pumps"])
    assert stopped.value.code == 2
    lines = _errors(capsys)
    assert lines[0].startswith("usage: mrag ") and lines[-1] == "hint: did you mean query?"

    assert main(["ingest"]) == 2
    assert _errors(capsys) == ["error: give at least one PATH to ingest"]
    assert main(["export", "--qdrant-path", "x"]) == 2
    assert _errors(capsys) == [
        "error: export needs the server to copy to",
        "hint: give --qdrant-url URL (or set QDRANT_URL)",
    ]


def test_a_model_that_cannot_load_is_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("text")
    (tmp_path / "model").mkdir()
    args = ["ingest", str(tmp_path / "docs"), "--qdrant-path", str(tmp_path / "q")]
    assert main([*args, "--model", str(tmp_path / "model")]) == 2
    assert _errors(capsys)[-1].startswith("error: cannot load the model: ")


def test_a_model_missing_offline_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("text")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("MRAG_MODEL", raising=False)
    assert main(["ingest", str(tmp_path / "docs"), "--qdrant-path", str(tmp_path / "q")]) == 2
    error, hint = _errors(capsys)[-2:]
    assert error.startswith("error: cannot load the model: jinaai/jina-clip-v1@")
    assert "offline mode is on" in error and "hf download" not in error
    assert hint.startswith("hint: download it where there is a connection (`hf download ")


def test_a_bad_pipeline_is_2(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pipeline.toml").write_text("[chunking]\nmax_tokens = 64\noverlap_tokens = 64\n")
    assert main(["ingest", str(tmp_path), "--pipeline", str(tmp_path / "pipeline.toml")]) == 2
    assert _errors(capsys) == [
        f"error: {tmp_path / 'pipeline.toml'}: chunking.overlap_tokens (64) must be smaller "
        "than chunking.max_tokens (64); lower it with --overlap-tokens or [chunking] overlap_tokens"
    ]
    assert main(["ingest", str(tmp_path), "--max-tokens", "32"]) == 2
    assert "overlap_tokens (64) must be smaller than chunking.max_tokens (32)" in _errors(capsys)[0]
    # Both on the command line: the pipeline is valid, so the run gets as far as the folder.
    empty = tmp_path / "empty"
    empty.mkdir()
    chunking = ["--max-tokens", "32", "--overlap-tokens", "8"]
    store = ["--model", str(tiny_checkpoint), "--qdrant-path", str(tmp_path / "store")]
    assert main(["ingest", str(empty), *chunking, *store]) == 3


def test_a_picture_that_cannot_be_read_is_2(
    store: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "photo.png").write_bytes(b"not a picture at all")
    args = ["query", "--image", str(tmp_path / "photo.png"), "--qdrant-path", str(store)]
    assert main([*args, "--model", str(tiny_checkpoint)]) == 2
    lines = _errors(capsys)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "photo.png" in lines[0]


def test_no_matching_file_is_3_and_names_the_globs(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "data.xyz").write_text("not a document mrag reads")
    args = ["ingest", str(tmp_path / "docs"), "--qdrant-path", str(tmp_path / "q")]
    assert main([*args, "--model", str(tiny_checkpoint), "--include", "*.md"]) == 3
    lines = _errors(capsys)
    assert lines[-2] == f"error: no file to ingest in {tmp_path / 'docs'}"
    assert (
        lines[-1]
        == "hint: tried the globs *.md minus "
        + ", ".join(["**/.*/**", "**/.*", "**/node_modules/**", "**/__pycache__/**"])
        + "; widen them with --include GLOB"
    )


def test_a_closed_pipe_is_141_without_a_traceback(store: Path, tiny_checkpoint: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written: every write fails
    try:
        process = subprocess.run(
            [
                sys.executable,
                "-m",
                "mrag",
                "query",
                "pumps",
                "--json",
                *_store(store, tiny_checkpoint),
            ],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=False,
        )
    finally:
        os.close(write)
    assert process.returncode == 141
    assert "Traceback" not in process.stderr and "BrokenPipeError" not in process.stderr


#: ``python -m mrag`` as an installed copy runs it: the package is found by a finder consulted
#: after the path search (setuptools' editable finder works so), with the working directory first
#: on sys.path.
_INSTALLED_RUN = """
import os, runpy, sys
from importlib.machinery import PathFinder

class Installed:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "mrag" or name.startswith("mrag."):
            return PathFinder.find_spec(name, [os.path.join({repo!r}, *name.split(".")[:-1])])
        return None

sys.meta_path.insert(sys.meta_path.index(PathFinder) + 1, Installed)
sys.argv = ["mrag", "--version"]
runpy.run_module("mrag", run_name="__main__", alter_sys=True)
"""


def test_python_m_mrag_beside_a_clone_says_why_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "mrag").mkdir()  # a clone's top folder: no __init__.py
    (tmp_path / "mrag" / "README.md").write_text("mrag\n")
    process = subprocess.run(
        [sys.executable, "-c", _INSTALLED_RUN.format(repo=str(REPO))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
        check=False,
    )
    assert process.returncode == 2
    assert process.stderr.splitlines() == [
        f"error: the folder {tmp_path / 'mrag'} hides the installed mrag package",
        "hint: run `mrag` (the command), or python -m mrag from another folder",
    ]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--max-inputs", "0", "max_inputs must be at least 1"),
        ("--max-text-tokens", "0", "max_text_tokens"),
        ("--max-image-bytes", "0", "max_image_bytes"),
        ("--max-pixels", "0", "max_pixels"),
        ("--max-body-bytes", "0", "max_body_bytes"),
        ("--url-timeout", "-1", "url_timeout must be positive"),
    ],
)
def test_each_serve_limit_reaches_the_server_limits(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Refused by ServerLimits itself, before any model loads: the option reached its field.
    assert main(["serve", flag, value]) == 2
    lines = _errors(capsys)
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
