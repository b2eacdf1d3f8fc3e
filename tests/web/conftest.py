"""Browsers for the web interface's tests: an httpx client holding a signed-in session.

A session is got the way a person gets one: an administrator invites the user (the API's
invitation route), the user opens the link and sets a password, and the server answers with
the session cookie.  Nothing reaches into the database.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import KinkoServer

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


class Browser(httpx.Client):
    """A cookie-keeping client of one server, with the password it signed in with."""

    password: str = ""
    name: str = ""

    def csrf(self, path: str = "/ui/") -> str:
        """The CSRF token of the forms on ``path`` (a page this browser may open)."""
        page = self.get(path)
        assert page.status_code in (200, 201), (path, page.status_code, page.text[:500])
        return csrf_of(page.text)

    def post_form(
        self, path: str, data: dict[str, str] | None = None, *, page: str
    ) -> httpx.Response:
        """Post a form to ``path`` with the CSRF token of the ``page`` it is on."""
        return self.post(path, data={"csrf": self.csrf(page), **(data or {})})

    def redeem(self, url: str, password: str) -> httpx.Response:
        """Open an invitation link and set ``password`` with it, as the invited person does."""
        form = self.get(url)
        assert form.status_code == 200, form.text[:500]
        return self.post(
            url, data={"csrf": csrf_of(form.text), "password": password, "confirm": password}
        )

    def sign_in(self, name: str, password: str) -> httpx.Response:
        token = self.csrf("/ui/sign-in")
        return self.post(
            "/ui/sign-in", data={"csrf": token, "name": name, "password": password, "next": "/ui/"}
        )


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found is not None, html[:500]
    return found.group(1)


def browser(server: KinkoServer, **client_kw: Any) -> Browser:
    """A signed-out browser of ``server`` (it does not follow redirects: tests look at them).

    It is closed with the server's API clients when the server stops, if not before.
    """
    options: dict[str, Any] = {"timeout": 60, "follow_redirects": False, **client_kw}
    client = Browser(base_url=server.base_url, **options)
    server.clients.append(client)  # type: ignore[arg-type]
    return client


def invitation_url(server: KinkoServer, name: str) -> str:
    resp = httpx.post(
        f"{server.base_url}/api/v1/users/{name}/invitation",
        headers={"Authorization": f"Bearer {server.admin_token}"},
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["url"])


def browser_session(
    server: KinkoServer, name: str, roles: list[str] | None = None, **client_kw: Any
) -> Browser:
    """A browser signed in as ``name`` (created with ``roles`` if it does not exist yet)."""
    resp = httpx.post(
        f"{server.base_url}/api/v1/users",
        json={"name": name, "roles": roles or []},
        headers={"Authorization": f"Bearer {server.admin_token}"},
        timeout=30,
    )
    assert resp.status_code in (201, 409), resp.text
    client = browser(server, **client_kw)
    client.name = name
    client.password = "pw-" + secrets.token_hex(10)
    done = client.redeem(invitation_url(server, name), client.password)
    assert done.status_code == 303, done.text[:500]
    assert any(c.startswith("kinko_session") for c in client.cookies), client.cookies
    return client


@pytest.fixture
def browsers(server: KinkoServer) -> Iterator[Any]:
    """``browsers(name, roles)``: signed-in browsers, closed after the test."""
    made: list[Browser] = []

    def make(name: str, roles: list[str] | None = None) -> Browser:
        b = browser_session(server, name, roles)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


@pytest.fixture
def anonymous(server: KinkoServer) -> Iterator[Browser]:
    """A signed-out browser, closed after the test."""
    with browser(server) as b:
        yield b


@pytest.fixture
def invite(server: KinkoServer) -> Any:
    """``invite(name)``: a fresh invitation link of ``name``, issued through the API."""
    return lambda name: invitation_url(server, name)
