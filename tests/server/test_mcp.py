"""The MCP server, driven by the official SDK's own client over stdio and over HTTP.

The store is built by the real ingestion (a generated PDF with captioned figures, on the tiny
random checkpoint), so search returns real passages and real figure renditions.
"""

from __future__ import annotations

import base64
import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from docgen import figures_pdf, text_pdf
from helpers import REPO, python_env, running_server
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from PIL import Image

from mrag.ingestion.run import ingest
from mrag.model import JinaClipModel
from mrag.server.app import ServerConfig, create_app
from mrag.store import Store, StoreSettings

API_KEY = "mcp-key-0123456789"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An allowed folder with a figures PDF, and a folder the server is not allowed to read."""
    root = tmp_path_factory.mktemp("mcp-corpus")
    allowed, outside, work = root / "allowed", root / "outside", root / "work"
    for folder in (allowed, outside, work):
        folder.mkdir()
    figures_pdf(allowed / "report.pdf", work)
    text_pdf(allowed / "later.pdf", ["A later note about violet umbrellas."])
    text_pdf(outside / "secret.pdf", ["Nothing here may be read by the MCP server."])
    return {"allowed": allowed, "outside": outside}


@pytest.fixture()
def store(
    tmp_path: Path, tiny_model: JinaClipModel, corpus: dict[str, Path]
) -> Iterator[StoreSettings]:
    """A store holding the figures PDF (text and image points), closed again for the server."""
    settings = StoreSettings(path=str(tmp_path / "store"), collection="docs")
    with Store.open(settings) as opened:
        report = ingest([corpus["allowed"] / "report.pdf"], store=opened, model=tiny_model)
    assert report.count("ingested") == 1, report.to_dict()
    yield settings


async def _exercise(session: ClientSession, corpus: dict[str, Path]) -> None:
    await session.initialize()
    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == {"search", "list_sources", "ingest"}
    assert "figures" in tools["search"].description
    result = await session.call_tool("search", {"query": "a red square figure", "k": 10})
    assert not result.is_error
    texts = [block.text for block in result.content if block.type == "text"]
    images = [block for block in result.content if block.type == "image"]
    assert any("report.pdf, page 1" in text and "passage:" in text for text in texts), texts
    assert any("caption: Figure 1: A red square" in text for text in texts), texts
    assert images, "figures come with their picture"
    picture = Image.open(io.BytesIO(base64.b64decode(images[0].data)))
    assert picture.width > 0 and images[0].mime_type in ("image/png", "image/jpeg")
    only_text = await session.call_tool("search", {"query": "red", "modality": "text"})
    assert only_text.content and all(block.type == "text" for block in only_text.content)
    listed = await session.call_tool("list_sources", {})
    assert "report.pdf: 3 pages" in listed.content[0].text
    refused = await session.call_tool("ingest", {"paths": [str(corpus["outside"] / "secret.pdf")]})
    assert "outside the folders" in refused.content[0].text
    sneaky = str(corpus["allowed"] / ".." / "outside" / "secret.pdf")
    refused = await session.call_tool("ingest", {"paths": [sneaky]})
    assert "outside the folders" in refused.content[0].text
    done = await session.call_tool("ingest", {"paths": [str(corpus["allowed"])]})
    lines = done.content[0].text.splitlines()
    assert lines[0].endswith(": done"), lines
    assert any(line.startswith("ingested ") and line.endswith("later.pdf") for line in lines)
    assert any(line.startswith("unchanged ") and line.endswith("report.pdf") for line in lines)
    found = await session.call_tool("search", {"query": "violet umbrellas", "source": "later.pdf"})
    assert "later.pdf" in found.content[0].text
    listed = await session.call_tool("list_sources", {})
    assert "secret.pdf" not in listed.content[0].text


async def test_stdio(store: StoreSettings, tiny_checkpoint: Path, corpus: dict[str, Path]):
    env = python_env()
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "mrag",
            "mcp",
            "--model",
            str(tiny_checkpoint),
            "--dtype",
            "float32",
            "--qdrant-path",
            str(store.path),
            "--collection",
            store.collection,
            "--allow-ingest",
            str(corpus["allowed"]),
        ],
        env=env,
        cwd=str(REPO),
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await _exercise(session, corpus)


async def test_http_behind_the_api_key(
    store: StoreSettings, tiny_model: JinaClipModel, corpus: dict[str, Path]
):
    config = ServerConfig(store=store, api_key=API_KEY, allow_ingest=[corpus["allowed"].resolve()])
    with running_server(create_app(tiny_model, config)) as url:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with (
            create_mcp_http_client(headers=headers) as http,
            streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await _exercise(session, corpus)
        import httpx

        wrong = httpx.post(f"{url}/mcp", json={}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401


async def test_ingest_is_off_by_default(store: StoreSettings, tiny_model: JinaClipModel, corpus):
    with running_server(create_app(tiny_model, ServerConfig(store=store))) as url:
        async with (
            streamable_http_client(f"{url}/mcp") as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            result = await session.call_tool("ingest", {"paths": [str(corpus["allowed"])]})
            assert "ingestion is turned off" in result.content[0].text
