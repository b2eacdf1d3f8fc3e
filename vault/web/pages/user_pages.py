"""The administrator's Users pages and everyone's My account page.

Every decision is the services' own: a non-admin who opens /ui/users is refused by
``users.list_users`` (403, logged), not by this module, so the page and the API refuse alike.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response

from vault.api.deps import public_base
from vault.errors import KinkoError
from vault.services import accounts, users
from vault.services.context import JsonBody
from vault.web.i18n import N_
from vault.web.ui import MemberUi, Ui

router = APIRouter(prefix="/ui", include_in_schema=False)

# The global roles an administrator can give on the create form, in the order shown.
GLOBAL_ROLES = ("admin", "auditor", "procurement")
DAY = 24 * 3600

# On the admin's pages a refusal sometimes means something else than at sign-in, where the
# same code must not tell a stranger that the account exists.
ADMIN_TEXTS = {
    "user_disabled": N_("The user is disabled. Enable them first."),
}


def _user_path(name: str) -> str:
    return "/ui/users/" + quote(name, safe="")


def _admin_error(ui: Ui, exc: KinkoError) -> str:
    known = ADMIN_TEXTS.get(exc.code)
    return ui._(known) if known is not None else ui.error_text(exc)


# -- Users (admin) ---------------------------------------------------------------------------


@router.get("/users")
async def user_list(ui: MemberUi) -> Response:
    listed = await ui.call(users.list_users, ui.ctx)
    return await ui.page(
        "users.html", nav="users", users=listed["users"], roles=GLOBAL_ROLES, error=None, form={}
    )


@router.post("/users")
async def create_user(ui: MemberUi) -> Response:
    form = await ui.form()
    name = form.get("name", "").strip()
    display_name = form.get("display_name", "").strip() or None
    email = form.get("email", "").strip() or None
    # One checkbox per role, each with its own field name: the form parser keeps the first
    # value of a repeated field only.
    chosen = [r for r in GLOBAL_ROLES if form.get("role_" + r)]
    body = JsonBody(
        {"name": name, "display_name": display_name, "email": email, "roles": chosen}, None
    )
    try:
        await ui.call(users.create_user, ui.ctx, body)
    except KinkoError as exc:
        # A refusal of the caller (403) is the error page, like the list's; a bad entry is
        # the form again with what was typed.
        if exc.status == 403:
            raise
        listed = await ui.call(users.list_users, ui.ctx)
        return await ui.page(
            "users.html",
            status=exc.status,
            nav="users",
            users=listed["users"],
            roles=GLOBAL_ROLES,
            error=ui.error_text(exc),
            form=form,
        )
    return ui.redirect(_user_path(name))


async def _user_page(
    ui: Ui,
    name: str,
    status: int = 200,
    error: str | None = None,
    invitation: dict[str, Any] | None = None,
) -> Response:
    user = await ui.call(users.get_user, ui.ctx, name)
    tokens = await ui.call(users.list_user_tokens, ui.ctx, name)
    return await ui.page(
        "user.html",
        status=status,
        nav="users",
        user=user,
        tokens=tokens["tokens"],
        user_path=_user_path(name),
        error=error,
        invitation=invitation,
    )


@router.get("/users/{name}")
async def user_detail(ui: MemberUi, name: str) -> Response:
    return await _user_page(ui, name)


@router.post("/users/{name}/edit")
async def edit_user(ui: MemberUi, name: str) -> Response:
    """The display name and e-mail address, through the service of PATCH /api/v1/users."""
    form = await ui.form()
    body = JsonBody(
        {
            "display_name": form.get("display_name", "").strip() or None,
            "email": form.get("email", "").strip() or None,
        },
        None,
    )
    try:
        await ui.call(users.update_user, ui.ctx, name, body)
    except KinkoError as exc:
        if exc.status in (403, 404):
            raise
        return await _user_page(ui, name, exc.status, error=_admin_error(ui, exc))
    return ui.redirect(_user_path(name))


@router.post("/users/{name}/invite")
async def invite_user(ui: MemberUi, name: str) -> Response:
    await ui.form()
    try:
        invitation = await ui.call(accounts.invite, ui.ctx, name, public_base(ui.request))
    except KinkoError as exc:
        if exc.status in (403, 404):
            raise
        return await _user_page(ui, name, exc.status, error=_admin_error(ui, exc))
    # Answered with the page itself, not a redirect: the link exists only in this answer
    # (only its hash is kept), so it is shown once and never again.
    return await _user_page(ui, name, invitation=invitation)


@router.post("/users/{name}/disable")
async def disable_user(ui: MemberUi, name: str) -> Response:
    await ui.form()
    try:
        await ui.call(users.disable_user, ui.ctx, name)
    except KinkoError as exc:
        if exc.status in (403, 404):
            raise
        return await _user_page(ui, name, exc.status, error=_admin_error(ui, exc))
    return ui.redirect(_user_path(name))


@router.post("/users/{name}/enable")
async def enable_user(ui: MemberUi, name: str) -> Response:
    await ui.form()
    await ui.call(users.enable_user, ui.ctx, name)
    return ui.redirect(_user_path(name))


@router.post("/users/{name}/tokens/{token_id}/revoke")
async def revoke_user_token(ui: MemberUi, name: str, token_id: str) -> Response:
    await ui.form()
    await ui.call(users.revoke_token, ui.ctx, name, token_id)
    return ui.redirect(_user_path(name))


# -- My account (everyone signed in) ---------------------------------------------------------


async def _me_page(
    ui: Ui,
    status: int = 200,
    error: str | None = None,
    new_token: dict[str, Any] | None = None,
) -> Response:
    account = await ui.call(users.me, ui.ctx)
    tokens = await ui.call(users.list_own_tokens, ui.ctx)
    sign_ins = await ui.call(accounts.recent_sign_ins, ui.ctx)
    notices = await ui.call(users.list_notifications, ui.ctx)
    return await ui.page(
        "me.html",
        notices=list(reversed(notices["notifications"]))[:20],
        status=status,
        nav="me",
        account=account,
        tokens=tokens["tokens"],
        sign_ins=sign_ins,
        server_url=public_base(ui.request),
        error=error,
        new_token=new_token,
    )


@router.get("/me")
async def my_account(ui: MemberUi) -> Response:
    return await _me_page(ui)


def _ttl_seconds(days: str) -> int | None:
    """The lifetime field in days as the service's ``ttl_seconds``; empty means the default.

    Text that is not a whole number becomes a lifetime the service refuses (``invalid_ttl``,
    as the API does), so the bounds are checked in one place only.
    """
    days = days.strip()
    if not days:
        return None
    return int(days) * DAY if days.isascii() and days.isdigit() and len(days) <= 6 else -1


@router.post("/me/tokens")
async def create_own_token(ui: MemberUi) -> Response:
    form = await ui.form()
    body = JsonBody({"ttl_seconds": _ttl_seconds(form.get("ttl_days", ""))}, None)
    try:
        issued = await ui.call(users.create_own_token, ui.ctx, body)
    except KinkoError as exc:
        return await _me_page(ui, exc.status, error=ui.error_text(exc))
    # Shown in this answer only: the vault keeps the token's hash, never the token.
    return await _me_page(ui, new_token=issued)


@router.post("/me/tokens/{token_id}/revoke")
async def revoke_own_token(ui: MemberUi, token_id: str) -> Response:
    await ui.form()
    await ui.call(users.revoke_own_token, ui.ctx, token_id)
    return ui.redirect("/ui/me")
