"""Ingestion over HTTP: uploads, jobs, outcomes, limits, hostile names, deletion, crashes.

Real uvicorn servers on the tiny random checkpoint ingest real generated PDFs with the same run
as ``mrag ingest``; one test kills a ``mrag serve`` process with SIGKILL in the middle of a job.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from docgen import figures_pdf, text_pdf
from helpers import REPO, python_env, running_server

from mrag.model import JinaClipModel
from mrag.server.app import ServerConfig, create_app
from mrag.server.limits import APIError
from mrag.server.uploads import UploadLimits, safe_name
from mrag.store import Store, StoreSettings

API_KEY = "docs-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
LIMITS = UploadLimits(max_file_bytes=300_000, max_files=3, max_total_bytes=500_000)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("upload-files")
    work = root / "work"
    work.mkdir()
    made = {"report": figures_pdf(root / "report.pdf", work)}
    for number in range(6):
        pages = [
            f"Volume {number} page {page}: lighthouse keepers log the tides." for page in range(30)
        ]
        made[f"volume{number}"] = text_pdf(root / f"volume{number}.pdf", pages)
    broken = root / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\nthis is not a PDF body\n")
    made["broken"] = broken
    return made


@pytest.fixture()
def served(tmp_path: Path, tiny_model: JinaClipModel) -> Iterator[tuple[str, Path]]:
    store = StoreSettings(path=str(tmp_path / "store"), collection="docs")
    config = ServerConfig(store=store, api_key=API_KEY, uploads=LIMITS)
    with running_server(create_app(tiny_model, config)) as url:
        yield url, tmp_path / "store"


def post(url: str, files: list[tuple[str, bytes]], headers: dict | None = None) -> httpx.Response:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return httpx.post(
        f"{url}/v1/documents", files=parts, headers=AUTH if headers is None else headers, timeout=60
    )


def finished(url: str, job_id: str) -> dict:
    while True:
        job = httpx.get(f"{url}/v1/jobs/{job_id}", headers=AUTH).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)


def upload_and_wait(url: str, files: list[tuple[str, bytes]]) -> dict:
    response = post(url, files)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    return finished(url, response.json()["id"])


def outcomes(job: dict) -> dict[str, str]:
    return {item["name"]: item["status"] for item in job["files"]}


def test_upload_outcomes_reupload_and_delete(served, files):
    url, store_path = served
    job = upload_and_wait(
        url,
        [
            ("report.pdf", files["report"].read_bytes()),
            ("broken.pdf", files["broken"].read_bytes()),
        ],
    )
    assert job["status"] == "done" and job["progress"] == {"done": 2, "total": 2}
    assert outcomes(job) == {"report.pdf": "ingested", "broken.pdf": "failed"}
    report = next(item for item in job["files"] if item["name"] == "report.pdf")
    assert report["pages"] == 3 and report["images"] >= 3 and report["points"] > 0
    broken = next(item for item in job["files"] if item["name"] == "broken.pdf")
    assert broken["reason"] and "PDF" in broken["reason"]

    listed = httpx.get(f"{url}/v1/documents", headers=AUTH).json()
    assert [doc["name"] for doc in listed["data"]] == ["report.pdf"]
    assert listed["data"][0]["pages"] == 3 and listed["totals"]["images"] == report["images"]
    assert listed["dtype"] and listed["model"]

    # The same bytes again are "unchanged"; the upload folder keeps one copy.
    again = upload_and_wait(url, [("report.pdf", files["report"].read_bytes())])
    assert outcomes(again) == {"report.pdf": "unchanged"}
    assert sorted(p.name for p in (store_path / "uploads").iterdir() if p.is_file()) == [
        "broken.pdf",
        "report.pdf",
    ]

    # Figures are served by point id for the page's thumbnails.
    found = httpx.post(
        f"{url}/v1/search",
        headers=AUTH,
        json={"query": "red square", "filter": {"modality": "image"}},
    ).json()["data"]
    picture = httpx.get(f"{url}/v1/images/{found[0]['id']}", headers=AUTH)
    assert picture.status_code == 200 and picture.headers["content-type"] in (
        "image/png",
        "image/jpeg",
    )
    assert httpx.get(f"{url}/v1/images/nope", headers=AUTH).status_code == 404

    deleted = httpx.delete(f"{url}/v1/documents/report.pdf", headers=AUTH)
    assert deleted.status_code == 200 and deleted.json()["points"] == report["points"]
    assert httpx.get(f"{url}/v1/documents", headers=AUTH).json()["data"] == []
    assert not (store_path / "uploads" / "report.pdf").exists()
    gone = httpx.delete(f"{url}/v1/documents/report.pdf", headers=AUTH)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "source_not_found"
    assert (
        httpx.post(f"{url}/v1/search", headers=AUTH, json={"query": "red square"}).json()["data"]
        == []
    )


def test_limits_are_refused_with_their_numbers(served, files):
    url, store_path = served
    small = files["volume0"].read_bytes()
    many = post(url, [(f"f{i}.pdf", small) for i in range(4)])
    assert many.status_code == 413 and many.json()["error"]["code"] == "too_many_files"
    assert "at most 3" in many.json()["error"]["message"]
    big = post(url, [("big.pdf", b"x" * 300_001)])
    assert big.status_code == 413 and big.json()["error"]["code"] == "file_too_large"
    assert (
        "300,001" in big.json()["error"]["message"] and "300,000" in big.json()["error"]["message"]
    )
    total = post(url, [(f"t{i}.pdf", b"x" * 200_000) for i in range(3)])
    assert total.status_code == 413 and total.json()["error"]["code"] == "upload_too_large"
    assert "600,000" in total.json()["error"]["message"]
    # A body declared larger than any upload may be is refused before it is read.
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(
            b"POST /v1/documents HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {API_KEY}\r\n".encode()
            + b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 1000000000\r\n\r\n"
        )
        status_line = raw.recv(4096).split(b"\r\n", 1)[0]
    assert status_line.split()[1] == b"413", status_line

    # A chunked body is cut off once past the limit.
    def chunks() -> Iterator[bytes]:
        yield b'--y\r\nContent-Disposition: form-data; name="files"; filename="a.pdf"\r\n\r\n'
        for _ in range(100):
            yield b"y" * 65536
        yield b"\r\n--y--\r\n"

    streamed = httpx.post(
        f"{url}/v1/documents",
        content=chunks(),
        headers={**AUTH, "Content-Type": "multipart/form-data; boundary=y"},
    )
    assert streamed.status_code == 413
    assert not (store_path / "uploads").exists() or not any((store_path / "uploads").iterdir())


def test_hostile_names_and_wrong_keys(served, files):
    url, store_path = served
    data = files["volume1"].read_bytes()
    job = upload_and_wait(url, [("../../escape.pdf", data), ("..\\..\\.hidden.pdf", data)])
    assert outcomes(job) == {"escape.pdf": "ingested", "hidden.pdf": "ingested"}
    kept = sorted(p.name for p in (store_path / "uploads").iterdir() if p.is_file())
    assert kept == ["escape.pdf", "hidden.pdf"]
    assert not (store_path.parent / "escape.pdf").exists()
    for name in ("..", "/", "...", "  "):
        refused = post(url, [(name, data)])
        assert refused.status_code == 400, (name, refused.text)
    assert (
        post(url, [("a.pdf", data)], headers={"Authorization": "Bearer wrong"}).status_code == 401
    )
    assert post(url, [("a.pdf", data)], headers={}).status_code == 401
    assert httpx.get(f"{url}/v1/jobs/{job['id']}").status_code == 401
    assert httpx.get(f"{url}/v1/documents").status_code == 401
    assert httpx.delete(f"{url}/v1/documents/escape.pdf").status_code == 401
    assert httpx.get(f"{url}/v1/jobs/unknown", headers=AUTH).status_code == 404
    assert httpx.get(f"{url}/").status_code == 200  # the page asks for the key itself


def test_safe_name():
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\Users\\me\\report.pdf") == "report.pdf"
    assert safe_name("...hidden") == "hidden"
    assert safe_name("a\x00b\x1fc\u202e.pdf") == "abc.pdf"
    assert safe_name("x<y>:z|?*.pdf") == "x_y__z___.pdf"
    long = safe_name("n" * 500 + ".pdf")
    assert len(long) <= 120 and long.endswith(".pdf")
    for hostile in ("", "..", ".", "/", "\x07", None):
        with pytest.raises(APIError):
            safe_name(hostile)


def test_searches_answer_during_a_job(served, files):
    url, _ = served
    names = [f"volume{number}" for number in range(3)]
    response = post(url, [(f"{name}.pdf", files[name].read_bytes()) for name in names])
    job_id = response.json()["id"]
    during = 0
    while True:
        before = httpx.get(f"{url}/v1/jobs/{job_id}", headers=AUTH).json()["status"]
        answer = httpx.post(f"{url}/v1/search", headers=AUTH, json={"query": "lighthouse tides"})
        after = httpx.get(f"{url}/v1/jobs/{job_id}", headers=AUTH).json()["status"]
        assert answer.status_code == 200, answer.text
        if before == after == "running":
            during += 1
        if after in ("done", "failed"):
            break
    assert during >= 1, "no search ran while the job was running"
    assert set(outcomes(finished(url, job_id)).values()) == {"ingested"}


# -- a server process killed in the middle of a job ------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(checkpoint: Path, store: Path, port: int) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "mrag", "serve", "--model", str(checkpoint), "--dtype", "float32",
        "--qdrant-path", str(store), "--collection", "docs", "--port", str(port),
        "--log-level", "warning",
    ]  # fmt: skip
    env = python_env({"MRAG_API_KEY": API_KEY})
    process = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
    threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe drained
    while True:
        if process.poll() is not None:
            raise RuntimeError("the server exited at start")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)


def check_consistent(store_path: Path) -> set[str]:
    """Every source with points has its ledger entry and exactly its points; returns them."""
    with Store.open(StoreSettings(path=str(store_path), collection="docs")) as store:
        records = {record.source: record for record in store.sources()}
        counted = Counter(
            (found.payload.get("metadata") or {}).get("source")
            for found in store.iter_points(with_payload=True)
        )
    counted.pop(None, None)
    for source, points in counted.items():
        assert source in records, f"{source} has {points} points but no ledger entry"
        assert records[source].points == points, source
    return set(records)


def test_kill_9_mid_job_then_restart(tmp_path: Path, tiny_checkpoint: Path, files):
    store_path = tmp_path / "store"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    uploads = [(f"volume{n}.pdf", files[f"volume{n}"].read_bytes()) for n in range(6)]
    process = start_server(tiny_checkpoint, store_path, port)
    try:
        first = post(url, uploads[:3])
        second = post(url, uploads[3:])
        assert first.status_code == second.status_code == 202
        # Kill once part of the work is done and part is not.
        while True:
            state = httpx.get(f"{url}/v1/jobs/{first.json()['id']}", headers=AUTH).json()
            if state["progress"]["done"] >= 1 or state["status"] == "done":
                break
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    # Started again: interrupted sources are cleaned away, finished ones stay whole.
    process = start_server(tiny_checkpoint, store_path, port)
    try:
        settled = httpx.get(f"{url}/v1/documents", headers=AUTH).json()
        assert len(settled["data"]) < 6, "the job should have been cut short"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    stored = check_consistent(store_path)
    assert len(stored) < 6
    # Uploading everything again finishes the work; what was in stays unchanged.
    process = start_server(tiny_checkpoint, store_path, port)
    try:
        job = upload_and_wait(url, uploads[:3])
        job2 = upload_and_wait(url, uploads[3:])
        statuses = {**outcomes(job), **outcomes(job2)}
        assert set(statuses.values()) <= {"ingested", "unchanged"}
        assert sum(status == "unchanged" for status in statuses.values()) == len(stored)
        assert len(httpx.get(f"{url}/v1/documents", headers=AUTH).json()["data"]) == 6
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert len(check_consistent(store_path)) == 6
