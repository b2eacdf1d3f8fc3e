"""The vendor-contact register (issue 12): prior reports, urgent approval after the review
request, acknowledgement, the report afterwards, overdue reports, CSV, sealed text."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from clients import KinkoClient
from tests.conftest import KinkoServer, serving


def tag() -> str:
    return uuid.uuid4().hex[:8]


def code(resp: httpx.Response) -> str:
    return str(resp.json()["error"]["code"])


def at(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KinkoServer]:
    # Overdue reports are looked for every half second here (every minute by default).
    with serving(tmp_path_factory.mktemp("contacts"), KINKO_OVERDUE_SWEEP_SECONDS="0.5") as srv:
        yield srv


@dataclass
class Case:
    id: str
    drafter: KinkoClient
    drafter2: KinkoClient
    sup1: KinkoClient
    sup2: KinkoClient
    names: dict[str, str]


def make_case(server: KinkoServer) -> Case:
    t = tag()
    names = {k: f"ct-{k}-{t}" for k in ("drafter", "drafter2", "sup1", "sup2")}
    drafter = server.user(names["drafter"], ["procurement"])
    case = drafter.create_case(f"CT-{t}", "道路補修工事")["id"]
    clients = {"drafter": drafter}
    for role, key in (("drafter", "drafter2"), ("supervisor", "sup1"), ("supervisor", "sup2")):
        clients[key] = server.user(names[key])
        server.admin.set_member(case, names[key], [role])
    return Case(case, drafter, clients["drafter2"], clients["sup1"], clients["sup2"], names)


def plan(c: Case, client: KinkoClient | None = None, **more: Any) -> httpx.Response:
    body: dict[str, Any] = {
        "vendor": "株式会社道路建設",
        "channel": "meeting",
        "planned_at": at(timedelta(hours=-1)),
        "participants": [c.names["drafter"], c.names["drafter2"]],
        "agenda": "仕様に関する質問への回答",
        **more,
    }
    return (client or c.drafter).http.post(f"/api/v1/cases/{c.id}/contacts", json=body)


def events(server: KinkoServer, auditor: KinkoClient, **filters: Any) -> list[dict[str, Any]]:
    return list(
        auditor.http.get("/api/v1/audit/events", params={**filters, "limit": 1000}).json()["events"]
    )


@pytest.fixture(scope="module")
def auditor(server: KinkoServer) -> KinkoClient:
    return server.user(f"ct-auditor-{tag()}", ["auditor"])


def test_prior_report_acknowledge_and_report(server: KinkoServer, auditor: KinkoClient) -> None:
    c = make_case(server)
    resp = plan(c)
    assert resp.status_code == 201, resp.text
    contact = resp.json()
    assert contact["status"] == "planned"
    assert contact["participants"] == [c.names["drafter"], c.names["drafter2"]]
    # Supervisors hear of it and find it in their inbox.
    notes = c.sup1.http.get("/api/v1/notifications").json()["notifications"]
    assert any(n["kind"] == "contact.planned" and n["subject_id"] == contact["id"] for n in notes)
    inbox = c.sup1.http.get("/api/v1/contacts", params={"case_id": c.id}).json()["contacts"]
    assert [x["id"] for x in inbox] == [contact["id"]]
    # The reporter does not acknowledge their own report; another supervisor does.
    own = plan(c, c.sup1).json()
    assert code(c.sup1.http.post(f"/api/v1/contacts/{own['id']}/acknowledge")) == "own_request"
    assert code(c.drafter2.http.post(f"/api/v1/contacts/{contact['id']}/acknowledge")) == (
        "supervisor_required"
    )
    ack = c.sup2.http.post(f"/api/v1/contacts/{contact['id']}/acknowledge")
    assert ack.status_code == 200, ack.text
    assert ack.json()["acknowledged_by"] == c.names["sup2"]
    assert c.sup1.http.post(f"/api/v1/contacts/{contact['id']}/acknowledge").status_code == 409
    # Only the reporter reports afterwards.
    report = {"summary": "質問に口頭で回答した", "information_provided": False}
    assert code(
        c.drafter2.http.post(f"/api/v1/contacts/{contact['id']}/report", json=report)
    ) == "reporter_only"  # fmt: skip
    done = c.drafter.http.post(f"/api/v1/contacts/{contact['id']}/report", json=report)
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["summary"]) == ("reported", "質問に口頭で回答した")
    again = c.drafter.http.post(f"/api/v1/contacts/{contact['id']}/report", json=report)
    assert code(again) == "already_reported"
    notes = c.sup2.http.get("/api/v1/notifications").json()["notifications"]
    assert any(n["kind"] == "contact.reported" for n in notes)
    # Every step is on the record with its actor.
    acts = [
        (e["action"], e["actor"], e["decision"])
        for e in events(server, auditor, case_id=c.id)
        if e["action"].startswith("contact.") and e["target"] == f"contact:{contact['id']}"
    ]
    assert ("contact.create", c.names["drafter"], "allow") in acts
    assert ("contact.acknowledge", c.names["sup2"], "allow") in acts
    assert ("contact.report", c.names["drafter2"], "deny") in acts
    assert ("contact.report", c.names["drafter"], "allow") in acts


def test_a_meeting_needs_two_participants_unless_minor(server: KinkoServer) -> None:
    c = make_case(server)
    one = plan(c, participants=[c.names["drafter"]])
    assert one.status_code == 400
    assert code(one) == "two_participants_required"
    assert plan(c, participants=[c.names["drafter"]], minor=True).status_code == 201
    assert plan(c, participants=[c.names["drafter"]], channel="phone").status_code == 201
    assert code(plan(c, participants=["nobody-here"])) == "invalid_participants"
    assert code(plan(c, channel="fax")) == "invalid_channel"


def test_after_the_review_request_only_an_approved_urgent_contact(server: KinkoServer) -> None:
    c = make_case(server)
    c.sup1.transition(c.id, "review")
    refused = plan(c)
    assert refused.status_code == 409
    assert code(refused) == "contact_prohibited"
    assert code(plan(c, urgent=True)) == "justification_required"
    urgent = plan(c, urgent=True, justification="災害による緊急の仕様確認")
    assert urgent.status_code == 201, urgent.text
    cid = urgent.json()["id"]
    assert urgent.json()["status"] == "pending_approval"
    notes = c.sup2.http.get("/api/v1/notifications").json()["notifications"]
    assert any(n["kind"] == "contact.urgent" and "災害" in n["text"] for n in notes)
    report = {"summary": "x", "information_provided": False}
    assert code(c.drafter.http.post(f"/api/v1/contacts/{cid}/report", json=report)) == (
        "not_approved"
    )
    own = plan(c, c.sup1, urgent=True, justification="緊急").json()
    assert code(c.sup1.http.post(f"/api/v1/contacts/{own['id']}/approve")) == "own_request"
    ok = c.sup2.http.post(f"/api/v1/contacts/{cid}/approve")
    assert ok.status_code == 200, ok.text
    assert (ok.json()["status"], ok.json()["approved_by"]) == ("planned", c.names["sup2"])


def test_information_provided_needs_an_approved_disclosure(server: KinkoServer) -> None:
    c = make_case(server)
    cid = plan(c).json()["id"]
    told = {"summary": "見積条件を説明", "information_provided": True}
    refused = c.drafter.http.post(f"/api/v1/contacts/{cid}/report", json=told)
    assert refused.status_code == 409
    assert code(refused) == "disclosure_required"
    doc = c.drafter.create_document(c.id, "specification", "仕様書.txt", b"spec")["id"]
    d = c.drafter.http.post(
        f"/api/v1/documents/{doc}/disclosures",
        json={
            "recipient_name": "佐藤",
            "recipient_organization": "株式会社道路建設",
            "recipient_email": "sato@road.example.co.jp",
            "reason": "説明のため",
        },
    ).json()
    # A disclosure only requested is not enough.
    pending = c.drafter.http.post(
        f"/api/v1/contacts/{cid}/report", json={**told, "disclosures": [d["id"]]}
    )
    assert code(pending) == "disclosure_required"
    assert c.sup1.http.post(f"/api/v1/disclosures/{d['id']}/approve").status_code == 200
    ok = c.drafter.http.post(
        f"/api/v1/contacts/{cid}/report", json={**told, "disclosures": [d["id"]]}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["disclosures"] == [d["id"]]
    assert ok.json()["information_provided"] is True


def test_a_report_before_the_contact_is_too_early(server: KinkoServer) -> None:
    c = make_case(server)
    cid = plan(c, planned_at=at(timedelta(days=1))).json()["id"]
    early = c.drafter.http.post(
        f"/api/v1/contacts/{cid}/report", json={"summary": "x", "information_provided": False}
    )
    assert early.status_code == 409
    assert code(early) == "not_yet"


def test_overdue_reports_show_and_notify_once(server: KinkoServer, auditor: KinkoClient) -> None:
    c = make_case(server)
    late = plan(c, planned_at=at(timedelta(days=-3))).json()
    fresh = plan(c, planned_at=at(timedelta(days=-1))).json()
    listed = {x["id"]: x for x in c.sup1.http.get(
        "/api/v1/contacts", params={"case_id": c.id}).json()["contacts"]}  # fmt: skip
    assert listed[late["id"]]["overdue"] is True
    assert listed[fresh["id"]]["overdue"] is False
    only = c.sup1.http.get("/api/v1/contacts", params={"status": "overdue"}).json()["contacts"]
    assert late["id"] in [x["id"] for x in only]
    assert fresh["id"] not in [x["id"] for x in only]
    deadline = time.monotonic() + 10
    kinds: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        notes = c.sup1.http.get("/api/v1/notifications").json()["notifications"]
        kinds = [n for n in notes if n["kind"] == "contact.overdue"]
        if kinds:
            break
        time.sleep(0.2)
    assert [n["subject_id"] for n in kinds] == [late["id"]]
    time.sleep(1.5)  # several more sweeps: still told once
    notes = c.sup1.http.get("/api/v1/notifications").json()["notifications"]
    assert [n["subject_id"] for n in notes if n["kind"] == "contact.overdue"] == [late["id"]]
    overdue = list(events(server, auditor, action="contact.overdue", case_id=c.id))
    assert len(overdue) == 1
    assert overdue[0]["actor"] is None


def test_the_register_as_csv_and_who_may_list_it(server: KinkoServer, auditor: KinkoClient) -> None:
    c = make_case(server)
    plan(c, vendor='=HYPERLINK("x")')
    plan(c, vendor="株式会社カンマ, 改行\n入り")
    resp = c.sup1.http.get("/api/v1/contacts", params={"case_id": c.id, "format": "csv"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    assert resp.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(resp.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["id", "case_id", "case_number", "status"]
    vendors = {r[rows[0].index("vendor")] for r in rows[1:]}
    assert vendors == {'\'=HYPERLINK("x")', "株式会社カンマ, 改行\n入り"}
    by_accept = c.sup1.http.get(
        "/api/v1/contacts", params={"case_id": c.id}, headers={"Accept": "text/csv"}
    )
    assert by_accept.content == resp.content
    # Auditors list every case's; an outsider learns nothing; an evaluator may not.
    assert len(auditor.http.get("/api/v1/contacts", params={"case_id": c.id}).json()[
        "contacts"]) == 2  # fmt: skip
    outsider = server.user(f"ct-out-{tag()}")
    assert outsider.http.get("/api/v1/contacts", params={"case_id": c.id}).status_code == 404
    assert outsider.http.get("/api/v1/contacts").status_code == 403
    evaluator_name = f"ct-eval-{tag()}"
    evaluator = server.user(evaluator_name)
    server.admin.set_member(c.id, evaluator_name, ["evaluator"])
    assert evaluator.http.get("/api/v1/contacts", params={"case_id": c.id}).status_code == 403
    one = c.sup1.http.get("/api/v1/contacts", params={"case_id": c.id}).json()["contacts"][0]
    assert evaluator.http.get(f"/api/v1/contacts/{one['id']}").status_code == 403
    assert server.admin.http.get(f"/api/v1/contacts/{one['id']}").status_code == 403
    assert auditor.http.get(f"/api/v1/contacts/{one['id']}").status_code == 200


def test_contact_text_is_sealed(server: KinkoServer) -> None:
    c = make_case(server)
    secret = "極秘工業-" + tag()
    cid = plan(c, vendor=secret, agenda="議題-" + secret).json()["id"]
    c.drafter.http.post(
        f"/api/v1/contacts/{cid}/report",
        json={"summary": "概要-" + secret, "information_provided": False},
    )
    for path in Path(server.data_dir).rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
