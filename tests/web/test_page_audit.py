"""Every page that touches a case, document, review or user is audited as its API twin is:
the page request leaves the same action, with the same decision, under its own request id."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import KinkoServer, serving

from .conftest import browser_session


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KinkoServer]:
    with serving(tmp_path_factory.mktemp("page-audit")) as srv:
        yield srv


def _actions(server: KinkoServer, actor: str) -> dict[str, list[tuple[str, str]]]:
    """request id -> [(action, decision)] of the actor's events."""
    auditor = server.user("pa-auditor", ["auditor"])
    events = auditor.http.get("/api/v1/audit/events", params={"actor": actor, "limit": "1000"})
    assert events.status_code == 200, events.text
    by_request: dict[str, list[tuple[str, str]]] = {}
    for e in events.json()["events"]:
        by_request.setdefault(e["request_id"], []).append((e["action"], e["decision"]))
    return by_request


def _twin(server: KinkoServer, http: Any, page: str, api: httpx.Client, path: str) -> None:
    page_resp = http.get(page)
    api_resp = api.get(path)
    assert page_resp.status_code == api_resp.status_code, (page, page_resp.status_code)
    page_id = page_resp.headers["x-request-id"]
    api_id = api_resp.headers["x-request-id"]
    seen = _actions(server, http.name)
    api_actions = set(seen[api_id])
    # The page may ask more than its twin (the case page also lists the documents), but it
    # asks at least what the twin asks, decided alike.
    assert api_actions <= set(seen[page_id]), (page, seen[page_id], api_actions)


def test_pages_are_audited_like_their_api_twins(server: KinkoServer) -> None:
    drafter = browser_session(server, "pa-drafter", ["procurement"])
    api = server.client(server.admin.create_token("pa-drafter")["token"])
    case = api.create_case("R8-PA1", "監査の対照")
    doc = api.create_document(case["id"], "specification", "仕様書", b"spec\n")
    for page, path in (
        ("/ui/", "/api/v1/cases"),
        (f"/ui/cases/{case['id']}", f"/api/v1/cases/{case['id']}"),
        (f"/ui/cases/{case['id']}", f"/api/v1/cases/{case['id']}/documents"),
        (f"/ui/documents/{doc['id']}", f"/api/v1/documents/{doc['id']}"),
        ("/ui/me", "/api/v1/me"),
        ("/ui/me", "/api/v1/me/tokens"),
    ):
        _twin(server, drafter, page, api.http, path)

    admin = browser_session(server, "admin")
    for page, path in (
        ("/ui/users", "/api/v1/users"),
        ("/ui/users/pa-drafter", "/api/v1/users/pa-drafter"),
    ):
        _twin(server, admin, page, server.admin.http, path)

    auditor = browser_session(server, "pa-aud", ["auditor"])
    aud_api = server.client(server.admin.create_token("pa-aud")["token"])
    _twin(server, auditor, "/ui/audit", aud_api.http, "/api/v1/audit/events")
    _twin(server, auditor, "/ui/reviews", aud_api.http, "/api/v1/reviews")


def test_refused_pages_are_audited_like_refused_api_calls(server: KinkoServer) -> None:
    owner = server.user("pa-owner", ["procurement"])
    case = owner.create_case("R8-PA2", "見えない案件")
    outsider = browser_session(server, "pa-outsider")
    api = server.client(server.admin.create_token("pa-outsider")["token"])
    # A case the caller may not know of: 404 on both, each a denied case.read.
    _twin(server, outsider, f"/ui/cases/{case['id']}", api.http, f"/api/v1/cases/{case['id']}")
    seen = _actions(server, "pa-outsider")
    assert any(("case.read", "deny") in v for v in seen.values())
    # Users and audit pages refuse a non-admin, non-auditor, as the API does, and say so.
    _twin(server, outsider, "/ui/users", api.http, "/api/v1/users")
    _twin(server, outsider, "/ui/audit", api.http, "/api/v1/audit/events")
