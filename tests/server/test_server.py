"""The embeddings and search server, end to end.

Real uvicorn servers on loopback (random free ports, run in threads) serve the real model on the
tiny random checkpoint; they are called with the official ``openai`` client and with plain httpx.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import ipaddress
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import docgen
import httpx
import numpy as np
import openai
import pytest
from helpers import python_env, running_server
from PIL import Image

from mrag.images.urls import URLError, fetch_public_url, is_public_address
from mrag.model import JinaClipModel
from mrag.server.app import ServerConfig, create_app, default_model_names
from mrag.server.batching import MicroBatcher
from mrag.server.limits import ServerLimits
from mrag.store import Store, StoreSettings
from mrag.store.payload import image_payload, make_point, text_payload

API_KEY = "test-key-0123456789"
MODEL = "jina-clip-v1"
#: Tight limits on the main test server, so each one is cheap to cross.
LIMITS = ServerLimits(
    max_inputs=16,
    max_text_tokens=64,
    max_image_bytes=200_000,
    max_pixels=1_000_000,
    max_body_bytes=2_000_000,
    allow_urls=True,
    url_timeout=2.0,
)
TEXTS = [
    "a cat sleeping on the sofa",
    "the dog runs after a red ball",
    "quarterly report: revenue and cost table",
    "a rocket on the launch pad at night",
]


# -- helpers -----------------------------------------------------------------------------------


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(image: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["type"] == "invalid_request_error"
    if code is not None:
        assert error["code"] == code
    return error


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def images() -> dict[str, Image.Image]:
    return {
        "red": docgen.solid((220, 20, 20), (64, 48)),
        "blue": docgen.solid((20, 40, 220), (48, 64)),
        "noise": docgen.noise((80, 80), seed=1),
    }


@pytest.fixture(scope="module")
def store_settings(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: JinaClipModel, images: dict
) -> StoreSettings:
    """An embedded store holding TEXTS and the test images, embedded by the tiny model."""
    settings = StoreSettings(path=str(tmp_path_factory.mktemp("qdrant")), collection="served")
    text_vectors = tiny_model.encode_text(TEXTS)
    image_vectors = tiny_model.encode_image(list(images.values()))
    points = [
        make_point(
            "notes.txt",
            "text",
            i,
            vector,
            text_payload(
                text, {"source": "notes.txt", "page": None, "pages": [], "content_hash": f"t{i}"}
            ),
        )
        for i, (text, vector) in enumerate(zip(TEXTS, text_vectors, strict=True))
    ]
    points += [
        make_point(
            f"{name}.png",
            "image",
            0,
            vector,
            image_payload(
                f"a {name} picture",
                image,
                {"source": f"{name}.png", "page": None, "pages": [], "content_hash": name},
            ),
        )
        for (name, image), vector in zip(images.items(), image_vectors, strict=True)
    ]
    with Store.open(settings) as store:
        store.ensure_collection(tiny_model.embedding_dim)
        store.upsert(points)
    return settings


@pytest.fixture(scope="module")
def server(
    tiny_model: JinaClipModel, tiny_checkpoint: Path, store_settings: StoreSettings
) -> Iterator[str]:
    """The main server: API key required, URLs allowed, tight limits, search on."""
    config = ServerConfig(
        model_names=default_model_names(str(tiny_checkpoint)),
        limits=LIMITS,
        api_key=API_KEY,
        store=store_settings,
    )
    with running_server(create_app(tiny_model, config)) as url:
        yield url


@pytest.fixture(scope="module")
def open_server(tiny_model: JinaClipModel) -> Iterator[str]:
    """A second server with the defaults: no key, URLs refused, no search store."""
    with running_server(create_app(tiny_model, ServerConfig())) as url:
        yield url


@pytest.fixture()
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=API_KEY, max_retries=0, timeout=30)


@pytest.fixture()
def http(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
    ) as session:
        yield session


def embed(http: httpx.Client, items: Any, **extra: Any) -> httpx.Response:
    return http.post("/v1/embeddings", json={"model": MODEL, "input": items, **extra})


def assert_serving(http: httpx.Client, tiny_model: JinaClipModel) -> None:
    """A good request right after a bad one still gets the right answer."""
    response = embed(http, "still serving")
    assert response.status_code == 200, response.text
    got = np.array(response.json()["data"][0]["embedding"], dtype=np.float32)
    np.testing.assert_allclose(got, tiny_model.encode_text("still serving"), atol=1e-5)


# -- the openai client -------------------------------------------------------------------------


def test_openai_client_texts_float_and_base64_agree(client, tiny_model):
    as_float = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    # The client asks for base64 by default and decodes it itself.
    as_base64 = client.embeddings.create(model=MODEL, input=TEXTS)
    expected = tiny_model.encode_text(TEXTS)
    assert as_float.object == "list" and as_float.model == MODEL
    assert [item.index for item in as_float.data] == list(range(len(TEXTS)))
    floats = np.array([item.embedding for item in as_float.data], dtype=np.float32)
    decoded = np.array([item.embedding for item in as_base64.data], dtype=np.float32)
    np.testing.assert_allclose(floats, expected, atol=1e-5)
    np.testing.assert_array_equal(floats, decoded)
    tokens = sum(len(ids) for ids in tiny_model.tokenize(TEXTS))
    assert as_float.usage.prompt_tokens == as_float.usage.total_tokens == tokens

    single = client.embeddings.create(model=MODEL, input=TEXTS[0], encoding_format="float")
    np.testing.assert_allclose(single.data[0].embedding, expected[0], atol=1e-5)


def test_openai_client_images(client, tiny_model, images):
    items = [{"image": data_uri(image)} for image in images.values()]
    response = client.embeddings.create(model=MODEL, input=items)  # type: ignore[arg-type]
    got = np.array([item.embedding for item in response.data], dtype=np.float32)
    np.testing.assert_allclose(got, tiny_model.encode_image(list(images.values())), atol=1e-5)
    grid = tiny_model.config.vision.grid_size
    assert response.usage.prompt_tokens == len(images) * (grid * grid + 1)


def test_openai_client_dimensions(client, tiny_model):
    for fmt in ("float", "base64"):
        response = client.embeddings.create(
            model=MODEL, input=TEXTS[:2], dimensions=64, encoding_format=fmt
        )
        rows = [item.embedding for item in response.data]
        if fmt == "base64":  # asked for explicitly, the client hands back the encoded string
            rows = [np.frombuffer(base64.b64decode(row), dtype="<f4") for row in rows]
        got = np.array(rows, dtype=np.float32)
        assert got.shape == (2, 64)
        full = tiny_model.encode_text(TEXTS[:2])[:, :64]
        expected = full / np.linalg.norm(full, axis=1, keepdims=True)
        np.testing.assert_allclose(got, expected, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_openai_client_models_and_names(client, tiny_checkpoint, tiny_model):
    names = [model.id for model in client.models.list()]
    assert names[0] == MODEL
    assert tiny_checkpoint.name in names
    assert str(tiny_checkpoint) not in names  # the server's paths are not shown to clients
    for name in names:
        response = client.embeddings.create(model=name, input="x", encoding_format="float")
        assert response.model == MODEL
    assert client.models.retrieve(tiny_checkpoint.name).id == tiny_checkpoint.name
    card = client.models.retrieve(MODEL).model_dump()
    assert (card["dtype"], card["device"]) == ("float32", "cpu")


def test_default_model_names(tiny_checkpoint):
    assert default_model_names("jinaai/jina-clip-v1") == ["jina-clip-v1", "jinaai/jina-clip-v1"]
    assert default_model_names(str(tiny_checkpoint), ["mine"]) == [
        "mine",
        "jina-clip-v1",
        tiny_checkpoint.name,
    ]


def test_openai_client_errors(client, server):
    with pytest.raises(openai.NotFoundError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MODEL, input="", encoding_format="float")
    wrong = openai.OpenAI(base_url=f"{server}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.embeddings.create(model=MODEL, input="x")


# -- plain HTTP: item shapes -------------------------------------------------------------------


def test_image_item_shapes(http, tiny_model, images):
    red = images["red"]
    raw = base64.b64encode(png_bytes(red)).decode("ascii")
    buffer = io.BytesIO()
    red.save(buffer, format="JPEG", quality=95)
    jpeg = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    wrapped = "\n".join(raw[i : i + 76] for i in range(0, len(raw), 76))  # MIME line breaks
    items = [
        {"image": data_uri(red)},
        {"image": raw},
        {"image": wrapped},
        {"text": TEXTS[0]},
        TEXTS[1],
        {"image": jpeg},
    ]
    response = embed(http, items, encoding_format="base64")
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [item["index"] for item in data] == list(range(len(items)))
    vectors = np.stack(
        [np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4") for item in data]
    )
    expected_red = tiny_model.encode_image(red)
    for row in (0, 1, 2):
        np.testing.assert_allclose(vectors[row], expected_red, atol=1e-5)
    np.testing.assert_allclose(vectors[3:5], tiny_model.encode_text(TEXTS[:2]), atol=1e-5)
    # JPEG is lossy: close to the PNG's vector, not equal.
    assert float(vectors[5] @ expected_red) > 0.9


def test_health_is_open_and_counts(server):
    response = httpx.get(f"{server}/healthz")  # no key needed
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["model"] == MODEL and body["dimensions"] == 192


# -- plain HTTP: bad requests ------------------------------------------------------------------


def _bad_requests(images: dict) -> list[tuple[str, Any, int, str | None]]:
    big_noise = docgen.noise((300, 300), seed=2)  # ~270 kB of PNG: over the 200 kB image limit
    wide = docgen.solid((1, 2, 3), (1200, 1000))  # 1.2 Mpx, a few kB: over the pixel limit
    return [
        ("invalid base64", [{"image": "not*base64!"}], 400, "invalid_base64"),
        (
            "undecodable image",
            [{"image": base64.b64encode(b"\x00" * 500).decode()}],
            400,
            "invalid_image",
        ),
        ("oversized image bytes", [{"image": data_uri(big_noise)}], 413, "image_too_large"),
        ("oversized image pixels", [{"image": data_uri(wide)}], 413, "image_too_large"),
        ("too many inputs", ["x"] * (LIMITS.max_inputs + 1), 400, "too_many_inputs"),
        ("text too long", "cat " * 200, 400, "context_length_exceeded"),
        ("loopback URL", [{"image": "http://127.0.0.1:9/image.png"}], 400, "invalid_image_url"),
        ("localhost URL", [{"image": "http://localhost/image.png"}], 400, "invalid_image_url"),
        ("metadata URL", [{"image": "http://169.254.169.254/latest"}], 400, "invalid_image_url"),
        ("file URI", [{"image": "file:///etc/passwd"}], 400, "invalid_image"),
        ("token arrays", [[101, 2054, 102]], 400, "token_arrays_not_supported"),
        ("empty input", [], 400, None),
        ("empty text", [""], 400, None),
        ("unknown item", [{"audio": "x"}], 400, None),
        ("good and bad", [TEXTS[0], {"image": "%%%"}], 400, "invalid_base64"),
    ]


def test_bad_inputs_get_openai_errors_and_server_keeps_serving(http, tiny_model, images):
    for name, items, status, code in _bad_requests(images):
        error = assert_error(embed(http, items), status, code)
        assert error["param"] is None or error["param"].startswith("input"), name
        assert_serving(http, tiny_model)


def test_bad_request_bodies(http, server, tiny_model):
    cases = [
        (http.post("/v1/embeddings", json={"model": "nope", "input": "x"}), 404, "model_not_found"),
        (http.post("/v1/embeddings", content=b"{not json"), 400, "invalid_json"),
        (http.post("/v1/embeddings", content=b"[1, 2]"), 400, None),
        (http.post("/v1/embeddings", content=b""), 400, None),
        (http.post("/v1/embeddings", json={"input": "x"}), 400, None),
        (embed(http, "x", encoding_format="int8"), 400, None),
        (embed(http, "x", dimensions=0), 400, None),
        (embed(http, "x", dimensions=10_000), 400, None),
        (http.get("/v1/nothing"), 404, None),
        (http.get("/v1/embeddings"), 405, None),
        (http.get("/v1/models/other-model"), 404, "model_not_found"),
    ]
    for response, status, code in cases:
        assert_error(response, status, code)
    assert assert_error(embed(http, "x", encoding_format="int8"), 400)["param"] == (
        "encoding_format"
    )
    # curl -d sends a form content type; the JSON body is read all the same.
    response = http.post(
        "/v1/embeddings",
        content=b'{"model": "jina-clip-v1", "input": "x"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert_serving(http, tiny_model)


def test_body_size_is_enforced_before_parsing(http, tiny_model):
    oversized = b'{"model": "jina-clip-v1", "input": "' + b"a" * LIMITS.max_body_bytes + b'"}'
    assert_error(http.post("/v1/embeddings", content=oversized), 413, "request_too_large")
    # Without a Content-Length (chunked), the body is cut off as it passes the limit.
    chunks = (oversized[i : i + 65536] for i in range(0, len(oversized), 65536))
    assert_error(http.post("/v1/embeddings", content=chunks), 413, "request_too_large")
    assert_serving(http, tiny_model)


def test_api_key(server, http, tiny_model):
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": API_KEY},
        {"Authorization": f"Basic {API_KEY}"},
    ):
        for method, path in (
            ("POST", "/v1/embeddings"),
            ("GET", "/v1/models"),
            ("POST", "/v1/search"),
        ):
            response = httpx.request(
                method, f"{server}{path}", headers=headers, json={"model": MODEL, "input": "x"}
            )
            error = assert_error(response, 401, "invalid_api_key")
            assert "key" in error["message"].lower()
            assert response.headers["www-authenticate"] == "Bearer"
    assert_serving(http, tiny_model)


def test_urls_refused_unless_allowed(open_server, tiny_model):
    with httpx.Client(base_url=open_server) as session:
        response = embed(session, [{"image": "https://example.com/cat.png"}])
        assert_error(response, 400, "urls_not_allowed")
        assert_serving(session, tiny_model)
        # Without a store configured, search says so instead of failing.
        response = session.post("/v1/search", json={"query": "cat"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "search_unavailable"


# -- concurrency -------------------------------------------------------------------------------


def test_concurrent_requests_get_their_own_embeddings(server, tiny_model):
    words = [
        "cat",
        "dog",
        "red",
        "blue",
        "car",
        "tree",
        "sky",
        "sun",
        "house",
        "city",
        "water",
        "rocket",
    ]
    requests = [
        [f"{words[i % 12]} {words[(i * 5) % 12]} number {i}", f"{words[(i * 7) % 12]} {i}"][
            : 1 + i % 2
        ]
        for i in range(64)
    ]
    expected = [tiny_model.encode_text(texts) for texts in requests]

    async def main() -> list[np.ndarray]:
        limits = httpx.Limits(max_connections=64)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(
            base_url=server, headers=headers, limits=limits, timeout=60
        ) as session:

            async def one(texts: list[str]) -> np.ndarray:
                response = await session.post(
                    "/v1/embeddings",
                    json={"model": MODEL, "input": texts, "encoding_format": "base64"},
                )
                assert response.status_code == 200, response.text
                return np.stack(
                    [
                        np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
                        for item in response.json()["data"]
                    ]
                )

            return await asyncio.gather(*(one(texts) for texts in requests))

    before = httpx.get(f"{server}/healthz").json()
    results = asyncio.run(main())
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    after = httpx.get(f"{server}/healthz").json()
    served = sum(len(texts) for texts in requests)
    assert after["inputs"] - before["inputs"] == served
    # Concurrent requests were really batched together: fewer model calls than requests.
    assert after["batches"] - before["batches"] < len(requests)
    assert after["largest_batch"] > 2


async def test_batcher_failure_stays_with_its_job(tiny_model, images):
    batcher = MicroBatcher(tiny_model, max_wait=0.05)
    batcher.start()
    try:
        with batcher.preparing():
            good = batcher.submit_images([images["red"]])
            bad = batcher.submit_images(["/no/such/image.png"])  # type: ignore[list-item]
            texts = batcher.submit_texts(TEXTS[:2])
        np.testing.assert_allclose(
            (await good)[0], tiny_model.encode_image(images["red"]), atol=1e-5
        )
        with pytest.raises(ValueError):
            await bad
        np.testing.assert_allclose(await texts, tiny_model.encode_text(TEXTS[:2]), atol=1e-5)
        assert batcher.stats.failed_jobs == 1
    finally:
        batcher.close()


# -- search ------------------------------------------------------------------------------------


def test_search_by_text_mixes_modalities_with_images(http, images):
    response = http.post("/v1/search", json={"query": "a cat on the sofa", "k": 6})
    assert response.status_code == 200, response.text
    body = response.json()
    results = body["data"]
    assert [item["rank"] for item in results] == list(range(1, 7))
    assert {item["modality"] for item in results} == {"text", "image"}
    assert body["usage"]["prompt_tokens"] > 0
    for item in results:
        assert item["metadata"]["source"]
        assert -1.0 <= item["score"] <= 1.0
        if item["modality"] == "image":
            meta = item["metadata"]
            picture = Image.open(io.BytesIO(base64.b64decode(meta["image_base64"])))
            assert meta["mime_type"] in ("image/png", "image/jpeg")
            assert picture.size == images[meta["source"].removesuffix(".png")].size
        else:
            assert item["page_content"] in TEXTS


def test_search_by_image_and_filters(http, images):
    query = {"image": data_uri(images["blue"])}
    response = http.post(
        "/v1/search", json={"query": query, "k": 2, "filter": {"modality": "image"}}
    )
    assert response.status_code == 200, response.text
    results = response.json()["data"]
    assert [item["modality"] for item in results] == ["image", "image"]
    assert results[0]["metadata"]["source"] == "blue.png"
    assert results[0]["score"] == pytest.approx(1.0, abs=1e-4)

    response = http.post(
        "/v1/search",
        json={
            "query": {"text": "rocket"},
            "k": 3,
            "include_images": False,
            "model": MODEL,
            "filter": {"source": ["red.png", "notes.txt"]},
            "fusion": "quota",
            "image_k": 1,
        },
    )
    assert response.status_code == 200, response.text
    results = response.json()["data"]
    assert {item["metadata"]["source"] for item in results} <= {"red.png", "notes.txt"}
    assert sum(item["modality"] == "image" for item in results) == 1
    assert all("image_base64" not in item["metadata"] for item in results)

    # Elements: every hit says what it is, and the filter keeps one kind.
    body = {"query": {"text": "rocket"}, "k": 8, "include_images": False}
    everything = http.post("/v1/search", json=body).json()["data"]
    assert {item["element"] for item in everything} == {"text", "figure"}
    figures = http.post("/v1/search", json={**body, "filter": {"element": "figure"}})
    assert figures.status_code == 200, figures.text
    kinds = {(item["element"], item["modality"]) for item in figures.json()["data"]}
    assert kinds == {("figure", "image")}


def test_search_runs_the_keyword_leg(http):
    # One passage says "revenue": with the keyword leg it leads; the knobs reach the retriever.
    body = {"query": "revenue", "k": 2, "filter": {"modality": "text"}}
    results = http.post("/v1/search", json=body).json()["data"]
    assert results[0]["page_content"] == TEXTS[2]
    dense = http.post("/v1/search", json={**body, "hybrid": False, "k": 4}).json()["data"]
    assert len(dense) == 4
    weighted = {**body, "leg_weights": {"bm25": 0.0, "text": 1.0}}
    assert http.post("/v1/search", json=weighted).status_code == 200
    assert_error(http.post("/v1/search", json={**body, "leg_weights": {"audio": 1.0}}), 400)


def test_search_errors(http):
    cases = [
        ({"query": "x", "k": 1000}, 400),
        ({"query": "x", "filter": {"modality": "audio"}}, 400),
        ({"query": {"image": "@@@"}}, 400),
        ({"query": {"video": "x"}}, 400),
        ({"query": ""}, 400),
        ({"query": "x", "model": "other"}, 404),
        ({"query": "x", "surprise": 1}, 400),
        ({"k": 3}, 400),
    ]
    for body, status in cases:
        assert_error(http.post("/v1/search", json=body), status)
    assert http.post("/v1/search", json={"query": "cat", "k": 1}).status_code == 200


def test_lone_surrogates_get_a_400_naming_the_field(http, tiny_model):
    # httpx would refuse to encode a lone surrogate; JSON's escape carries it, as clients send it.
    bodies = [
        ("/v1/embeddings", b'{"input": "a\\ud800c", "model": "jina-clip-v1"}', "input"),
        ("/v1/embeddings", b'{"input": ["ok", {"text": "x\\udfff"}]}', "input[1].text"),
        ("/v1/embeddings", b'{"input": "fine", "model": "m\\ud800"}', "model"),
        ("/v1/search", b'{"query": "a\\ud800c"}', "query"),
        ("/v1/search", b'{"query": "x", "filter": {"source": "\\udcff.pdf"}}', "filter.source"),
    ]
    for path, body, param in bodies:
        error = assert_error(http.post(path, content=body), 400, "invalid_unicode")
        assert error["param"] == param
        assert "surrogate" in error["message"]
    assert_serving(http, tiny_model)


def test_search_by_source_says_when_no_source_matches(http):
    response = http.post(
        "/v1/search", json={"query": "rocket", "filter": {"source": "no-such-file.pdf"}}
    )
    error = assert_error(response, 404, "source_not_found")
    assert "no-such-file.pdf" in error["message"]


# -- guarded URL download ----------------------------------------------------------------------


@contextlib.contextmanager
def image_host(routes: dict[str, tuple[int, dict[str, str], bytes]]) -> Iterator[int]:
    """A throwaway HTTP server on 127.0.0.1 answering ``routes``; yields its port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/trickle":  # a body that arrives one byte every 100 ms
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                with contextlib.suppress(OSError):
                    for _ in range(1000):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.1)
                return
            status, headers, body = routes.get(self.path, (404, {}, b""))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_fetch_public_url_rules(images):
    png = png_bytes(images["red"])
    only_127_0_0_1 = lambda address: str(address) == "127.0.0.1"  # noqa: E731
    with image_host(
        {
            "/red.png": (200, {"Content-Type": "image/png"}, png),
            "/hop": (302, {"Location": "/red.png"}, b""),
            "/escape": (302, {"Location": "http://127.0.0.2:9/secret"}, b""),
            "/big": (200, {}, b"x" * 5000),
        }
    ) as port:
        base = f"http://127.0.0.1:{port}"
        # The default policy refuses loopback outright.
        with pytest.raises(URLError, match="not a public address"):
            fetch_public_url(f"{base}/red.png", max_bytes=10**6, timeout=2)
        fetched = fetch_public_url(
            f"{base}/hop", max_bytes=10**6, timeout=2, address_allowed=only_127_0_0_1
        )
        assert fetched.data == png and fetched.url.endswith("/red.png")
        # A redirect is vetted like the first URL.
        with pytest.raises(URLError, match="not a public address"):
            fetch_public_url(
                f"{base}/escape", max_bytes=10**6, timeout=2, address_allowed=only_127_0_0_1
            )
        with pytest.raises(URLError, match="limit"):
            fetch_public_url(
                f"{base}/big", max_bytes=1000, timeout=2, address_allowed=only_127_0_0_1
            )
        # Each read is quick, but the whole download has one deadline.
        started = time.monotonic()
        with pytest.raises(URLError, match="timed out"):
            fetch_public_url(
                f"{base}/trickle", max_bytes=10**6, timeout=1.0, address_allowed=only_127_0_0_1
            )
        assert time.monotonic() - started < 3
        with pytest.raises(URLError, match="HTTP 404"):
            fetch_public_url(
                f"{base}/missing", max_bytes=1000, timeout=2, address_allowed=only_127_0_0_1
            )
    for url in ("ftp://example.com/x.png", "http://user:pw@example.com/x.png", "http:///x"):
        with pytest.raises(URLError):
            fetch_public_url(url, max_bytes=1000, timeout=1)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("64:ff9b::7f00:1", False),
        ("2002:7f00:1::", False),
        ("::ffff:8.8.8.8", True),
    ],
)
def test_is_public_address(address, public):
    assert is_public_address(ipaddress.ip_address(address)) is public


# -- the command line --------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def cli_server(
    tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """``python -m mrag serve`` in a subprocess, started with the module's first test so that its
    start-up (a fresh interpreter importing torch) overlaps the other tests."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path_factory.mktemp("cli")
    env = python_env({"MRAG_API_KEY": "from-env"})
    command = [
        sys.executable,
        "-m",
        "mrag",
        "serve",
        "--port",
        str(port),
        "--model",
        str(tiny_checkpoint),
        "--qdrant-path",
        str(folder / "q"),
        "--log-level",
        "warning",
        "--served-model-name",
        "my-clip",
    ]
    log = folder / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}", process, log
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_mrag_serve_command(cli_server):
    base, process, log = cli_server
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log.read_text()
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        assert time.monotonic() < deadline, "mrag serve did not come up"
        time.sleep(0.2)
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="from-env", max_retries=0)
    response = client.embeddings.create(model="my-clip", input=["hello"])
    assert response.model == "my-clip" and len(response.data[0].embedding) == 192
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{base}/v1", api_key="nope", max_retries=0).models.list()
