"""Interactive API documentation served entirely from the installed packages.

FastAPI's default ``/docs`` loads Swagger UI from a CDN, which shows a blank page on a closed
government network.  Here the page's script, style sheet and icon come from the
``swagger-ui-bundle`` package, and the script that starts Swagger UI is a file of ours
(``static/kinko-docs.js``).  FastAPI's ``get_swagger_ui_html`` is not used because it writes
that start-up script inline, which a Content-Security-Policy without inline script forbids.

Only the few files the page needs are served, by name, from a fixed table: the bundle's
directory also holds a demo ``index.html`` pointing at a public server, which must not be
reachable here.  Static assets are not audit events (SPEC §5).
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

from vault.errors import NotFound

router = APIRouter(include_in_schema=False)

STATIC_PREFIX = "/docs/static"
_OURS = Path(__file__).resolve().parent / "static"
_BUNDLE = Path(swagger_ui_path)

# name → (file, media type)
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui-bundle.js": (_BUNDLE / "swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": (_BUNDLE / "swagger-ui.css", "text/css; charset=utf-8"),
    "favicon-32x32.png": (_BUNDLE / "favicon-32x32.png", "image/png"),
    "kinko-docs.js": (_OURS / "kinko-docs.js", "text/javascript; charset=utf-8"),
}

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – API documentation</title>
<link rel="stylesheet" href="{static}/swagger-ui.css">
<link rel="icon" type="image/png" href="{static}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{static}/swagger-ui-bundle.js"></script>
<script src="{static}/kinko-docs.js"></script>
</body>
</html>
"""


@router.get("/docs")
def docs_page(request: Request) -> HTMLResponse:
    # Behind a proxy that mounts Kinko under a prefix, every URL of the page carries it.
    root = str(request.scope.get("root_path", "")).rstrip("/")
    html = _PAGE.format(
        title=escape(request.app.title),
        static=escape(root + STATIC_PREFIX),
        openapi=escape(root + (request.app.openapi_url or "/openapi.json")),
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


@router.api_route(STATIC_PREFIX + "/{name}", methods=["GET", "HEAD"])
def docs_asset(name: str) -> FileResponse:
    asset = ASSETS.get(name)
    if asset is None:
        raise NotFound("no such documentation asset", code="not_found")
    path, media_type = asset
    return FileResponse(
        path,
        media_type=media_type,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )
