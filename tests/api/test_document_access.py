"""``GET /api/v1/documents/{id}/access`` (issue 9): who may read a document now and at the
next scheduled transition, as the guard itself decides, checked against real reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from clients import KinkoClient
from tests.conftest import KinkoServer

PURPOSE = {"X-Access-Purpose": quote("閲覧権限の確認", safe="")}


@dataclass
class Scene:
    srv: KinkoServer
    tag: str
    clients: dict[str, KinkoClient]
    case: str
    spec: str

    def name(self, who: str) -> str:
        return f"ac-{who}-{self.tag}"


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def scene(server: KinkoServer) -> Scene:
    tag = uuid.uuid4().hex[:6]
    admin = server.admin
    clients = {"admin": admin, "anon": server.client(None)}
    for who, roles in [
        ("drafter", ["procurement"]),
        ("sup", []),
        ("eval", []),
        ("rev", []),
        ("temp", []),
        ("gone", []),
        ("outsider", []),
        ("auditor", ["auditor"]),
    ]:
        clients[who] = server.user(f"ac-{who}-{tag}", roles)
    case = clients["drafter"].create_case(f"AC-{tag}", "閲覧権限")["id"]
    soon = rfc3339(datetime.now(UTC) + timedelta(minutes=30))
    admin.set_member(case, f"ac-sup-{tag}", ["supervisor"])
    admin.set_member(case, f"ac-eval-{tag}", ["evaluator"])
    admin.set_member(case, f"ac-rev-{tag}", ["reviewer"])
    admin.set_member(case, f"ac-temp-{tag}", ["drafter", "reviewer"], expires_at=soon)
    admin.set_member(case, f"ac-gone-{tag}", ["drafter"])
    # An admin with a case role still never reads non-disclosed content (SPEC §4.2).
    admin.set_member(case, "admin", ["drafter"])
    spec = clients["drafter"].create_document(case, "specification", "仕様書", b"spec v1")["id"]
    assert admin.http.post(f"/api/v1/users/ac-gone-{tag}/disable").status_code == 200
    return Scene(srv=server, tag=tag, clients=clients, case=case, spec=spec)


def access(client: KinkoClient, doc: str) -> httpx.Response:
    return client.http.get(f"/api/v1/documents/{doc}/access")


def readers(body: dict[str, Any]) -> dict[str, tuple[list[str], int]]:
    return {r["name"]: (r["roles"], r["rule"]) for r in body["readers"]}


def test_readers_now_match_real_reads(scene: Scene) -> None:
    body = access(scene.clients["sup"], scene.spec).json()
    assert body["stage"] == "drafting"
    assert body["public"] is False
    assert readers(body) == {
        scene.name("drafter"): (["drafter"], 1),
        scene.name("sup"): (["supervisor"], 1),
        scene.name("temp"): (["drafter"], 1),
    }
    temp = next(r for r in body["readers"] if r["name"] == scene.name("temp"))
    assert temp["expires_at"] is not None
    # Every member the answer names reads the document; every other member is refused.
    for who in ("drafter", "sup", "temp", "eval", "rev", "admin"):
        resp = scene.clients[who].http.get(
            f"/api/v1/documents/{scene.spec}/content", headers=PURPOSE
        )
        expected = 200 if scene.name(who) in readers(body) else 403
        assert resp.status_code == expected, who


def test_next_scheduled_transition_names_who_gains_and_loses(scene: Scene) -> None:
    sup = scene.clients["sup"]
    # The temporary member's membership ends before the review starts.
    at = datetime.now(UTC) + timedelta(hours=1)
    planned = sup.transition(scene.case, "review", at=rfc3339(at))
    try:
        body = access(sup, scene.spec).json()
        nxt = body["next_transition"]
        assert nxt["id"] == planned["id"]
        assert (nxt["stage"], nxt["at"], nxt["public"]) == ("review", planned["at"], False)
        assert readers(nxt) == {
            scene.name("drafter"): (["drafter"], 1),
            scene.name("sup"): (["supervisor"], 1),
            scene.name("rev"): (["reviewer"], 1),
        }
        assert nxt["gains"] == [scene.name("rev")]
        assert nxt["loses"] == [scene.name("temp")]
    finally:
        resp = sup.http.delete(f"/api/v1/cases/{scene.case}/transitions/{planned['id']}")
        assert resp.status_code == 204
    assert access(sup, scene.spec).json()["next_transition"] is None


def test_who_may_ask(scene: Scene) -> None:
    c = scene.clients
    for who in ("sup", "auditor", "admin"):
        assert access(c[who], scene.spec).status_code == 200, who
    for who in ("drafter", "eval", "rev"):
        resp = access(c[who], scene.spec)
        assert resp.status_code == 403, who
        assert resp.json()["error"]["code"] == "access_overview_not_permitted"
    missing = access(c["outsider"], "0" * 32)
    hidden = access(c["outsider"], scene.spec)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    assert access(c["admin"], "0" * 32).status_code == 404
    assert access(c["anon"], scene.spec).status_code == 401
    events = c["auditor"].audit_events(document_id=scene.spec, action="document.access")
    outcomes = [(e["actor"], e["decision"], e["reason"]) for e in events["events"]]
    assert (scene.name("sup"), "allow", "ok") in outcomes
    assert (scene.name("drafter"), "deny", "access_overview_not_permitted") in outcomes
    assert (scene.name("outsider"), "deny", "document_not_found") in outcomes
    assert all(e["case_id"] == scene.case for e in events["events"])


def test_a_disclosed_document_is_public_and_outsiders_get_403(scene: Scene) -> None:
    c = scene.clients
    case = c["drafter"].create_case(f"ACD-{scene.tag}", "公告")["id"]
    c["admin"].set_member(case, scene.name("sup"), ["supervisor"])
    doc = c["drafter"].create_document(case, "specification", "公告仕様書", b"final")["id"]
    c["drafter"].finalize(doc, 1)
    at = datetime.now(UTC) + timedelta(hours=2)
    c["sup"].transition(case, "announced", at=rfc3339(at))
    nxt = access(c["sup"], doc).json()["next_transition"]
    assert (nxt["stage"], nxt["public"]) == ("announced", True)
    # Cancel and announce now: the document is public and the outsider may know of it.
    c["sup"].http.delete(f"/api/v1/cases/{case}/transitions/{nxt['id']}")
    c["sup"].transition(case, "announced")
    body = access(c["auditor"], doc).json()
    assert (body["stage"], body["public"], body["final_version"]) == ("announced", True, 1)
    assert access(c["outsider"], doc).status_code == 403
