"""Every error leaves the API as ``{"error": {"code", "message"}}`` with a matching status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from vault.errors import KinkoError
from vault.services.errors import translate


def error_response(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _status_code_name(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


PageRenderer = Callable[[Request, KinkoError], Awaitable[Response]]


def install(app: FastAPI, pages: PageRenderer | None = None) -> None:
    """The error handlers; ``pages`` renders refusals of ``/ui/`` requests as pages."""

    @app.exception_handler(KinkoError)
    async def _kinko(req: Request, exc: KinkoError) -> Response:
        if pages is not None and req.url.path.startswith("/ui/"):
            return await pages(req, exc)
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else _status_code_name(exc.status_code)
        resp = error_response(exc.status_code, _status_code_name(exc.status_code), message)
        if exc.headers:
            resp.headers.update(exc.headers)
        return resp

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{loc}: {err.get('msg')}")
        return error_response(422, "validation_error", "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def _unexpected(req: Request, exc: Exception) -> Response:
        # What no audit scope saw (authentication of the bearer token, say) goes through the
        # same map as the services' failures: an unreachable catalog is a 503 outage, not a
        # bug; anything else is logged and answered as a plain 500.
        err = translate(exc)
        if pages is not None and req.url.path.startswith("/ui/"):
            return await pages(req, err)
        return error_response(err.status, err.code, err.message)
