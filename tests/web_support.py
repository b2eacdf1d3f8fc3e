"""Helpers of the web-interface tests: a signed-in browser as an httpx client with cookies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from conftest import KinkoServer

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = _CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


@dataclass
class Browser:
    """An httpx client that keeps cookies, like a browser, with form helpers."""

    http: httpx.Client
    name: str

    def csrf(self, path: str = "/ui/") -> str:
        resp = self.http.get(path)
        assert resp.status_code == 200, resp.text
        return csrf_of(resp.text)

    def post_form(self, path: str, data: dict[str, str], csrf_from: str = "/ui/") -> httpx.Response:
        return self.http.post(path, data={"csrf": self.csrf(csrf_from), **data})

    def close(self) -> None:
        self.http.close()


_OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_browsers() -> Iterator[None]:
    """Closes every client a test opened (import it into a test module to use it)."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def anonymous_browser(server: KinkoServer, lang: str = "ja") -> httpx.Client:
    http = httpx.Client(
        base_url=server.base_url,
        headers={"Accept-Language": lang},
        follow_redirects=False,
        timeout=30,
    )
    _OPEN.append(http)
    return http


def invite(server: KinkoServer, name: str) -> str:
    resp = server.admin.http.post(f"/api/v1/users/{name}/invitation")
    assert resp.status_code == 201, resp.text
    return str(resp.json()["url"])


def set_password(http: httpx.Client, url: str, password: str = PASSWORD) -> httpx.Response:
    form = http.get(url)
    assert form.status_code == 200, form.text
    return http.post(
        url, data={"csrf": csrf_of(form.text), "password": password, "confirm": password}
    )


def browser_session(
    server: KinkoServer, name: str, roles: list[str] | None = None, lang: str = "ja"
) -> Browser:
    """A browser signed in as ``name`` (created with ``roles`` if new), through the real
    invitation page: the admin invites, the user sets a password and is signed in."""
    resp = server.admin.http.post("/api/v1/users", json={"name": name, "roles": roles or []})
    assert resp.status_code in (201, 409), resp.text
    http = anonymous_browser(server, lang)
    done = set_password(http, invite(server, name))
    assert done.status_code == 303, done.text
    assert any(c.name.endswith("kinko_session") for c in http.cookies.jar)
    return Browser(http, name)


def sign_in(http: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    form = http.get("/ui/sign-in")
    return http.post(
        "/ui/sign-in", data={"csrf": csrf_of(form.text), "name": name, "password": password}
    )
