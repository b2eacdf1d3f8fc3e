"""Signed-in browsers for the web interface's tests: a real password account, set through a
one-time invitation as a person would, and an httpx client holding its session cookie."""

from __future__ import annotations

import re

import httpx

from tests.conftest import KinkoServer

PASSWORD = "correct horse battery staple 42"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Browser(httpx.Client):
    """An httpx client with a session cookie, as a browser holds it."""

    def csrf(self, path: str = "/ui/") -> str:
        """The CSRF token of the forms on the page at ``path``."""
        page = self.get(path)
        assert page.status_code == 200, page.text
        found = _CSRF.search(page.text)
        assert found is not None, f"no form with a csrf token on {path}"
        return found.group(1)


def browser_session(server: KinkoServer, name: str, roles: list[str] | None = None) -> Browser:
    """Create the user (if needed) with ``roles``, set a password through an invitation link
    and return a client signed in as them (Japanese pages unless told otherwise)."""
    admin = server.admin
    made = admin.http.post("/api/v1/users", json={"name": name, "roles": roles or []})
    assert made.status_code in (201, 409), made.text
    invited = admin.http.post(f"/api/v1/users/{name}/invitation")
    assert invited.status_code == 201, invited.text
    url = httpx.URL(invited.json()["url"])
    browser = Browser(base_url=server.base_url, timeout=30, follow_redirects=False)
    form = browser.get(url.path)
    assert form.status_code == 200, form.text
    token = _CSRF.search(form.text)
    assert token is not None
    done = browser.post(
        url.path, data={"password": PASSWORD, "confirm": PASSWORD, "csrf": token.group(1)}
    )
    assert done.status_code == 303, done.text
    assert any(c.startswith("kinko_session") for c in browser.cookies), browser.cookies
    return browser
