"""Mounts the web interface on the application: pages, static files, security headers."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vault.errors import KinkoError, NotFound
from vault.services.accounts import INVITATION_PATH
from vault.services.disclosures import SHARE_PATH
from vault.web.pages import (
    audit_pages,
    auth,
    case_pages,
    cases,
    public_pages,
    review_pages,
    share_pages,
    user_pages,
    vendor_pages,
)
from vault.web.ui import SignInRequired, page_ui, sign_in_location

STATIC = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}

# No inline script or style anywhere: every script and style sheet is a file served below.
# The rest narrows what an injected tag could do even if escaping ever failed.
UI_CSP = (
    "default-src 'self'; base-uri 'none'; object-src 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# Swagger UI shows a few icons as data: images.
DOCS_CSP = UI_CSP + "; img-src 'self' data:"

_PAGE_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # Invitation links carry their secret in the path: never send it on as a Referer.
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class PageHeadersMiddleware:
    """Security headers on every page of the interface and of ``/docs``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == "/" or path.startswith(("/ui", "/docs", SHARE_PATH)):
            csp = DOCS_CSP if path.startswith("/docs") else UI_CSP

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = list(message.get("headers", []))
                    present = {k.lower() for k, _ in headers}
                    if b"content-security-policy" not in present:
                        headers.append((b"content-security-policy", csp.encode()))
                    headers += [h for h in _PAGE_HEADERS if h[0] not in present]
                    if b"cache-control" not in present and not path.startswith("/ui/static"):
                        # Pages show confidential metadata: no shared or back-button cache.
                        headers.append((b"cache-control", b"no-store"))
                    message["headers"] = headers
                await send(message)

            await self.app(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send)


static_router = APIRouter(include_in_schema=False)


@static_router.api_route("/ui/static/{name}", methods=["GET", "HEAD"])
def static_file(name: str) -> FileResponse:
    # Only plain names of files in the folder: no sub-path can reach anything else.
    path = STATIC / name
    media_type = STATIC_TYPES.get(path.suffix)
    if "/" in name or "\\" in name or name.startswith(".") or media_type is None:
        raise NotFound("no such file", code="not_found")
    if not path.is_file():
        raise NotFound("no such file", code="not_found")
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})


root_router = APIRouter(include_in_schema=False)


@root_router.get("/")
def root(request: Request) -> RedirectResponse:
    prefix = str(request.scope.get("root_path", "")).rstrip("/")
    return RedirectResponse(prefix + "/ui/", status_code=307)


async def error_page(request: Request, exc: KinkoError) -> Response:
    """A refusal on a page, as a page in the reader's language (the API answers JSON)."""
    # The request's own Ui when its dependency already resolved it (the usual case), else a
    # fresh one (a refusal raised before the page's dependencies ran).
    ui = getattr(request.state, "kinko_ui", None) or await page_ui(request)
    # Rendered in a worker thread: the menu of a signed-in page asks the catalog.
    return await ui.page("error.html", status=exc.status, message=ui.error_text(exc), code=exc.code)


class RedactInvitationLinks(logging.Filter):
    """Keeps the secret of invitation links out of the access log.

    An invitation link is a credential until it is used; whoever can read the server's log
    must not be able to use one before its user does.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = args[2]
            for secret_path in (INVITATION_PATH, SHARE_PATH):
                if path.startswith(secret_path) and len(path) > len(secret_path):
                    record.args = (*args[:2], secret_path + "…", *args[3:])
        return True


def install(app: FastAPI) -> None:
    app.add_middleware(PageHeadersMiddleware)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _exc: SignInRequired) -> Response:
        prefix = str(request.scope.get("root_path", "")).rstrip("/")
        target = prefix + sign_in_location(request)
        if request.headers.get("hx-request") == "true":
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    app.include_router(static_router)
    app.include_router(root_router)
    for module in (
        auth,
        cases,
        case_pages,
        user_pages,
        public_pages,
        review_pages,
        audit_pages,
        share_pages,
        vendor_pages,
    ):
        app.include_router(module.router)
