"""Users' e-mail addresses and PATCH /api/v1/users/{name} (issue 12): an admin changes the
display name, the address and the global roles; the address is shown to admins and to the
user only; the last admin cannot be demoted; every change is logged without the address."""

from __future__ import annotations

import uuid

import httpx
import pytest

from clients import KinkoClient
from tests.conftest import KinkoServer


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def code(resp: httpx.Response) -> str:
    return str(resp.json()["error"]["code"])


@pytest.fixture(scope="module")
def auditor(server: KinkoServer) -> KinkoClient:
    return server.user(new_name("uu-auditor"), ["auditor"])


def test_an_address_given_at_creation_is_shown_to_admins_and_to_the_user(
    server: KinkoServer,
) -> None:
    name = new_name("uu-mail")
    resp = server.admin.http.post(
        "/api/v1/users", json={"name": name, "email": "Tanaka.Taro@City.Example.JP"}
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["email"] == "Tanaka.Taro@city.example.jp"
    listed = {u["name"]: u for u in server.admin.http.get("/api/v1/users").json()["users"]}
    assert listed[name]["email"] == "Tanaka.Taro@city.example.jp"
    assert server.admin.http.get(f"/api/v1/users/{name}").json()["email"] == (
        "Tanaka.Taro@city.example.jp"
    )
    me = server.client(server.admin.create_token(name)["token"]).me()
    assert me["email"] == "Tanaka.Taro@city.example.jp"
    # Another user learns nothing about it: the user endpoints are admin-only.
    other = server.user(new_name("uu-other"))
    assert other.http.get(f"/api/v1/users/{name}").status_code == 403


@pytest.mark.parametrize(
    "bad",
    ["no-at-sign", "a@b", "two@@example.jp", "space in@example.jp", ".dot@example.jp",
     "a..b@example.jp", "x" * 65 + "@example.jp", "日本@example.jp", 42],
)  # fmt: skip
def test_malformed_addresses_are_refused(server: KinkoServer, bad: object) -> None:
    resp = server.admin.http.post("/api/v1/users", json={"name": new_name("uu-bad"), "email": bad})
    assert resp.status_code == 400, resp.text
    assert code(resp) == "invalid_email"


def test_patch_changes_only_the_fields_given(server: KinkoServer, auditor: KinkoClient) -> None:
    name = new_name("uu-patch")
    server.admin.create_user(name)
    url = f"/api/v1/users/{name}"
    resp = server.admin.http.patch(url, json={"display_name": "佐藤 花子"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["display_name"] == "佐藤 花子"
    assert resp.json()["email"] is None
    resp = server.admin.http.patch(url, json={"email": "sato@example.jp", "roles": ["auditor"]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["display_name"], body["email"], body["roles"]) == (
        "佐藤 花子",
        "sato@example.jp",
        ["auditor"],
    )
    # null clears; an empty body changes nothing and says so.
    resp = server.admin.http.patch(url, json={"email": None, "display_name": None})
    assert (resp.json()["email"], resp.json()["display_name"]) == (None, None)
    resp = server.admin.http.patch(url, json={})
    assert resp.status_code == 400
    assert code(resp) == "nothing_to_change"
    for body_, want in (
        ({"roles": ["root"]}, "invalid_roles"),
        ({"roles": None}, "invalid_roles"),
        ({"display_name": " "}, "invalid_display_name"),
        ({"email": "nope"}, "invalid_email"),
    ):
        resp = server.admin.http.patch(url, json=body_)
        assert resp.status_code == 400, (body_, resp.text)
        assert code(resp) == want
    assert (
        server.admin.http.patch(
            f"/api/v1/users/{new_name('uu-ghost')}", json={"roles": []}
        ).status_code
        == 404
    )
    events = auditor.audit_events(action="user.update", limit=1000)["events"]
    mine = [e for e in events if e["target"] == name]
    assert [e["decision"] for e in mine].count("allow") == 3
    assert "changed:email,roles" in [e["reason"] for e in mine]
    # The address itself is not written into the log.
    assert all("sato@example.jp" not in str(e) for e in mine)


def test_a_role_change_applies_at_the_next_request(server: KinkoServer) -> None:
    name = new_name("uu-role")
    server.admin.create_user(name)
    client = server.client(server.admin.create_token(name)["token"])
    assert client.http.get("/api/v1/audit/events").status_code == 403
    resp = server.admin.http.patch(f"/api/v1/users/{name}", json={"roles": ["auditor"]})
    assert resp.status_code == 200, resp.text
    assert client.http.get("/api/v1/audit/events").status_code == 200
    server.admin.http.patch(f"/api/v1/users/{name}", json={"roles": []})
    assert client.http.get("/api/v1/audit/events").status_code == 403


def test_only_an_admin_patches_and_the_last_admin_stays_one(fresh_server: KinkoServer) -> None:
    srv = fresh_server
    someone = srv.user("uu-someone")
    resp = someone.http.patch("/api/v1/users/uu-someone", json={"roles": ["admin"]})
    assert resp.status_code == 403
    resp = srv.admin.http.patch("/api/v1/users/admin", json={"roles": []})
    assert resp.status_code == 409
    assert code(resp) == "last_admin"
    # With a second admin, the first may step down.
    assert (
        srv.admin.http.patch("/api/v1/users/uu-someone", json={"roles": ["admin"]}).status_code
        == 200
    )
    assert srv.admin.http.patch("/api/v1/users/admin", json={"roles": []}).status_code == 200
    assert srv.admin.http.get("/api/v1/users").status_code == 403
