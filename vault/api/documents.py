"""Document routes.  Uploads and downloads stream: memory does not grow with document size."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from vault.api.deps import AnyCtx, Body, UserCtx, body_schema
from vault.api.schemas import DocumentList, FinalSet
from vault.audit.scope import AuditScope
from vault.errors import BadRequest
from vault.services import documents, idempotency
from vault.services.context import Ctx
from vault.services.documents import (
    EncryptingSink,
    OpenedRead,
    WritePlan,
    parse_if_match,
)

router = APIRouter(prefix="/api/v1", tags=["documents"])

# Plaintext is handed to the encrypting worker thread in batches of about this size: large
# enough that thread hops cost nothing, small enough that memory stays flat.
UPLOAD_BATCH = 1 << 20

T = TypeVar("T")

RAW_BODY = {
    "requestBody": {
        "required": True,
        "description": "The document content, any Content-Type, streamed.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
    "parameters": [
        {
            "name": "X-Kinko-Title",
            "in": "header",
            "required": False,
            "description": "Percent-encoded UTF-8 title (required when creating a document).",
            "schema": {"type": "string"},
        },
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
        },
    ],
}

CONTENT_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The document content (raw bytes); ETag is the version.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


async def _audited(ev: AuditScope, fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async handler body; any failure is recorded in the audit log, then re-raised."""
    try:
        return await fn()
    except Exception as exc:
        failure: Exception = exc
        if isinstance(exc, ClientDisconnect):
            failure = BadRequest("the client disconnected mid-upload", code="incomplete_upload")
        # ev.fail writes the refusal and always raises the error to answer with; the bare
        # raise below is never reached and only tells the type checker so.
        await run_in_threadpool(ev.fail, failure)
        raise


async def _receive(request: Request, ctx: Ctx, plan: WritePlan) -> tuple[str, int, str]:
    writer = ctx.vault.blobs.writer()
    sink = EncryptingSink(plan, writer)
    pending: list[bytes] = []
    pending_len = 0
    try:
        async for chunk in request.stream():
            if not chunk:
                continue
            pending.append(chunk)
            pending_len += len(chunk)
            if pending_len >= UPLOAD_BATCH:
                data = b"".join(pending)
                pending.clear()
                pending_len = 0
                await run_in_threadpool(sink.write, data)
        if pending:
            await run_in_threadpool(sink.write, b"".join(pending))
        name = await run_in_threadpool(sink.finish)
    except BaseException:
        writer.abort()
        raise
    return name, sink.size, sink.sha.hexdigest()


@router.post(
    "/cases/{case_id}/documents",
    status_code=201,
    openapi_extra=RAW_BODY,
)
async def create_document(
    request: Request,
    ctx: UserCtx,
    case_id: str,
    cls: str | None = Query(None, alias="class"),
) -> dict[str, Any]:
    ev = ctx.scope("document.create", case_id=case_id)

    async def run() -> dict[str, Any]:
        idem = idempotency.parse_key(ctx.idempotency_key)
        plan = await run_in_threadpool(
            documents.plan_create,
            ctx,
            ev,
            case_id,
            cls,
            request.headers.get("x-kinko-title"),
            idem,
        )
        if plan.replay is not None:
            await run_in_threadpool(ev.allow, "idempotent_replay")
            return plan.replay
        name, size, digest = await _receive(request, ctx, plan)
        return await run_in_threadpool(documents.commit_write, ctx, ev, plan, name, size, digest)

    return await _audited(ev, run)


@router.put("/documents/{doc_id}/content", status_code=201, openapi_extra=RAW_BODY)
async def put_content(request: Request, ctx: UserCtx, doc_id: str) -> dict[str, Any]:
    ev = ctx.scope("document.write", document_id=doc_id)

    async def run() -> dict[str, Any]:
        if_match = parse_if_match(request.headers.get("if-match"))
        idem = idempotency.parse_key(ctx.idempotency_key)
        plan = await run_in_threadpool(documents.plan_version, ctx, ev, doc_id, if_match, idem)
        if plan.replay is not None:
            await run_in_threadpool(ev.allow, "idempotent_replay")
            return plan.replay
        name, size, digest = await _receive(request, ctx, plan)
        return await run_in_threadpool(documents.commit_write, ctx, ev, plan, name, size, digest)

    return await _audited(ev, run)


@router.get("/cases/{case_id}/documents", response_model=DocumentList, response_model_by_alias=True)
def list_documents(ctx: UserCtx, case_id: str) -> dict[str, Any]:
    return documents.list_case_documents(ctx, case_id)


@router.get("/documents/{doc_id}")
def document_metadata(ctx: UserCtx, doc_id: str) -> dict[str, Any]:
    return documents.document_metadata(ctx, doc_id)


@router.post("/documents/{doc_id}/final", openapi_extra=body_schema(FinalSet))
def mark_final(ctx: UserCtx, doc_id: str, body: Body) -> dict[str, Any]:
    return documents.finalize(ctx, doc_id, body)


def _parse_version(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise BadRequest("version must be a positive integer", code="invalid_version")
    return int(raw)


def _content_response(opened: OpenedRead) -> Response:
    headers = {
        "ETag": f'"{opened.version}"',
        "X-Kinko-Version": str(opened.version),
        "X-Kinko-Sha256": opened.sha256,
        "Cache-Control": "no-store",
    }
    if len(opened.first) == opened.size:
        # The whole (small) document was verified and decrypted before the audit event was
        # written; answering in one piece spares the per-chunk thread hops of a stream.
        opened.rest.close()
        return Response(opened.first, media_type="application/octet-stream", headers=headers)

    def body() -> Iterator[bytes]:
        if opened.first:
            yield opened.first
        yield from opened.rest

    headers["Content-Length"] = str(opened.size)
    return StreamingResponse(body(), media_type="application/octet-stream", headers=headers)


@router.get("/documents/{doc_id}/content", responses=CONTENT_RESPONSE)
async def get_content(
    request: Request, ctx: AnyCtx, doc_id: str, version: str | None = None
) -> Response:
    ev = ctx.scope("document.read", document_id=doc_id)

    async def run() -> Response:
        v = _parse_version(version)
        opened = await run_in_threadpool(
            documents.open_read,
            ctx,
            ev,
            doc_id,
            v,
            request.headers.get("x-access-purpose"),
            public=False,
        )
        return _content_response(opened)

    return await _audited(ev, run)


@router.get("/public/documents", response_model=DocumentList, response_model_by_alias=True)
def public_documents(ctx: AnyCtx) -> dict[str, Any]:
    return documents.list_public_documents(ctx)


@router.get("/public/documents/{doc_id}/content", responses=CONTENT_RESPONSE)
async def public_content(request: Request, ctx: AnyCtx, doc_id: str) -> Response:
    ev = ctx.scope("document.read", document_id=doc_id)

    async def run() -> Response:
        opened = await run_in_threadpool(
            documents.open_read,
            ctx,
            ev,
            doc_id,
            None,
            request.headers.get("x-access-purpose"),
            public=True,
        )
        return _content_response(opened)

    return await _audited(ev, run)
