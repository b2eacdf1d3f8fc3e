"""Sign-in, sign-out, invitations (setting a password) and the language switch."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from vault.errors import KinkoError
from vault.services import accounts
from vault.web.i18n import LANG_COOKIE, LANGUAGES
from vault.web.ui import AnyUi, Ui, safe_next, session_cookie_name

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/sign-in")
async def sign_in_form(ui: AnyUi, next: str | None = None) -> Response:
    if ui.signed is not None:
        return ui.redirect(safe_next(next))
    return await ui.page("sign_in.html", next=safe_next(next), name="", error=None)


@router.post("/sign-in")
async def sign_in(ui: AnyUi) -> Response:
    form = await ui.form()
    name = form.get("name", "").strip()
    target = safe_next(form.get("next"))
    try:
        new = await ui.call(
            accounts.sign_in, ui.ctx, name, form.get("password", ""), ui.session_secret
        )
    except KinkoError as exc:
        return await ui.page(
            "sign_in.html", status=exc.status, next=target, name=name, error=ui.error_text(exc)
        )
    return _signed_in(ui, new, target)


def _signed_in(ui: Ui, new: accounts.NewSession, target: str) -> Response:
    ui.set_cookie(session_cookie_name(ui.vault), new.secret)
    ui.session_secret = new.secret
    return ui.redirect(target)


@router.post("/sign-out")
async def sign_out(ui: AnyUi) -> Response:
    await ui.form()
    if ui.session_secret is not None:
        await ui.call(accounts.sign_out, ui.ctx, ui.session_secret)
    ui.set_cookie(session_cookie_name(ui.vault), "")
    ui.session_secret = None
    return ui.redirect("/ui/sign-in")


@router.get("/invitation/{token}")
async def invitation_form(ui: AnyUi, token: str) -> Response:
    # Opening the link consumes nothing: mail scanners that follow links do no harm.
    try:
        user_name = await ui.call(accounts.invitation_user, ui.vault, token)
    except KinkoError as exc:
        return await ui.page("invitation.html", status=exc.status, unusable=ui.error_text(exc))
    return await ui.page(
        "invitation.html", token=token, user_name=user_name, error=None, unusable=None
    )


@router.post("/invitation/{token}")
async def redeem_invitation(ui: AnyUi, token: str) -> Response:
    form = await ui.form()
    try:
        new = await ui.call(
            accounts.redeem,
            ui.ctx,
            token,
            form.get("password", ""),
            form.get("confirm", ""),
            ui.session_secret,
        )
    except KinkoError as exc:
        user_name = None
        unusable = None
        try:
            user_name = await ui.call(accounts.invitation_user, ui.vault, token)
        except KinkoError as gone:
            unusable = ui.error_text(gone)
        return await ui.page(
            "invitation.html",
            status=exc.status,
            token=token,
            user_name=user_name,
            error=ui.error_text(exc),
            unusable=unusable,
        )
    return _signed_in(ui, new, "/ui/")


@router.get("/lang/{lang}")
def switch_language(ui: AnyUi, lang: str, next: str | None = None) -> Response:
    """Remember the chosen language in a cookie and go back to the page it was chosen on.

    A GET on purpose: it changes a display preference in the browser, nothing on the server.
    """
    if lang in LANGUAGES:
        # Through the page's own cookie path: HttpOnly, SameSite=Strict, Secure over HTTPS.
        ui.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600)
    return ui.redirect(safe_next(next))
