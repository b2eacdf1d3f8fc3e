"""Bad or oversized input gets a clear 4xx, never a 500 and never unbounded memory."""

from __future__ import annotations

import psutil

from tests.conftest import KinkoServer


def test_oversized_json_body_is_refused_without_reading_it(server: KinkoServer) -> None:
    officer = server.user("limits-officer", ["procurement"])
    assert server.proc is not None
    proc = psutil.Process(server.proc.pid)
    before = proc.memory_info().rss

    def chunks() -> object:
        block = b" " * (1 << 20)
        for _ in range(64):  # 64 MiB of whitespace: valid JSON padding, far over the cap
            yield block

    resp = officer.http.post("/api/v1/cases", content=chunks())  # type: ignore[arg-type]
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_json"
    assert "too large" in resp.json()["error"]["message"]
    assert proc.memory_info().rss - before < 32 * (1 << 20)
    declared = officer.http.post(
        "/api/v1/cases",
        content=b"{}" + b" " * (65 * 1024),
        headers={"Content-Type": "application/json"},
    )
    assert declared.status_code == 400


def test_malformed_numbers_times_and_cursors_are_400(server: KinkoServer) -> None:
    auditor = server.user("limits-auditor", ["auditor"])
    for params in (
        {"limit": "--5"},
        {"limit": "1e3"},
        {"cursor": "c2VxOjk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"},
        {"since": "0001-01-01T00:00:00+01:00"},
        {"until": "9999-12-31T23:59:59-01:00"},
        {"since": "yesterday"},
    ):
        resp = auditor.http.get("/api/v1/audit/events", params=params)
        assert resp.status_code == 400, (params, resp.text)
    for path, params in (
        ("/api/v1/audit/proofs/inclusion", {"seq": "--1", "size": "1"}),
        ("/api/v1/audit/proofs/consistency", {"old": "0", "new": "--3"}),
    ):
        assert auditor.http.get(path, params=params).status_code == 400
    officer = server.user("limits-officer2", ["procurement"])
    case = officer.create_case("LIMITS-1", "t")
    server.user("limits-member")
    resp = server.admin.http.put(
        f"/api/v1/cases/{case['id']}/members/limits-member",
        json={"roles": ["reviewer"], "expires_at": "9999-12-31T23:59:59-01:00"},
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_time"
