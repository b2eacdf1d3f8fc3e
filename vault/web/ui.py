"""What every page handler receives: the caller (from the session cookie), the language, the
CSRF token of its forms, and the way to answer (a rendered page or a redirect).

Authentication is the only thing pages do differently from the API: the session cookie set
by password sign-in stands where the bearer token stands.  Everything else (the guard, the
audit events, the errors) is the services' own, so a page and its API twin decide alike.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import parse_qsl, quote
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from vault.api.deps import get_vault, request_info
from vault.authz.guard import ANONYMOUS, Principal
from vault.core import Vault
from vault.errors import BadRequest, Forbidden, KinkoError
from vault.services import accounts, reviews
from vault.services.context import Ctx
from vault.web import labels
from vault.web.i18n import LANG_COOKIE, LANGUAGES, negotiate, translations

TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_FORM_BODY = 64 * 1024
CSRF_FIELD = "csrf"


def https(vault: Vault) -> bool:
    url = vault.settings.public_url
    return bool(url and url.startswith("https://"))


def session_cookie_name(vault: Vault) -> str:
    # Over HTTPS the __Host- prefix makes the browser refuse the cookie unless it is Secure,
    # has Path=/ and no Domain: no sibling host or plain-HTTP page can plant or read it.
    return "__Host-kinko_session" if https(vault) else "kinko_session"


def pre_cookie_name(vault: Vault) -> str:
    return "__Host-kinko_pre" if https(vault) else "kinko_pre"


class SignInRequired(Exception):
    """Raised by a page that needs a signed-in caller; answered with a redirect to sign-in."""


def _environment(lang: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    return env


ENVIRONMENTS = {lang: _environment(lang) for lang in LANGUAGES}


@dataclass
class Ui:
    request: Request
    vault: Vault
    ctx: Ctx
    lang: str
    signed: accounts.SignedIn | None
    session_secret: str | None
    pre_nonce: str
    new_pre_nonce: bool
    cookies: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    # -- who and how ---------------------------------------------------------------------------

    @property
    def principal(self) -> Principal:
        return self.ctx.principal

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(self.ctx.principal.roles)

    @cached_property
    def menu(self) -> frozenset[str]:
        """The areas to link to (see ``Guard.menu``)."""
        if self.signed is None:
            return self.vault.guard.menu(self.principal, False)
        supervises = bool(reviews.supervised_cases(self.ctx))
        return self.vault.guard.menu(self.principal, supervises)

    @property
    def root(self) -> str:
        """The prefix a proxy mounts Kinko under (usually empty)."""
        return str(self.request.scope.get("root_path", "")).rstrip("/")

    @property
    def csrf(self) -> str:
        return accounts.csrf_token(self.vault, self.session_secret or self.pre_nonce)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.vault.settings.timezone)

    def _(self, message: str) -> str:
        return translations(self.lang).gettext(message)

    def error_text(self, exc: KinkoError) -> str:
        """What a person reads for a refusal: the translated text of its code."""
        known = labels.ERROR_TEXTS.get(exc.code)
        if known is not None:
            return self._(known)
        return self._("The request could not be completed.") + f" ({exc.code})"

    # -- answering -----------------------------------------------------------------------------

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        env = ENVIRONMENTS[self.lang]
        html = env.get_template(template).render(ui=self, labels=labels, **values)
        response = HTMLResponse(html, status_code=status)
        self._finish(response)
        return response

    async def page(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        """``render`` in a worker thread: rendering may ask the catalog (the menu)."""
        return await run_in_threadpool(self.render, template, status, **values)

    async def call(self, fn: Any, *args: Any) -> Any:
        """A blocking service call, in a worker thread."""
        return await run_in_threadpool(fn, *args)

    def redirect(self, path: str) -> Response:
        """A redirect after a form post (303: the browser follows with GET)."""
        target = self.root + path
        if self.request.headers.get("hx-request") == "true":
            response: Response = Response(status_code=204, headers={"HX-Redirect": target})
        else:
            response = RedirectResponse(target, status_code=303)
        self._finish(response)
        return response

    def set_cookie(self, name: str, value: str, **options: Any) -> None:
        self.cookies.append((name, value, options))

    def _finish(self, response: Response) -> None:
        secure = https(self.vault)
        if self.new_pre_nonce and self.session_secret is None:
            response.set_cookie(
                pre_cookie_name(self.vault),
                self.pre_nonce,
                httponly=True,
                samesite="strict",
                secure=secure,
                path="/",
            )
        for name, value, options in self.cookies:
            if value:
                response.set_cookie(
                    name,
                    value,
                    httponly=True,
                    samesite="strict",
                    secure=secure,
                    path="/",
                    **options,
                )
            else:
                response.delete_cookie(
                    name, httponly=True, samesite="strict", secure=secure, path="/"
                )

    # -- forms ---------------------------------------------------------------------------------

    async def form(self) -> dict[str, str]:
        """The posted ``application/x-www-form-urlencoded`` form, after its CSRF token was
        checked (a post without the right one is refused with 403 and logged)."""
        declared = self.request.headers.get("content-length")
        if (
            declared is not None
            and declared.isascii()
            and declared.isdigit()
            and int(declared) > MAX_FORM_BODY
        ):
            raise BadRequest("form too large", code="form_too_large")
        buf = bytearray()
        async for chunk in self.request.stream():
            buf += chunk
            if len(buf) > MAX_FORM_BODY:
                raise BadRequest("form too large", code="form_too_large")
        try:
            pairs = parse_qsl(buf.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
        except (UnicodeDecodeError, ValueError):
            pairs = []
        data: dict[str, str] = {}
        for key, value in pairs:
            data.setdefault(key, value)
        await self.check_csrf(data.get(CSRF_FIELD))
        return data

    async def check_csrf(self, presented: str | None) -> None:
        binding = self.session_secret or self.pre_nonce
        if accounts.csrf_valid(self.vault, binding, presented):
            return
        await self.refuse(
            "auth.csrf",
            Forbidden(
                "the form's security token is missing or wrong; reload the page and try again",
                code="csrf_missing" if presented is None else "csrf_invalid",
            ),
        )

    async def refuse(self, action: str, exc: KinkoError, **subject: Any) -> NoReturn:
        """Refuse a page request no service has seen yet (a forged or unreadable form), with
        the deny event of ``action`` that its refusal by a service would have written."""
        await run_in_threadpool(_refuse, self.ctx, action, exc, subject)
        raise exc  # unreachable: the scope re-raises; keeps the type checker informed

    def local(self, value: datetime | str | None, with_zone: bool = True) -> str:
        return labels.local_time(value, self.tz, with_zone)


def _refuse(ctx: Ctx, action: str, exc: KinkoError, subject: dict[str, Any]) -> None:
    with ctx.scope(action, **subject):
        raise exc


def safe_next(target: str | None) -> str:
    """A local page to go to after sign-in; anything else (another site) becomes /ui/."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


