"""The MCP server: mrag's search, source list and (opt-in) ingestion as tools for agents.

Built with the official ``mcp`` SDK. ``python -m mrag mcp`` runs it over stdio on its own store;
``mrag serve`` mounts the same tools at ``/mcp`` (streamable HTTP, behind the server's API key)
on the server's open store. Several MCP clients drop image content from tool results, so each
hit's text block also says where the picture comes from (file, page, source path).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ImageContent, TextContent
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute

from mrag.retrieval.messages import DEFAULT_MAX_BYTES, DEFAULT_MAX_SIDE, shrink_image
from mrag.server.config import MODEL_FAMILY_NAME
from mrag.server.documents import describe_store
from mrag.server.jobs import JobRunner
from mrag.server.models import ServedModel
from mrag.server.shared import SharedStore

#: Most hits one ``search`` call returns.
MAX_K = 50

_SEARCH = (
    "Search the user's indexed documents (PDFs, office files, web pages, images) for passages "
    "and figures relevant to a question. Use it before answering anything that may depend on "
    "the user's own documents. Text and pictures share one ranked list: each hit gives the "
    "file name, page, score and the passage text (or a figure's caption), and figures or tables "
    "also come with their picture. Filters: modality 'text' or 'image' for only passages or "
    "only pictures; source, a file name or stored path from list_sources; element 'text', "
    "'table', 'figure' or 'page'. Cite hits by file name and page."
)
_LIST = (
    "List the documents in the index, with their pages, passages and pictures, and the model "
    "that indexed them. Use it to learn what can be searched or to get a source name for the "
    "search tool's source filter."
)
_INGEST = (
    "Add files or folders to the index so that search can find them. Only paths inside the "
    "folders the operator allowed are accepted; anything else is refused. Unchanged files are "
    "skipped, so calling it again is safe. Returns each file's outcome (ingested, unchanged, "
    "skipped or failed, with the reason)."
)


@dataclass
class MCPBackend:
    """What the tools work on: the open store, the job runner, the allowed folders."""

    shared: SharedStore
    jobs: JobRunner | None
    allow_ingest: list[Path] = field(default_factory=list)
    max_side: int = DEFAULT_MAX_SIDE
    max_bytes: int = DEFAULT_MAX_BYTES

    def search(self, query: str, k: int, conditions: dict[str, str]) -> list[Any]:
        """Ranked documents for a text query; the embedding is computed outside the store lock."""
        retriever = self.shared.retriever()
        vector = retriever.embeddings.embed_query(query)
        with self.shared.lock:
            return retriever.search_by_vector(vector, text=query, k=k, filter=conditions or None)

    def allowed(self, path: str) -> Path | None:
        """``path`` resolved, when it lies inside an allowed folder; else None."""
        resolved = Path(path).expanduser().resolve()
        for folder in self.allow_ingest:
            if resolved == folder or folder in resolved.parents:
                return resolved
        return None


def hit_blocks(document: Any, number: int, backend: MCPBackend) -> list[TextContent | ImageContent]:
    """One hit as a text block, plus an image block for a figure or table."""
    metadata = document.metadata
    name = metadata.get("file_name") or Path(str(metadata.get("source") or "?")).name
    page = metadata.get("page")
    element = metadata.get("element") or (
        "figure" if metadata.get("modality") == "image" else "text"
    )
    where = f"{name}, page {page}" if page is not None else str(name)
    score = metadata.get("score")
    score_text = f"{score:.3f}" if isinstance(score, int | float) else "?"
    body = (document.page_content or "").strip() or "(no caption)"
    label = "caption" if metadata.get("modality") == "image" else "passage"
    lines = [
        f"[{number}] {where} ({element}, score {score_text})",
        f"source: {metadata.get('source')}",
        f"{label}: {body}",
    ]
    blocks: list[TextContent | ImageContent] = []
    image = _image_block(metadata, backend) if metadata.get("modality") == "image" else None
    if image is not None:
        lines.append(f"picture: the image after this block ({image.mime_type})")
    elif metadata.get("modality") == "image":
        lines.append("picture: not attached (it could not be re-encoded within the size cap)")
    blocks.append(TextContent(type="text", text="\n".join(lines)))
    if image is not None:
        blocks.append(image)
    return blocks


def _image_block(metadata: dict[str, Any], backend: MCPBackend) -> ImageContent | None:
    encoded = metadata.get("image_base64")
    if not encoded:
        return None
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    shrunk = shrink_image(raw, max_side=backend.max_side, max_bytes=backend.max_bytes)
    if shrunk is None:
        return None
    mime_type, data = shrunk
    return ImageContent(
        type="image", data=base64.b64encode(data).decode("ascii"), mime_type=mime_type
    )


def _conditions(modality: str, source: str | None, element: str | None) -> dict[str, str]:
    conditions = {"modality": modality} if modality in ("text", "image") else {}
    if source:
        conditions["source"] = source
    if element:
        conditions["element"] = element
    return conditions


def build_mcp(backend: MCPBackend, describe: Any) -> MCPServer:
    """The MCP server with its tools; ``describe()`` gives what ``list_sources`` reports."""
    server = MCPServer(
        name="mrag",
        instructions="Search the user's documents (passages and figures) indexed by mrag.",
        log_level="WARNING",
    )

    @server.tool(description=_SEARCH)
    async def search(
        query: str,
        k: int = 8,
        modality: Literal["any", "text", "image"] = "any",
        source: str | None = None,
        element: Literal["text", "table", "figure", "page"] | None = None,
    ) -> list[TextContent | ImageContent]:
        if not query.strip():
            return [TextContent(type="text", text="error: the query is empty")]
        k = max(1, min(int(k), MAX_K))
        found = await run_in_threadpool(
            backend.search, query, k, _conditions(modality, source, element)
        )
        if not found:
            return [TextContent(type="text", text="No documents match this query and filter.")]
        blocks: list[TextContent | ImageContent] = []
        for number, document in enumerate(found, start=1):
            blocks.extend(await run_in_threadpool(hit_blocks, document, number, backend))
        return blocks

    @server.tool(description=_LIST)
    async def list_sources() -> str:
        info = await run_in_threadpool(describe)
        lines = [
            f"model: {info['model']} ({info['dtype']})",
            f"sources: {info['totals']['sources']}",
        ]
        for item in info["data"]:
            lines.append(
                f"- {item['name']}: {item['pages']} pages, {item['passages']} passages, "
                f"{item['images']} pictures (source: {item['source']})"
            )
        return "\n".join(lines)

    @server.tool(description=_INGEST)
    async def ingest(paths: list[str]) -> str:
        return await _ingest(backend, paths)

    return server


async def _ingest(backend: MCPBackend, paths: list[str]) -> str:
    if not backend.allow_ingest or backend.jobs is None:
        return (
            "error: ingestion is turned off on this server "
            "(the operator allows it with --allow-ingest DIR)"
        )
    resolved = []
    for given in paths:
        path = backend.allowed(given)
        if path is None:
            return (
                f"error: {given} is outside the folders this server may ingest; "
                "nothing was ingested"
            )
        if not path.exists():
            return f"error: {given} does not exist; nothing was ingested"
        resolved.append(str(path))
    if not resolved:
        return "error: no paths given"
    job = backend.jobs.submit([], folders=resolved)
    final = await backend.jobs.wait(job.id) or {}
    lines = [f"job {job.id}: {final.get('status')}"]
    if final.get("error"):
        lines.append(f"error: {final['error']}")
    for item in final.get("files", []):
        reason = f": {item['reason']}" if item.get("reason") else ""
        lines.append(f"{item['status']} {item['name']}{reason}")
    return "\n".join(lines)


def http_routes(server: MCPServer, host: str) -> list[BaseRoute]:
    """The streamable HTTP endpoint at ``/mcp``, to add to the main application.

    Stateless with JSON responses: every request stands alone, so nothing is lost when a
    client reconnects. The caller runs ``server.session_manager.run()`` in its lifespan.
    """
    local = host in ("127.0.0.1", "localhost", "::1")
    security = TransportSecuritySettings(
        # Against DNS rebinding: a loopback server answers only to loopback host names.
        enable_dns_rebinding_protection=local,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )
    app = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        transport_security=security,
        host=host,
    )
    return list(app.routes)


def run_stdio(model: Any, settings: Any, allow_ingest: list[Path]) -> None:
    """Serve the tools on stdin/stdout over the store of ``settings`` until the client leaves."""
    shared = SharedStore(settings, model)
    shared.retriever()  # a store that cannot be opened stops here, before the client waits
    jobs = (
        JobRunner(shared, model, Path(settings.path) / "uploads" / ".jobs")
        if settings.path
        else None
    )
    served = ServedModel(model, [MODEL_FAMILY_NAME])
    server = build_mcp(
        MCPBackend(shared, jobs, allow_ingest), lambda: describe_store(shared, served)
    )
    if jobs is not None:
        jobs.start()
    try:
        server.run("stdio")
    finally:
        if jobs is not None:
            jobs.close()
        shared.close()
