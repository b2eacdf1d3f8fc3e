"""The recipient's side of a disclosure: ``/s/<token>`` (issue 12).

``GET`` shows a small page in Japanese and English with the title, the sender and the expiry,
and consumes nothing: mail scanners that follow links must not use up a download.  ``POST``
with an empty body is the download; the token in the path is the credential, so there is no
CSRF token (a recipient has no session).  Every answer is logged by the disclosure service.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from vault.api.deps import get_vault, request_info
from vault.api.documents import content_response
from vault.errors import KinkoError
from vault.services import disclosures
from vault.web.labels import local_time
from vault.web.ui import ENVIRONMENTS

router = APIRouter(include_in_schema=False)

# (heading ja, heading en, text ja, text en) for each refusal a recipient can meet.
_REFUSALS: dict[str, tuple[str, str, str, str]] = {
    "disclosure_not_found": (
        "リンクが見つかりません",
        "Link not found",
        "このリンクは存在しないか、正しくコピーされていません。",
        "This link does not exist, or it was not copied in full.",
    ),
    "disclosure_expired": (
        "リンクの有効期限が切れています",
        "The link has expired",
        "このリンクの有効期限は過ぎています。",
        "This link is past its expiry.",
    ),
    "disclosure_revoked": (
        "リンクは取り消されました",
        "The link was revoked",
        "送付元がこのリンクを取り消しました。",
        "The sender revoked this link.",
    ),
    "disclosure_used_up": (
        "ダウンロード回数の上限に達しました",
        "No downloads left",
        "このリンクは、許された回数だけ使われました。",
        "This link has been used as often as it allows.",
    ),
    "contact_prohibited": (
        "このリンクは使えなくなりました",
        "The link no longer works",
        "調達手続が進んだため、このリンクは使えなくなりました。",
        "The procurement has moved on, so this link no longer works.",
    ),
    "too_many_attempts": (
        "しばらくしてからお試しください",
        "Please try again later",
        "この接続元から無効なリンクが多数開かれました。",
        "Too many unknown links were opened from this address.",
    ),
}
_FALLBACK = (
    "ただいまご利用いただけません",
    "Not available right now",
    "しばらくしてから、もう一度お試しください。",
    "Please try again in a little while.",
)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _refused(request: Request, exc: KinkoError) -> HTMLResponse:
    heading_ja, heading_en, message_ja, message_en = _REFUSALS.get(exc.code, _FALLBACK)
    html = (
        ENVIRONMENTS["ja"]
        .get_template("share.html")
        .render(
            root=_root(request),
            share=None,
            heading_ja=heading_ja,
            heading_en=heading_en,
            message_ja=message_ja,
            message_en=message_en,
        )
    )
    return HTMLResponse(html, status_code=exc.status)


@router.get("/s/{token}")
async def landing(request: Request, token: str) -> Response:
    vault = get_vault(request)
    try:
        share = await run_in_threadpool(disclosures.landing, vault, request_info(request), token)
    except KinkoError as exc:
        return _refused(request, exc)
    html = (
        ENVIRONMENTS["ja"]
        .get_template("share.html")
        .render(
            root=_root(request),
            share=share,
            token=token,
            expires=local_time(share.expires_at, ZoneInfo(vault.settings.timezone), True),
        )
    )
    return HTMLResponse(html)


@router.post("/s/{token}")
async def download(request: Request, token: str) -> Response:
    vault = get_vault(request)
    try:
        share = await run_in_threadpool(disclosures.download, vault, request_info(request), token)
    except KinkoError as exc:
        return _refused(request, exc)
    assert share.opened is not None
    response = content_response(share.opened)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response
