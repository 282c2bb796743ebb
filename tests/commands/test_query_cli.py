"""``mrag query`` end to end: the tiny checkpoint, a local Qdrant folder, real output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docgen
import pytest
from PIL import Image

from mrag.cli import main
from mrag.commands.query import safe_file_name
from mrag.model import JinaClipModel
from mrag.model.embeddings import JinaClipEmbeddings
from mrag.store import ModelRecord, Store, StoreSettings
from mrag.store.payload import image_payload, make_point, text_payload

DEEP = "/home/me/work/documents/pdf/federal-reserve-quarterly-report.pdf"
TEXTS = [
    ("manual.pdf", 1, "the pump wiring is shown in the figure"),
    ("manual.pdf", 2, "the valve opens at three bar of pressure"),
    ("notes.txt", 1, "coffee cup on the table near the window"),
    # Deep in a folder, with line breaks: the table shows its file name and one line of text.
    (DEEP, 9, "quarterly report\non interest\n\nrates and inflation"),
]


@pytest.fixture(scope="module")
def store_dir(
    tiny_model: JinaClipModel, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("query-cli")
    embeddings = JinaClipEmbeddings(tiny_checkpoint, model=tiny_model)
    store = Store.open(StoreSettings(path=str(root / "qdrant"), collection="docs"))
    store.ensure_collection(ModelRecord.of(tiny_checkpoint, None, embeddings.dimension))
    vectors = embeddings.embed_documents([text for _, _, text in TEXTS])
    points = [
        make_point(
            source, "text", page, vector, text_payload(text, {"source": source, "page": page})
        )
        for (source, page, text), vector in zip(TEXTS, vectors, strict=True)
    ]
    images = [docgen.marked("red", (90, 60), 0), docgen.marked("blue", (90, 60), 1)]
    # A hostile source name: saved files must still land inside the chosen folder.
    sources = ["manual.pdf", "../../etc/evil name?.png"]
    for i, (image, vector) in enumerate(zip(images, embeddings.embed_image(images), strict=True)):
        payload = image_payload(
            f"figure {i}: {('red', 'blue')[i]} pump", image, {"source": sources[i], "page": 3 + i}
        )
        points.append(make_point(sources[i], "image", i, vector, payload))
    store.upsert(points)
    store.close()  # one process at a time holds an embedded store: the CLI opens its own
    image_path = root / "query.png"
    images[0].save(image_path)
    return {"root": root, "qdrant": root / "qdrant", "model": tiny_checkpoint, "image": image_path}


def _run(store_dir: dict[str, Any], *args: str) -> int:
    return main(
        [
            "query",
            *args,
            "--model",
            str(store_dir["model"]),
            "--qdrant-path",
            str(store_dir["qdrant"]),
            "--collection",
            "docs",
        ]
    )


def test_table(
    store_dir: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "72")
    assert _run(store_dir, TEXTS[1][2]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["#", "source:page", "element", "score", "snippet"]
    assert lines[1].split()[:4] == ["1", "manual.pdf:2", "passage", "1.0000"]
    assert "valve opens" in lines[1]
    assert any(" figure " in line and " 90x60 " in line for line in lines[2:])
    # The deep file shows its name and page (cut at the start if need be), not the folder.
    deep = next(line for line in lines if "quarterly" in line)
    assert "…ederal-reserve-quarterly-report.pdf:9" in deep or "report.pdf:9" in deep
    assert "/home/me" not in deep
    assert len(lines) == 1 + 6  # k=8 but only six points
    assert all(len(line) <= 72 for line in lines)


def test_table_fits_the_terminal_and_long_shows_paths(
    store_dir: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert _run(store_dir, "interest rates") == 0
    wide = capsys.readouterr().out.splitlines()
    deep = next(line for line in wide if "quarterly" in line)
    assert "federal-reserve-quarterly-report.pdf:9" in deep
    # The line breaks of the passage are folded into one line.
    assert "quarterly report on interest rates and inflation" in deep
    assert len(wide) == 7

    monkeypatch.setenv("COLUMNS", "50")
    assert _run(store_dir, "interest rates") == 0
    narrow = capsys.readouterr().out.splitlines()
    assert len(narrow) == 7 and all(len(line) <= 50 for line in narrow)

    monkeypatch.setenv("COLUMNS", "200")
    assert _run(store_dir, "interest rates", "--long") == 0
    long = capsys.readouterr().out
    assert f"{DEEP}:9" in long


def test_json_k_and_filters(store_dir: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(store_dir, "pump", "--json", "-k", "2") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["rank"] for row in rows] == [1, 2]
    assert {row["modality"] for row in rows} == {"text", "image"}
    assert all("image_base64" not in row["metadata"] for row in rows)

    assert _run(store_dir, "pump", "--json", "--modality", "image") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["modality"] for row in rows] == ["image", "image"]

    assert _run(store_dir, "pump", "--json", "--source", "notes.txt") == 0
    assert [row["source"] for row in json.loads(capsys.readouterr().out)] == ["notes.txt"]

    assert _run(store_dir, "pump", "--json", "--page", "1", "--page", "4") == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(row["page"] for row in rows) == [1, 1, 4]
    assert {(row["modality"], row["element"]) for row in rows} == {
        ("text", "passage"),
        ("image", "figure"),
    }

    assert _run(store_dir, "pump", "--json", "--element", "figure") == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and {row["element"] for row in rows} == {"figure"}
    assert _run(store_dir, "pump", "--json", "--element", "text") == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(TEXTS) and {row["element"] for row in rows} == {"passage"}
    assert _run(store_dir, "pump", "--json", "--element", "table") == 0
    assert json.loads(capsys.readouterr().out) == []

    # Raw cosine sort: the tiny model's text-image gap pushes both images to the bottom.
    assert _run(store_dir, "pump", "--json", "--fusion", "score", "-k", "3") == 0
    assert {row["modality"] for row in json.loads(capsys.readouterr().out)} == {"text"}


def test_image_query_and_saving(
    store_dir: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hits"
    assert (
        _run(store_dir, "--image", str(store_dir["image"]), "--json", "--save-images", str(out))
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["modality"] == "image" and rows[0]["source"] == "manual.pdf"
    assert rows[0]["score"] == pytest.approx(1.0, abs=1e-4)
    files = sorted(path.name for path in out.iterdir())
    assert len(files) == 2
    for row in rows:
        if row["modality"] == "image":
            path = Path(row["image_file"])
            assert path.parent == out.resolve()
            assert Image.open(path).size == (90, 60)
    assert not any(".." in name or "/" in name or " " in name for name in files)
    assert not (tmp_path / "etc").exists()


def test_save_images_in_table_mode(
    store_dir: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "hits"
    assert _run(store_dir, "blue pump", "--modality", "image", "--save-images", "hits") == 0
    lines = capsys.readouterr().out.splitlines()
    files = sorted(path.name for path in out.iterdir())
    # NN-<file stem>-p<page>.<ext>; the hostile name is reduced to its stem.
    stems = sorted(name.split("-", 1)[1] for name in files)
    assert stems == ["evil_name_-p4.png", "manual-p3.png"]
    assert all(name[:2] in ("01", "02") for name in files)
    # The table first, then the saved paths, relative to where the command ran.
    table_end = lines.index("")
    assert not any(name in line for name in files for line in lines[:table_end])
    assert lines[table_end + 1] == "saved 2 images:"
    assert sorted(line.strip() for line in lines[table_end + 2 :]) == [f"hits/{n}" for n in files]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["   "], "empty"),
        ([], "empty"),
        (["text", "--image", "x.png"], "not both"),
        (["--image", "/no/such/file.png"], "no such image"),
        (["q", "-k", "0"], "-k"),
    ],
)
def test_usage_errors(
    store_dir: dict[str, Any], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert _run(store_dir, *args) == 2
    first, *hints = capsys.readouterr().err.strip().splitlines()
    assert first.startswith("error: ") and message in first
    assert all(line.startswith("hint: ") for line in hints) and len(hints) <= 1


def test_missing_collection_and_store(
    store_dir: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "query",
            "q",
            "--model",
            str(store_dir["model"]),
            "--qdrant-path",
            str(store_dir["qdrant"]),
            "--collection",
            "other",
        ]
    )
    assert code == 2
    assert "collection 'other' does not exist" in capsys.readouterr().err
    missing = tmp_path / "nowhere"
    assert main(["query", "q", "--qdrant-path", str(missing)]) == 2
    assert "no store at" in capsys.readouterr().err
    assert not missing.exists()


def test_safe_file_name() -> None:
    assert safe_file_name("../../etc/passwd") == "etc_passwd"
    assert safe_file_name("01-a b?.pdf-p2") == "01-a_b_.pdf-p2"
    assert safe_file_name("...") == "image"
    assert "/" not in safe_file_name("a/b\\c")
