"""Signed-in browsers for the web interface's tests: an httpx client holding the session
cookie a real password sign-in (through a one-time invitation) set."""

from __future__ import annotations

import re
import secrets
from typing import Any

import httpx

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Browser(httpx.Client):
    """An httpx client with a signed-in session cookie (no redirects followed by itself)."""

    name: str

    def csrf(self, path: str = "/ui/") -> str:
        """The CSRF token of the forms on the page at ``path``."""
        page = self.get(path)
        assert page.status_code == 200, (path, page.status_code, page.text[:500])
        return csrf_of(page.text)


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, html[:500]
    return match.group(1)


def browser_session(
    server: Any, name: str, roles: list[str] | None = None, **client_kw: Any
) -> Browser:
    """A user ``name`` (created with ``roles`` if new) signed in through the web interface.

    The browser is closed when ``server`` closes its clients.
    """
    admin = server.admin
    made = admin.http.post("/api/v1/users", json={"name": name, "roles": roles or []})
    assert made.status_code in (201, 409), made.text
    invited = admin.http.post(f"/api/v1/users/{name}/invitation", json={})
    assert invited.status_code in (200, 201), invited.text
    url = httpx.URL(invited.json()["url"])
    browser = Browser(base_url=server.base_url, timeout=60, **client_kw)
    browser.name = name
    # Closed with the server's API clients when the server stops.
    server.clients.append(browser)
    form = browser.get(url.path)
    assert form.status_code == 200, form.text[:500]
    password = "pw-" + secrets.token_urlsafe(18)
    done = browser.post(
        url.path,
        data={"csrf": csrf_of(form.text), "password": password, "confirm": password},
    )
    assert done.status_code == 303, done.text[:500]
    assert "kinko_session" in browser.cookies
    return browser
