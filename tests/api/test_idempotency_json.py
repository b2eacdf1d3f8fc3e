"""Idempotency-Key on JSON writes: a retry returns the first result and creates nothing new."""

from __future__ import annotations

import uuid

from tests.conftest import KinkoServer


def test_case_create_retry_returns_the_same_case(server: KinkoServer) -> None:
    officer = server.user("idem-officer", ["procurement"])
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"number": "IDEM-1", "title": "冪等性の確認"}
    first = officer.http.post("/api/v1/cases", json=body, headers=key)
    again = officer.http.post("/api/v1/cases", json=body, headers=key)
    assert first.status_code == 201
    assert again.status_code == 201
    assert again.json() == first.json()
    # Without the key the same request is a duplicate number, not a new case.
    dup = officer.http.post("/api/v1/cases", json=body)
    assert dup.status_code == 409
    numbers = [c["number"] for c in officer.http.get("/api/v1/cases").json()["cases"]]
    assert numbers.count("IDEM-1") == 1
    # The same key on a different request is refused (422: the key is the problem, not state).
    other = officer.http.post("/api/v1/cases", json={"number": "IDEM-2", "title": "x"}, headers=key)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def test_transition_retry_creates_one_transition(server: KinkoServer) -> None:
    officer = server.user("idem-officer2", ["procurement"])
    case = officer.create_case("IDEM-3", "t")
    server.user("idem-boss")
    server.admin.set_member(case["id"], "idem-boss", ["supervisor"])
    boss = server.user("idem-boss")
    key = {"Idempotency-Key": "transition-1"}
    first = boss.http.post(
        f"/api/v1/cases/{case['id']}/transitions", json={"stage": "rfi"}, headers=key
    )
    again = boss.http.post(
        f"/api/v1/cases/{case['id']}/transitions", json={"stage": "rfi"}, headers=key
    )
    assert first.status_code == 201
    assert again.status_code == 201
    assert again.json() == first.json()
    stages = [t["stage"] for t in boss.case(case["id"])["transitions"]]
    assert stages == ["drafting", "rfi"]


def test_user_create_retry_and_token_refuses_a_key(server: KinkoServer) -> None:
    admin = server.admin
    key = {"Idempotency-Key": "user-1"}
    body = {"name": "idem-user", "roles": ["auditor"]}
    first = admin.http.post("/api/v1/users", json=body, headers=key)
    again = admin.http.post("/api/v1/users", json=body, headers=key)
    assert first.status_code == 201
    assert again.status_code == 201
    assert (
        again.json()
        == first.json()
        == {
            "name": "idem-user",
            "display_name": None,
            "email": None,
            "roles": ["auditor"],
            "disabled": False,
        }
    )
    tok = admin.http.post("/api/v1/users/idem-user/tokens", json={}, headers=key)
    assert tok.status_code == 400
    assert tok.json()["error"]["code"] == "idempotency_not_supported"
