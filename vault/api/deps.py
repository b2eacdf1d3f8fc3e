"""Request-scoped dependencies: the caller, the audit identity, and JSON bodies."""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vault.audit.records import RequestInfo
from vault.core import Vault
from vault.services.context import Ctx, JsonBody
from vault.services.users import authenticate, cached_principal, require_signed_in

REQUEST_ID_KEY = "kinko.request_id"


class RequestIdMiddleware:
    """Gives every request an id, echoed as ``X-Request-Id`` and written into its audit event."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # 128 random bits as hex, like a UUID4 without the cost of building a UUID object (it
        # showed up in the profile of every request).
        request_id = secrets.token_hex(16)
        scope[REQUEST_ID_KEY] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


def get_vault(request: Request) -> Vault:
    vault = request.app.state.vault
    assert isinstance(vault, Vault)
    return vault


def public_base(request: Request) -> str:
    """Where links Kinko hands out point: ``KINKO_PUBLIC_URL``, else the request's origin.

    Here, beside ``get_vault``, because the API and the web pages both hand out invitation
    links and must build them alike.
    """
    configured = get_vault(request).settings.public_url
    return str(configured or str(request.base_url).rstrip("/"))


# -- headers the API reads, declared once (they appear in /openapi.json where they are read) --

DEVICE_DESCRIPTION = "A stable id of the workstation or client; recorded as `client.device`."
PURPOSE_DESCRIPTION = (
    "The business purpose of the read, percent-encoded UTF-8 (1-500 characters once decoded).  "
    "Required for non-disclosed content: 400 `purpose_required` without it."
)
DeviceHeader = Annotated[
    str | None,
    Header(alias="X-Kinko-Device", description=DEVICE_DESCRIPTION),
]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="1-200 printable ASCII characters.  A retry with the same key returns the "
        "first result and creates nothing new; the same key with another request is 422.",
    ),
]
IfMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description='The version the new one builds on, as an ETag ("3"); 412 if it is no '
        "longer the latest.",
    ),
]
TitleHeader = Annotated[
    str | None,
    Header(
        alias="X-Kinko-Title",
        description="The document title, percent-encoded UTF-8 (1-255 characters, no control "
        "characters).  Titles travel in this header, never in the URL, which proxies log.",
    ),
]


def request_info(request: Request, device: str | None = None) -> RequestInfo:
    ua = request.headers.get("user-agent")
    return RequestInfo(
        ip=request.client.host if request.client else None,
        user_agent=ua[:500] if ua else None,
        device=device[:200] if device else None,
        request_id=request.scope.get(REQUEST_ID_KEY) or secrets.token_hex(16),
    )


async def optional_ctx(request: Request, device: DeviceHeader = None) -> Ctx:
    """The caller, or anonymous; a presented but bad token is a logged 401.

    A dependency declared ``def`` would cost every request a hop to a worker thread; a token
    the cache knows needs none, so only a miss (which reads the catalog and may write an
    ``auth.fail`` event) leaves the event loop.
    """
    vault = get_vault(request)
    info = request_info(request, device)
    authorization = request.headers.get("authorization")
    principal = cached_principal(vault, authorization)
    if principal is None:
        principal = await run_in_threadpool(authenticate, vault, info, authorization)
    return Ctx(vault, principal, info)


# Declares the bearer scheme in /openapi.json on every operation that needs a caller.  The
# token itself is read by optional_ctx (whose 401 is audited); this only documents it.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="A Kinko token (`kinko_…`), minted by an admin or with `POST /api/v1/me/tokens`.",
)


async def signed_in_ctx(
    ctx: Annotated[Ctx, Depends(optional_ctx)],
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Ctx:
    if ctx.principal.anonymous:
        # The refusal is written to the audit log, which blocks: off the event loop.
        await run_in_threadpool(require_signed_in, ctx)
    return ctx


async def idempotent_ctx(
    ctx: Annotated[Ctx, Depends(signed_in_ctx)], key: IdempotencyKeyHeader = None
) -> Ctx:
    """The signed-in caller, with the ``Idempotency-Key`` of a write that accepts one."""
    return replace(ctx, idempotency_key=key)


AnyCtx = Annotated[Ctx, Depends(optional_ctx)]
UserCtx = Annotated[Ctx, Depends(signed_in_ctx)]
# Writes that take an Idempotency-Key (token creation reads it only to refuse it).
IdemCtx = Annotated[Ctx, Depends(idempotent_ctx)]


MAX_JSON_BODY = 64 * 1024
# No request of the API nests deeper than a few levels; a deeper body is refused before it can
# exhaust the parser's recursion (which would drop the connection with no audit event).
MAX_JSON_DEPTH = 32


def _too_deep(raw: bytes) -> bool:
    """Whether brackets outside strings nest deeper than MAX_JSON_DEPTH (a linear scan)."""
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


async def json_body(request: Request) -> JsonBody:
    # JSON bodies are small; reading stops at the cap so an oversized body cannot make memory
    # grow with what a client sends.
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_JSON_BODY:
        return JsonBody(None, "JSON body too large")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > MAX_JSON_BODY:
            return JsonBody(None, "JSON body too large")
    raw = bytes(buf)
    if not raw.strip():
        return JsonBody({}, None)
    # JSON exchanged between systems is UTF-8 (RFC 8259 §8.1).  json.loads would also guess
    # UTF-16/32 from the bytes, which the depth scan below (of UTF-8 bytes) cannot follow.
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return JsonBody(None, "body must be UTF-8 JSON")
    if _too_deep(raw):
        return JsonBody(None, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return JsonBody(None, "body is not valid JSON")
    if not isinstance(data, dict):
        return JsonBody(None, "body must be a JSON object")
    return JsonBody(data, None)


Body = Annotated[JsonBody, Depends(json_body)]


def body_schema(model: type[Any]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for a pydantic model, for the interactive docs."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
