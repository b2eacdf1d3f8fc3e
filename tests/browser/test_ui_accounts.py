"""Sign-in pages in a real browser (Debian's Chromium): an invited user sets a password and is
signed in, the session cookie's flags, CSRF, throttling, the language switch, and axe-core."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import KinkoServer
from playwright.sync_api import Page, expect

CheckAxe = Callable[[Page], list[dict[str, Any]]]
Screenshot = Callable[[Page, str], Path]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def locale() -> str:
    # The office's language; tests of English override it.
    return "ja-JP"


def _invite(server: KinkoServer, name: str, roles: list[str] | None = None) -> str:
    resp = server.admin.http.post("/api/v1/users", json={"name": name, "roles": roles or []})
    assert resp.status_code in (201, 409), resp.text
    made = server.admin.http.post(f"/api/v1/users/{name}/invitation")
    assert made.status_code == 201, made.text
    return str(made.json()["url"])


def _set_password(page: Page, url: str, lang: str = "ja") -> None:
    page.goto(url)
    if lang == "ja":
        page.get_by_label("新しいパスワード").fill(PASSWORD)
        page.get_by_label("パスワード（確認）").fill(PASSWORD)
        page.get_by_role("button", name="パスワードを設定").click()
    else:
        page.get_by_label("New password").fill(PASSWORD)
        page.get_by_label("Confirm password").fill(PASSWORD)
        page.get_by_role("button", name="Set password").click()


@pytest.mark.parametrize("locale", ["ja-JP", "en-US"])
def test_invited_user_sets_a_password_and_signs_in(
    ui_server: KinkoServer,
    page: Page,
    locale: str,
    check_axe: CheckAxe,
    screenshot: Screenshot,
) -> None:
    lang = locale[:2]
    name = f"invited-{lang}"
    url = _invite(ui_server, name, ["procurement"])
    page.goto(url)
    expect(page.locator("html")).to_have_attribute("lang", lang)
    check_axe(page)
    screenshot(page, "invitation")
    # A weak password is refused with a message, and the link stays usable.
    weak = "password1234"
    if lang == "ja":
        page.get_by_label("新しいパスワード").fill(weak)
        page.get_by_label("パスワード（確認）").fill(weak)
        page.get_by_role("button", name="パスワードを設定").click()
        expect(page.get_by_role("alert")).to_contain_text("よく使われて")
    else:
        page.get_by_label("New password").fill(weak)
        page.get_by_label("Confirm password").fill(weak)
        page.get_by_role("button", name="Set password").click()
        expect(page.get_by_role("alert")).to_contain_text("too well known")
    check_axe(page)
    _set_password(page, url, lang)
    expect(page).to_have_url(re.compile(r"/ui/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("案件" if lang == "ja" else "Cases")
    check_axe(page)
    screenshot(page, "cases-empty")

    # Sign out, then sign in with the new password on the sign-in page.
    page.get_by_role("button", name="サインアウト" if lang == "ja" else "Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/sign-in"))
    check_axe(page)
    screenshot(page, "sign-in")
    page.get_by_label("利用者名" if lang == "ja" else "User name").fill(name)
    page.get_by_label("パスワード" if lang == "ja" else "Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="サインイン" if lang == "ja" else "Sign in").click()
    expect(page).to_have_url(re.compile(r"/ui/$"))
    # The footer tells the user when they last signed in.
    footer = page.locator("footer")
    expect(footer).to_contain_text("前回のサインイン" if lang == "ja" else "previous sign-in")


def test_session_cookie_flags(ui_server: KinkoServer, page: Page) -> None:
    _set_password(page, _invite(ui_server, "cookie-flags"))
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["kinko_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert session["path"] == "/"
    # Served over plain HTTP here (KINKO_PUBLIC_URL unset): not Secure, no __Host- prefix;
    # tests/web/test_accounts.py checks both over HTTPS.
    assert session["secure"] is False
    assert session["expires"] == -1  # ends with the browser; the server ends it sooner
    # Script on the page cannot read it.
    assert "kinko_session" not in page.evaluate("document.cookie")


def test_a_post_without_the_csrf_token_is_refused(ui_server: KinkoServer, page: Page) -> None:
    _set_password(page, _invite(ui_server, "csrf-browser"))
    # The browser's own cookies, a form post without the token: what a forged form would send.
    resp = page.request.post(
        ui_server.base_url + "/ui/sign-out", form={"next": "/ui/"}, max_redirects=0
    )
    assert resp.status == 403
    assert "再読み込み" in resp.text()
    page.goto(ui_server.base_url + "/ui/")
    expect(page.get_by_role("heading", level=1)).to_have_text("案件")  # still signed in
    events = ui_server.user("csrf-auditor", ["auditor"]).http.get(
        "/api/v1/audit/events", params={"action": "auth.csrf", "actor": "csrf-browser"}
    )
    assert [e["reason"] for e in events.json()["events"]] == ["csrf_missing"]


def test_sign_in_throttling(ui_server: KinkoServer, page: Page) -> None:
    _set_password(page, _invite(ui_server, "throttled"))
    page.get_by_role("button", name="サインアウト").click()
    for _ in range(10):
        page.get_by_label("利用者名").fill("throttled")
        page.get_by_label("パスワード", exact=True).fill("not my password")
        page.get_by_role("button", name="サインイン").click()
        expect(page.get_by_role("alert")).to_have_text("利用者名またはパスワードが違います。")
    page.get_by_label("利用者名").fill("throttled")
    page.get_by_label("パスワード", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="サインイン").click()
    expect(page.get_by_role("alert")).to_contain_text("1分ほど待って")
    expect(page).to_have_url(re.compile(r"/ui/sign-in"))


@pytest.mark.parametrize("locale", ["en-US"])
def test_language_switch_is_remembered(ui_server: KinkoServer, page: Page) -> None:
    page.goto(ui_server.base_url + "/ui/sign-in")
    expect(page.locator("html")).to_have_attribute("lang", "en")  # the browser asks for en-US
    page.get_by_role("link", name="日本語").click()
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.get_by_role("button", name="サインイン")).to_be_visible()
    page.goto(ui_server.base_url + "/ui/sign-in")
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_keyboard_reaches_the_sign_in_form(ui_server: KinkoServer, page: Page) -> None:
    page.goto(ui_server.base_url + "/ui/sign-in")
    seen = []
    for _ in range(12):
        page.keyboard.press("Tab")
        seen.append(
            page.evaluate("document.activeElement.id || document.activeElement.textContent")
        )
    assert "name" in seen
    assert "password" in seen
    # The focused control shows a visible ring (the style sheet's :focus-visible outline).
    page.locator("#password").focus()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