async def page_ui(request: Request) -> Ui:
    """The caller of a page, signed in or not."""
    vault = get_vault(request)
    info = request_info(request)
    secret = request.cookies.get(session_cookie_name(vault))
    signed = await run_in_threadpool(accounts.session_principal, vault, secret) if secret else None
    principal = signed.principal if signed is not None else ANONYMOUS
    pre = request.cookies.get(pre_cookie_name(vault))
    new_pre = not pre or len(pre) > 100
    lang = negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
    ui = Ui(
        request=request,
        vault=vault,
        ctx=Ctx(vault, principal, info),
        lang=lang,
        signed=signed,
        session_secret=secret if signed is not None else None,
        pre_nonce=secrets.token_urlsafe(24) if new_pre else str(pre),
        new_pre_nonce=new_pre,
    )
    # Kept for the error page of this request, which then needs no second session look-up.
    request.state.kinko_ui = ui
    return ui


async def member_ui(ui: Annotated[Ui, Depends(page_ui)]) -> Ui:
    """The caller of a page that needs one: the signed-out are sent to sign in first."""
    if ui.signed is None:
        raise SignInRequired()
    return ui


AnyUi = Annotated[Ui, Depends(page_ui)]
MemberUi = Annotated[Ui, Depends(member_ui)]


def sign_in_location(request: Request) -> str:
    path = request.url.path
    if request.url.query:
        path += "?" + request.url.query
    return "/ui/sign-in?next=" + quote(safe_next(path), safe="/")
