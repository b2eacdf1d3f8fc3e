"""Admin user endpoints (issue 9): list and read users, list a user's tokens, re-enable."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from clients import KinkoClient
from tests.conftest import KinkoServer

TOKEN_KEYS = {
    "id",
    "created_at",
    "expires_at",
    "revoked_at",
    "last_used_at",
    "active",
    "issued_by",
}


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def code(resp: httpx.Response) -> str:
    return str(resp.json()["error"]["code"])


def events(server: KinkoServer, auditor: KinkoClient, **filters: Any) -> list[dict[str, Any]]:
    return list(auditor.audit_events(limit=1000, **filters)["events"])


@pytest.fixture(scope="module")
def auditor(server: KinkoServer) -> KinkoClient:
    return server.user(new_name("ua-auditor"), ["auditor"])


def test_list_and_read_users(server: KinkoServer, auditor: KinkoClient) -> None:
    name = new_name("ua-user")
    drafter = server.user(name, ["procurement"])
    case = drafter.create_case(f"UA-{uuid.uuid4().hex[:8]}", "利用者管理")["id"]
    admin = server.admin

    listed = admin.http.get("/api/v1/users")
    assert listed.status_code == 200
    rows = {u["name"]: u for u in listed.json()["users"]}
    assert rows[name]["roles"] == ["procurement"]
    assert rows[name]["disabled"] is False
    assert rows[name]["created_at"].endswith("Z")
    assert rows["admin"]["roles"] == ["admin"]
    assert list(rows) == sorted(rows)

    one = admin.http.get(f"/api/v1/users/{name}")
    assert one.status_code == 200
    body = one.json()
    assert body["name"] == name
    assert body["memberships"] == [
        {
            "case_id": case,
            "case_number": body["memberships"][0]["case_number"],
            "roles": ["drafter"],
            "expires_at": None,
            "active": True,
            "granted_by": None,
        }
    ]
    assert admin.http.get("/api/v1/users/no-such-user").status_code == 404
    assert code(admin.http.get("/api/v1/users/no-such-user")) == "user_not_found"
    seen = events(server, auditor, action="user.read")
    assert [(e["target"], e["decision"]) for e in seen][-2:] == [
        ("no-such-user", "deny"),
        ("no-such-user", "deny"),
    ]
    assert any(e["target"] == name and e["decision"] == "allow" for e in seen)
    assert events(server, auditor, action="user.list")[-1]["decision"] == "allow"


def test_only_admins_and_unknown_users_look_alike_to_others(
    server: KinkoServer, auditor: KinkoClient
) -> None:
    name = new_name("ua-target")
    server.user(name)
    others = [server.user(new_name("ua-proc"), ["procurement"]), auditor]
    paths = [
        ("GET", "/api/v1/users"),
        ("GET", f"/api/v1/users/{name}"),
        ("GET", "/api/v1/users/no-such-user"),
        ("GET", f"/api/v1/users/{name}/tokens"),
        ("GET", "/api/v1/users/no-such-user/tokens"),
        ("POST", f"/api/v1/users/{name}/enable"),
        ("POST", "/api/v1/users/no-such-user/enable"),
    ]
    for client in others:
        for method, path in paths:
            resp = client.http.request(method, path)
            # 403 whether the user exists or not: a non-admin learns nothing about accounts.
            assert resp.status_code == 403, (method, path)
            assert code(resp) == "admin_required"
    anon = server.client(None)
    for method, path in paths:
        assert anon.http.request(method, path).status_code == 401
    denied = events(server, auditor, action="user.enable", decision="deny")
    assert {e["reason"] for e in denied[-4:]} == {"admin_required"}


def test_token_listing_never_shows_a_secret(server: KinkoServer, auditor: KinkoClient) -> None:
    name = new_name("ua-tokens")
    server.admin.create_user(name)
    used = server.admin.create_token(name)
    unused = server.admin.create_token(name)
    assert server.client(used["token"]).me()["name"] == name

    resp = server.admin.http.get(f"/api/v1/users/{name}/tokens")
    assert resp.status_code == 200
    for secret in (used["token"], unused["token"]):
        assert secret not in resp.text
        assert secret.removeprefix("kinko_") not in resp.text
    tokens = {t["id"]: t for t in resp.json()["tokens"]}
    assert set(tokens) == {used["id"], unused["id"]}
    for t in tokens.values():
        assert set(t) == TOKEN_KEYS
        assert t["issued_by"] == "admin"
        assert t["active"] is True
    assert tokens[used["id"]]["last_used_at"] is not None
    assert tokens[unused["id"]]["last_used_at"] is None
    assert server.admin.http.get("/api/v1/users/nobody-here/tokens").status_code == 404
    # The holder's own listing has the same shape.
    own = server.client(used["token"]).http.get("/api/v1/me/tokens").json()["tokens"]
    assert {t["id"] for t in own} == set(tokens)
    assert all(set(t) == TOKEN_KEYS for t in own)
    assert events(server, auditor, action="token.list")[-1]["decision"] == "allow"


def test_enable_is_idempotent_audited_and_revives_no_token(
    server: KinkoServer, auditor: KinkoClient
) -> None:
    name = new_name("ua-enable")
    user = server.user(name, ["procurement"])
    case = user.create_case(f"UE-{uuid.uuid4().hex[:8]}", "再有効化")["id"]
    admin = server.admin
    assert admin.http.post(f"/api/v1/users/{name}/disable").status_code == 200
    assert user.http.get("/api/v1/me").status_code == 401
    member = admin.http.get(f"/api/v1/users/{name}").json()["memberships"][0]
    assert (member["case_id"], member["active"]) == (case, False)

    first = admin.http.post(f"/api/v1/users/{name}/enable")
    again = admin.http.post(f"/api/v1/users/{name}/enable")
    assert first.status_code == again.status_code == 200
    assert (
        first.json() == again.json() == {"name": name, "roles": ["procurement"], "disabled": False}
    )
    assert admin.http.get(f"/api/v1/users/{name}").json()["disabled"] is False
    # The token revoked by disabling stays revoked; a new one works and sees the case again.
    assert user.http.get("/api/v1/me").status_code == 401
    fresh = server.client(admin.create_token(name)["token"])
    assert [c["id"] for c in fresh.http.get("/api/v1/cases").json()["cases"]] == [case]
    assert admin.http.post("/api/v1/users/no-such-user/enable").status_code == 404

    enabled = [e for e in events(server, auditor, action="user.enable") if e["target"] == name]
    assert [(e["actor"], e["decision"], e["reason"]) for e in enabled] == [
        ("admin", "allow", "ok"),
        ("admin", "allow", "already_enabled"),
    ]
