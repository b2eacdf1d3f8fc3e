"""The FastAPI application: routers, error mapping, and the vault opened for its lifetime."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from anyio import CapacityLimiter
from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from vault import __version__
from vault.api import (
    audit,
    cases,
    docs,
    documents,
    errors,
    openapi,
    reviews,
    sync,
    users,
    vendors,
)
from vault.api.deps import RequestIdMiddleware
from vault.api.openapi import ErrorBody
from vault.api.schemas import Health, Readiness
from vault.core import Vault
from vault.services import passwords
from vault.services.accounts import invite_as_operator
from vault.services.health import readiness
from vault.services.outbox import Postman
from vault.services.users import bootstrap
from vault.settings import Settings
from vault.web import app as web


def create_app(settings: Settings | None = None, vault: Vault | None = None) -> FastAPI:
    """The application; ``vault``, when given, is one ``kinko serve`` opened (with
    ``server=True``) before starting, and the application closes it when it stops."""
    settings = settings or Settings()
    opened = vault  # the lifespan below names its own vault

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        live: Vault = (
            opened
            if opened is not None
            else await run_in_threadpool(Vault.open, settings, server=True)
        )
        token = await run_in_threadpool(bootstrap, live)
        if token is not None:
            # Printed once and never stored: only its hash is kept.
            print(
                f"kinko: created user 'admin'; its token (shown only now): {token}",
                file=sys.stderr,
                flush=True,
            )
            # And a way in for a person: the admin sets a password through this link.
            link = await run_in_threadpool(invite_as_operator, live, "admin", settings.link_base)
            print(
                f"kinko: to sign in on the web, open {link['url']} and set admin's password "
                f"(valid until {link['expires_at']}, once)",
                file=sys.stderr,
                flush=True,
            )
        app.state.vault = live
        await run_in_threadpool(passwords.prepare)
        # Uploads run in worker threads of their own allowance, not the shared one that every
        # other request (authentication included) needs: see vault.api.documents.
        app.state.upload_limiter = CapacityLimiter(settings.upload_concurrency)
        # Each node sends the outbox's mail and looks for overdue contact reports.
        postman = Postman(live)
        postman.start()
        try:
            yield
        finally:
            await run_in_threadpool(postman.stop)
            await run_in_threadpool(live.close)

    app = FastAPI(
        title="Kinko",
        version=__version__,
        description="Encrypted, stage-aware document vault for public procurement.",
        lifespan=lifespan,
        # /docs is served from the installed packages (vault.api.docs), never from a CDN.
        docs_url=None,
        redoc_url=None,
        # The order /docs shows the groups in, whatever order the routes are matched in.
        openapi_tags=[
            {"name": "users", "description": "Users, tokens and the caller's own account."},
            {"name": "cases", "description": "Procurement cases, members and stage changes."},
            {"name": "documents", "description": "Documents, versions and their content."},
            {"name": "reviews", "description": "Review of confidential reads (点検・確認)."},
            {
                "name": "disclosures",
                "description": "Supervisor-approved disclosure to named outsiders (情報提供).",
            },
            {"name": "contacts", "description": "The vendor-contact register (接触記録)."},
            {"name": "audit", "description": "The audit log, checkpoints and proofs."},
            {"name": "sync", "description": "The manifest workstation sync clients poll."},
            {"name": "health", "description": "Liveness."},
        ],
    )
    web.install(app)
    app.add_middleware(RequestIdMiddleware)
    errors.install(app, pages=web.error_page)

    @app.get("/healthz", tags=["health"], response_model=Health)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=Readiness,
        responses={
            503: {
                "model": ErrorBody,
                "description": "A store this node needs did not answer; `checks` names which.",
            }
        },
    )
    async def readyz(request: Request) -> Response:
        """For load balancers: 200 when the catalog, the audit store and the blob store all
        answer, else 503 naming the one that did not (``/healthz`` is the liveness check)."""
        ready, checks = await run_in_threadpool(readiness, request.app.state.vault)
        if ready:
            return Response(
                orjson.dumps({"status": "ready", "checks": checks}), media_type="application/json"
            )
        missing = ", ".join(name for name, answer in checks.items() if answer != "ok")
        body = {
            "error": {"code": "not_ready", "message": f"not ready: {missing} did not answer"},
            "checks": checks,
        }
        return Response(orjson.dumps(body), status_code=503, media_type="application/json")

    # Routes are matched in order; the document routes (content reads above all) come first.
    app.include_router(documents.router)
    app.include_router(users.router)
    app.include_router(cases.router)
    app.include_router(audit.router)
    app.include_router(reviews.router)
    app.include_router(vendors.router)
    app.include_router(sync.router)
    app.include_router(docs.router)
    openapi.install(app)
    return app
