"""Documents over HTTP: upload (ingested by a background job), list, delete; job status.

- ``POST /v1/documents``: multipart, one or more ``files``; answers 202 with the job;
- ``GET /v1/jobs/{id}``: the job's progress and each file's outcome;
- ``GET /v1/documents``: the stored sources with their counts, the model and its dtype;
- ``DELETE /v1/documents/{source}``: remove a source (by stored path or bare file name).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from mrag.server.jobs import FileState, JobRunner
from mrag.server.limits import APIError, invalid, too_large
from mrag.server.models import ServedModel
from mrag.server.shared import SharedStore
from mrag.server.uploads import UploadFolder, UploadLimits, safe_name
from mrag.store.source_names import file_name, match_sources, source_key


def documents_router(
    served: ServedModel,
    shared: SharedStore,
    folder: UploadFolder | None,
    jobs: JobRunner | None,
    limits: UploadLimits,
) -> APIRouter:
    """The upload, listing, deletion and job endpoints."""
    router = APIRouter()

    @router.post(
        "/v1/documents", summary="Upload files; a background job ingests them", status_code=202
    )
    async def upload(request: Request) -> JSONResponse:
        if folder is None or jobs is None:
            raise _uploads_off()
        await run_in_threadpool(shared.retriever)  # 503 now, not in the job, if no store
        files = await _read_files(request, limits)
        try:
            names = [safe_name(item.filename) for item in files]
            if len(set(names)) != len(names):
                raise invalid("two files of the upload have the same name", param="files")
            states = [
                await run_in_threadpool(_keep, folder, name, item)
                for name, item in zip(names, files, strict=True)
            ]
        finally:
            for item in files:
                await item.close()
        job = jobs.submit(states)
        return JSONResponse(
            job.to_dict(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"}
        )

    @router.get("/v1/jobs/{job_id}", summary="An ingestion job's progress and outcomes")
    async def job_status(job_id: str) -> dict[str, Any]:
        found = jobs.get(job_id) if jobs is not None else None
        if found is None:
            raise APIError(404, f"no job has the id {job_id!r}", code="job_not_found")
        return found

    @router.get("/v1/documents", summary="The stored sources with their counts")
    async def list_documents() -> dict[str, Any]:
        return await run_in_threadpool(describe_store, shared, served)

    @router.delete("/v1/documents/{source:path}", summary="Remove a source and all its points")
    async def delete_document(source: str) -> dict[str, Any]:
        return await run_in_threadpool(delete_source, shared, folder, source)

    return router


def _uploads_off() -> APIError:
    return APIError(
        503,
        "uploads need a store on this server",
        type="server_error",
        code="uploads_unavailable",
    )


async def _read_files(request: Request, limits: UploadLimits) -> list[UploadFile]:
    try:
        # One more than allowed, so that the count can be refused with its numbers below.
        form = await request.form(max_files=limits.max_files + 1, max_fields=16)
    except HTTPException as exc:
        if "files" in str(exc.detail).lower():
            raise too_large(
                f"the upload holds more than {limits.max_files} files; at most "
                f"{limits.max_files} are accepted",
                param="files",
                code="too_many_files",
            ) from None
        raise invalid(f"the body is not a multipart upload: {exc.detail}") from None
    files = [value for value in form.getlist("files") if isinstance(value, UploadFile)]
    if not files:
        await form.close()
        raise invalid("the upload holds no files; send them as multipart fields named 'files'")
    try:
        limits.check([(safe_name(item.filename), item.size or 0) for item in files])
    except APIError:
        await form.close()
        raise
    return files


def _keep(folder: UploadFolder, name: str, item: UploadFile) -> FileState:
    item.file.seek(0)
    path = folder.save(name, item.file)
    return FileState(name=name, source=source_key(path), bytes=item.size or 0)


def describe_store(shared: SharedStore, served: ServedModel) -> dict[str, Any]:
    """What the store holds, for the documents view and the MCP ``list_sources`` tool."""
    store = shared.store()
    exists = store.exists()
    records = store.sources() if exists else []
    model = store.model if exists else None
    precision = served.model.dtype_choice
    return {
        "object": "list",
        "store": shared.settings.describe() if shared.settings else None,
        "model": model.describe() if model else served.name,
        "dtype": precision.dtype,
        "dtype_reason": precision.reason,
        "totals": {
            "sources": len(records),
            "pages": sum(r.pages for r in records),
            "passages": sum(r.chunks for r in records),
            "images": sum(r.images for r in records),
        },
        "data": [
            {
                "object": "document",
                "source": r.source,
                "name": file_name(r.source),
                "pages": r.pages,
                "passages": r.chunks,
                "images": r.images,
                "points": r.points,
                "ingested_at": r.ingested_at,
            }
            for r in records
        ],
    }


def delete_source(shared: SharedStore, folder: UploadFolder | None, given: str) -> dict[str, Any]:
    """Remove the source ``given`` names (its stored path or bare file name), and its upload."""
    store = shared.store()
    with shared.lock:  # the match and the deletion see the same sources
        known = [record.source for record in store.sources()]
        # The server's working directory means nothing to a client: no relative paths.
        found = [source for source in known if source == given] or (
            match_sources(given, known) if "/" not in given else []
        )
        if len(found) > 1:
            raise APIError(
                409,
                f"{len(found)} stored sources have the file name {given!r}; give its path",
                code="ambiguous_source",
            )
        if not found:
            raise APIError(
                404,
                f"no stored source has the path or file name {given!r}",
                code="source_not_found",
            )
        removed = store.delete_source(found[0])
    if folder is not None:
        folder.remove(found[0])
    return {"object": "document.deleted", "source": found[0], "deleted": True, "points": removed}
