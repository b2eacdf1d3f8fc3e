"""Document routes.  Uploads and downloads stream: memory does not grow with document size."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any
from urllib.parse import quote

import orjson
from anyio import fail_after, from_thread, to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from vault.api.deps import (
    DEVICE_DESCRIPTION,
    PURPOSE_DESCRIPTION,
    AnyCtx,
    Body,
    IdemCtx,
    IfMatchHeader,
    TitleHeader,
    UserCtx,
    body_schema,
    optional_ctx,
)
from vault.api.openapi import OPTIONAL_AUTH, answers
from vault.api.schemas import (
    DocumentAccess,
    DocumentCreated,
    DocumentList,
    DocumentMeta,
    FinalSetResult,
    PublicDocumentList,
    VersionCreated,
)
from vault.errors import BadRequest, RequestTimeout
from vault.services import access, documents
from vault.services.context import Ctx
from vault.services.documents import OpenedRead
from vault.services.schemas import FinalSet

router = APIRouter(prefix="/api/v1", tags=["documents"])

# Plaintext is handed to the encrypting worker thread in batches of about this size: large
# enough that thread hops cost nothing, small enough that memory stays flat.
UPLOAD_BATCH = 1 << 20

RAW_BODY = {
    "requestBody": {
        "required": True,
        "description": "The document content, streamed.  Its Content-Type is kept with the "
        "version and sent back on every read: one media type of at most 255 characters "
        "(400 `invalid_content_type` otherwise); none means application/octet-stream.",
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    },
}

_HEADER = {"schema": {"type": "string"}}
CONTENT_HEADERS = {
    "Content-Type": {
        "description": "The media type the version was uploaded with "
        "(application/octet-stream when none was given, or for versions stored before "
        "types were kept).",
        **_HEADER,
    },
    "Content-Disposition": {
        "description": "Always `attachment`, with an ASCII `filename` and the title as "
        "`filename*` (RFC 6266, RFC 5987).",
        **_HEADER,
    },
    "Content-Length": {"description": "The plaintext size in bytes.", **_HEADER},
    "X-Content-Type-Options": {"description": "`nosniff`", **_HEADER},
    "ETag": {"description": 'The version, quoted ("3").', **_HEADER},
    "X-Kinko-Version": {"description": "The version served.", **_HEADER},
    "X-Kinko-Sha256": {"description": "Lowercase hex SHA-256 of the plaintext.", **_HEADER},
}
# (500, added to every audited operation, includes stored content that fails authentication.)
CONTENT_ERRORS = (400, 403, 404, 410)
CONTENT_OK: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The content, streamed (HEAD: the same headers, no body).  The read's "
        "audit event (`document.read`; `document.head` for HEAD) is committed before the "
        "first byte.",
        "headers": CONTENT_HEADERS,
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    }
}
PUBLIC_CONTENT_ERRORS = (404, 410)


async def next_body_chunk(stream: AsyncIterator[bytes], idle_timeout: float) -> bytes | None:
    """The next piece of a request body, None at its end.

    A client that disconnects mid-upload becomes a 400 ``incomplete_upload``, and one that
    stops sending for ``idle_timeout`` seconds a 408 ``upload_stalled``.
    """
    try:
        with fail_after(idle_timeout):
            return await stream.__anext__()
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise RequestTimeout(
            f"the upload sent nothing for {idle_timeout:g} s", code="upload_stalled"
        ) from None
    except ClientDisconnect:
        raise BadRequest("the client disconnected mid-upload", code="incomplete_upload") from None


def stream_chunks(stream: AsyncIterator[bytes], idle_timeout: float) -> Iterator[bytes]:
    """What is left of a body stream as a blocking iterator, for a service running in a worker
    thread (see ``next_body_chunk`` for its refusals, which the service records).

    The body arrives on the event loop; each step hops to it once and brings back about
    ``UPLOAD_BATCH`` bytes, so thread hops cost nothing and memory stays flat.
    """
    done = False

    async def next_batch() -> bytes | None:
        nonlocal done
        if done:
            return None
        pending: list[bytes] = []
        size = 0
        while size < UPLOAD_BATCH:
            chunk = await next_body_chunk(stream, idle_timeout)
            if chunk is None:
                done = True
                break
            if chunk:
                pending.append(chunk)
                size += len(chunk)
        return b"".join(pending) if pending else (None if done else b"")

    while True:
        batch = from_thread.run(next_batch)
        if batch is None:
            return
        if batch:
            yield batch


def body_chunks(request: Request, idle_timeout: float) -> Iterator[bytes]:
    """The request body as a blocking iterator (see ``stream_chunks``)."""
    return stream_chunks(request.stream().__aiter__(), idle_timeout)


async def run_upload(
    request: Request,
    ctx: Ctx,
    target: documents.UploadTarget,
    chunks: Iterable[bytes] | None = None,
) -> dict[str, Any]:
    """``documents.upload`` of ``chunks`` (by default the raw request body), in a worker thread.

    The web interface's upload forms call this too, with the file part of their multipart
    body as ``chunks``.
    """
    # The upload holds its worker thread while the body arrives, however slowly the client
    # sends, so uploads take threads from their own limiter: a crowd of slow uploads queues
    # here (holding no thread) instead of starving every other request of the shared pool.
    settings = ctx.vault.settings
    if chunks is None:
        chunks = body_chunks(request, settings.upload_idle_timeout_seconds)
    result: dict[str, Any] = await to_thread.run_sync(
        documents.upload, ctx, target, chunks, limiter=request.app.state.upload_limiter
    )
    return result


@router.post(
    "/cases/{case_id}/documents",
    status_code=201,
    openapi_extra=RAW_BODY,
    **answers(DocumentCreated, 400, 403, 404, 408, 410, 422, status=201),
)
async def create_document(
    request: Request,
    ctx: IdemCtx,
    case_id: str,
    title: TitleHeader = None,
    cls: str | None = Query(None, alias="class"),
) -> dict[str, Any]:
    target = documents.NewDocument(case_id, cls, title, request.headers.get("content-type"))
    return await run_upload(request, ctx, target)


@router.put(
    "/documents/{doc_id}/content",
    status_code=201,
    openapi_extra=RAW_BODY,
    # 409: another version was written at the same moment without If-Match.
    **answers(VersionCreated, 400, 403, 404, 408, 409, 410, 412, 422, status=201),
)
async def put_content(
    request: Request, ctx: IdemCtx, doc_id: str, if_match: IfMatchHeader = None
) -> dict[str, Any]:
    target = documents.NewVersion(doc_id, if_match, request.headers.get("content-type"))
    return await run_upload(request, ctx, target)


def _json(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/cases/{case_id}/documents", **answers(DocumentList, 404, 410))
def list_documents(ctx: UserCtx, case_id: str) -> Response:
    # Sent as built, and encoded by orjson: FastAPI's encoding of a returned dict walks every
    # value of 10,000 items again in Python, and the standard encoder took a quarter of the
    # listing's time; orjson writes the same bytes in a thirtieth of it.
    return _json(documents.list_case_documents(ctx, case_id))


@router.get("/documents/{doc_id}", **answers(DocumentMeta, 403, 404, 410))
def document_metadata(ctx: UserCtx, doc_id: str) -> dict[str, Any]:
    return documents.document_metadata(ctx, doc_id)


@router.get("/documents/{doc_id}/access", **answers(DocumentAccess, 403, 404, 410))
def document_access(ctx: UserCtx, doc_id: str) -> dict[str, Any]:
    return access.document_access(ctx, doc_id)


@router.post(
    "/documents/{doc_id}/final",
    openapi_extra=body_schema(FinalSet),
    **answers(FinalSetResult, 400, 403, 404),
)
def mark_final(ctx: UserCtx, doc_id: str, body: Body) -> dict[str, Any]:
    return documents.finalize(ctx, doc_id, body)


# Characters kept in the ASCII fallback filename: nothing a shell, a path or the header's own
# quoting could read as syntax (no quotes, backslashes, slashes, semicolons or controls).
_FALLBACK_UNSAFE = re.compile(r"[^A-Za-z0-9 ._()+-]+")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}")


def ascii_filename(title: str) -> str:
    """A safe ASCII stand-in for the title, for clients that ignore ``filename*``.

    Accents are dropped (é → e), anything else outside the kept set becomes ``_``, and a
    title with nothing readable left (most Japanese titles) becomes ``document`` with the
    title's extension, so ``仕様書（案）.docx`` is saved as ``document.docx``, never as a
    name of underscores or as a path.
    """
    stem, ext = title, ""
    dot = title.rfind(".")
    if dot > 0 and _EXTENSION.fullmatch(title[dot:]):
        stem, ext = title[:dot], title[dot:]
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    ascii_stem = _FALLBACK_UNSAFE.sub("_", ascii_stem)
    ascii_stem = re.sub(r"_{2,}", "_", re.sub(r" {2,}", " ", ascii_stem))
    ascii_stem = ascii_stem.strip(" ._")[:120].strip(" ._")
    if not any(ch.isalnum() for ch in ascii_stem):
        ascii_stem = "document"
    return ascii_stem + ext


def content_disposition(title: str) -> str:
    """``attachment`` with both filenames (RFC 6266 §4.3, RFC 5987 ``filename*``).

    Always an attachment: a stored HTML or SVG document must never render as a page on
    Kinko's origin, where its scripts would run with the reader's session.
    """
    encoded = quote(title, safe="")
    return f"attachment; filename=\"{ascii_filename(title)}\"; filename*=UTF-8''{encoded}"


def _content_headers(opened: OpenedRead) -> dict[str, str]:
    return {
        # The media type the version was uploaded with, set as a raw header: Starlette's
        # media_type would append "; charset=utf-8" to a text/* type that names none, and a
        # Shift_JIS text file would then be declared as UTF-8.
        "Content-Type": opened.content_type,
        "Content-Disposition": content_disposition(opened.title),
        # Browsers must take Content-Type as sent, never sniff HTML out of the bytes; and
        # should one render the bytes anyway, the policy lets it load and run nothing.
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "ETag": f'"{opened.version}"',
        "X-Kinko-Version": str(opened.version),
        "X-Kinko-Sha256": opened.sha256,
        "Content-Length": str(opened.size),
        "Cache-Control": "no-store",
    }


class PiecesResponse(Response):
    """A body already in memory, sent piece by piece from the event loop.

    The whole (small) document was verified and decrypted before the audit event was written;
    sending its segments as they are spares both the per-chunk thread hops of a stream and
    copying a megabyte into one string first.
    """

    def __init__(self, pieces: list[bytes], headers: dict[str, str]) -> None:
        super().__init__(None, headers=headers)
        self.pieces = [p for p in pieces if p]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        last = len(self.pieces) - 1
        for i, piece in enumerate(self.pieces):
            await send({"type": "http.response.body", "body": piece, "more_body": i < last})
        if last < 0:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def content_response(opened: OpenedRead) -> Response:
    """The answer to an opened read: its headers, then its bytes (streamed when large).

    The web interface's download form answers with it too, so a page download and an API
    read send the same headers (``attachment``, the sandbox policy, ``nosniff``...)."""
    headers = _content_headers(opened)
    if sum(len(p) for p in opened.first) == opened.size:
        opened.rest.close()
        if len(opened.first) == 1:
            return Response(opened.first[0], headers=headers)
        return PiecesResponse(opened.first, headers)

    def body() -> Iterator[bytes]:
        for piece in opened.first:
            if piece:
                yield piece
        yield from opened.rest

    return StreamingResponse(body(), headers=headers)


def _head_response(opened: OpenedRead) -> Response:
    """What GET would answer, headers and all (Content-Length included), without the body."""
    opened.rest.close()
    return Response(status_code=200, headers=_content_headers(opened))


# The content routes are the hot path of the whole server, so they read their few parameters
# themselves: FastAPI's per-parameter dependency solving cost more per 4 KiB read than the
# catalog lookup did.  The parameters are still declared in /openapi.json, from these tables.
_DEVICE_PARAM = {
    "name": "X-Kinko-Device",
    "in": "header",
    "required": False,
    "description": DEVICE_DESCRIPTION,
    "schema": {"type": "string"},
}
CONTENT_PARAMS: dict[str, Any] = {
    "parameters": [
        {
            "name": "version",
            "in": "query",
            "required": False,
            "description": "A version number; the latest (rule 1) or the final one (rule 2) "
            "when absent.",
            "schema": {"type": "string"},
        },
        {
            "name": "X-Access-Purpose",
            "in": "header",
            "required": False,
            "description": PURPOSE_DESCRIPTION,
            "schema": {"type": "string"},
        },
        _DEVICE_PARAM,
    ],
    **OPTIONAL_AUTH,
}
PUBLIC_CONTENT_PARAMS: dict[str, Any] = {"parameters": [_DEVICE_PARAM]}


async def _content_request(request: Request) -> tuple[Ctx, str | None, str | None]:
    """The caller (as ``optional_ctx`` resolves it), ``version`` and the purpose header."""
    ctx = await optional_ctx(request, request.headers.get("x-kinko-device"))
    return ctx, request.query_params.get("version"), request.headers.get("x-access-purpose")


@router.get(
    "/documents/{doc_id}/content",
    openapi_extra=CONTENT_PARAMS,
    response_class=Response,
    **answers(None, *CONTENT_ERRORS, extra=CONTENT_OK),
)
async def get_content(request: Request, doc_id: str) -> Response:
    ctx, version, purpose = await _content_request(request)
    opened = await run_in_threadpool(documents.read, ctx, doc_id, version, purpose)
    return content_response(opened)


@router.head(
    "/documents/{doc_id}/content",
    openapi_extra=CONTENT_PARAMS,
    response_class=Response,
    **answers(None, *CONTENT_ERRORS, extra=CONTENT_OK),
)
async def head_content(request: Request, doc_id: str) -> Response:
    ctx, version, purpose = await _content_request(request)
    opened = await run_in_threadpool(documents.read, ctx, doc_id, version, purpose, head=True)
    return _head_response(opened)


@router.get("/public/documents", **answers(PublicDocumentList))
def public_documents(ctx: AnyCtx) -> Response:
    return _json(documents.list_public_documents(ctx))


@router.get(
    "/public/documents/{doc_id}/content",
    openapi_extra=PUBLIC_CONTENT_PARAMS,
    response_class=Response,
    **answers(None, *PUBLIC_CONTENT_ERRORS, extra=CONTENT_OK),
)
async def public_content(request: Request, doc_id: str) -> Response:
    ctx, _, _ = await _content_request(request)
    opened = await run_in_threadpool(documents.read_public, ctx, doc_id)
    return content_response(opened)


@router.head(
    "/public/documents/{doc_id}/content",
    openapi_extra=PUBLIC_CONTENT_PARAMS,
    response_class=Response,
    **answers(None, *PUBLIC_CONTENT_ERRORS, extra=CONTENT_OK),
)
async def head_public_content(request: Request, doc_id: str) -> Response:
    ctx, _, _ = await _content_request(request)
    opened = await run_in_threadpool(documents.read_public, ctx, doc_id, head=True)
    return _head_response(opened)
