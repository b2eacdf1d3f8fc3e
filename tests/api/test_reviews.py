"""SPEC §6 and the ``/api/v1/reviews*`` rows of §7 over real HTTP, plus ``kinko review report``."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import insert

from clients import KinkoClient
from tests.conftest import ROOT, KinkoServer, make_server, server_cli_env
from vault.audit.log import canonical_bytes, format_time, leaf_hash
from vault.audit.models import AuditEvent
from vault.core import Vault
from vault.services import reviews as service
from vault.settings import Settings

LIST_KEYS = {
    "seq",
    "actor",
    "case_id",
    "case_number",
    "document_id",
    "class",
    "title",
    "purpose",
    "time",
    "status",
    "reads",
    "token_issuer",
    "membership_granted_by",
}
REPORT_KEYS = [
    "seq",
    "actor",
    "case_id",
    "case_number",
    "document_id",
    "class",
    "title",
    "purpose",
    "time",
    "reads",
    "status",
    "reviewer",
    "verdict",
    "note",
    "decided_at",
    "token_issuer",
    "membership_granted_by",
]


@dataclass
class Scene:
    drafter: KinkoClient
    drafter2: KinkoClient
    sup1: KinkoClient
    sup2: KinkoClient
    rev: KinkoClient
    other_sup: KinkoClient  # supervisor of another case only
    outsider: KinkoClient
    auditor: KinkoClient
    admin: KinkoClient
    anon: KinkoClient
    case: str
    other_case: str
    budget: str
    spec: str
    other_doc: str


@pytest.fixture(scope="module")
def scene(server: KinkoServer) -> Scene:
    tag = uuid.uuid4().hex[:6]
    drafter = server.user(f"rv-drafter-{tag}", ["procurement"])
    other_drafter = server.user(f"rv-odrafter-{tag}", ["procurement"])
    names = {k: f"rv-{k}-{tag}" for k in ("drafter2", "sup1", "sup2", "rev", "osup", "out")}
    clients = {k: server.user(n) for k, n in names.items()}
    case = drafter.create_case(f"RV-{tag}", "点検テスト")["id"]
    other_case = other_drafter.create_case(f"RVO-{tag}", "別案件")["id"]
    admin = server.admin
    admin.set_member(case, names["drafter2"], ["drafter"])
    admin.set_member(case, names["sup1"], ["supervisor"])
    admin.set_member(case, names["sup2"], ["supervisor"])
    admin.set_member(case, names["rev"], ["reviewer"])
    admin.set_member(other_case, names["osup"], ["supervisor"])
    budget = drafter.create_document(case, "budget", "予算額", b"budget v1")["id"]
    spec = drafter.create_document(case, "specification", "仕様書", b"spec v1")["id"]
    drafter.finalize(spec, 1)
    other_doc = other_drafter.create_document(other_case, "budget", "予算", b"other")["id"]
    # From "announced" on, the final specification is disclosed; the budget is not.
    clients["sup1"].transition(case, "announced")
    return Scene(
        drafter=drafter,
        drafter2=clients["drafter2"],
        sup1=clients["sup1"],
        sup2=clients["sup2"],
        rev=clients["rev"],
        other_sup=clients["osup"],
        outsider=clients["out"],
        auditor=server.user(f"rv-auditor-{tag}", ["auditor"]),
        admin=admin,
        anon=server.client(None),
        case=case,
        other_case=other_case,
        budget=budget,
        spec=spec,
        other_doc=other_doc,
    )


def me(client: KinkoClient) -> str:
    return str(client.me()["name"])


def read(client: KinkoClient, doc_id: str, purpose: str | None, status: int = 200) -> str:
    """Read a document's content; returns the request id."""
    headers = {} if purpose is None else {"X-Access-Purpose": quote(purpose, safe="")}
    resp = client.http.get(f"/api/v1/documents/{doc_id}/content", headers=headers)
    assert resp.status_code == status, resp.text
    return resp.headers["X-Request-Id"]


def event_of(auditor: KinkoClient, request_id: str, **filters: Any) -> dict[str, Any]:
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = auditor.audit_events(limit=1000, cursor=cursor, **filters)
        events += [e for e in page["events"] if e["request_id"] == request_id]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(events) == 1, events  # exactly one event per request
    return events[0]


def items(client: KinkoClient, status: str = "all") -> list[dict[str, Any]]:
    resp = client.http.get("/api/v1/reviews", params={"status": status})
    assert resp.status_code == 200, resp.text
    got = resp.json()["items"]
    assert all(set(i) == LIST_KEYS for i in got)
    return list(got)


def item_for(client: KinkoClient, actor: str, doc_id: str, purpose: str) -> dict[str, Any]:
    found = [
        i
        for i in items(client)
        if (i["actor"], i["document_id"], i["purpose"]) == (actor, doc_id, purpose)
    ]
    assert len(found) == 1, found
    return found[0]


def decide(client: KinkoClient, seq: int, verdict: str, note: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"verdict": verdict}
    if note is not None:
        body["note"] = note
    return client.http.post(f"/api/v1/reviews/{seq}", json=body)


def error_code(resp: httpx.Response) -> str:
    err = resp.json()["error"]
    assert set(err) == {"code", "message"}
    return str(err["code"])


def purpose() -> str:
    return f"契約審査の確認 {uuid.uuid4().hex[:8]}"


def shown(event_time: str, tz: str = "UTC") -> str:
    """How a review item shows an event's time: in KINKO_TIMEZONE, with offset, to the second."""
    t = datetime.fromisoformat(event_time.replace("Z", "+00:00"))
    return t.astimezone(ZoneInfo(tz)).isoformat(timespec="seconds")


# -- which reads open an item -----------------------------------------------------------------


def test_items_open_only_for_allowed_reads_of_non_disclosed_documents(scene: Scene) -> None:
    p = purpose()
    rid = read(scene.drafter, scene.budget, p)
    # Refused reads and reads of disclosed documents open nothing.
    read(scene.drafter, scene.budget, None, 400)
    read(scene.rev, scene.budget, p, 403)
    read(scene.outsider, scene.budget, p, 404)
    read(scene.drafter, scene.spec, p)  # the disclosed final version, by a member
    resp = scene.anon.http.get(f"/api/v1/public/documents/{scene.spec}/content")
    assert resp.status_code == 200

    event = event_of(scene.auditor, rid, action="document.read")
    assert (event["decision"], event["reason"]) == ("allow", "ok")
    all_items = items(scene.auditor)
    mine = [i for i in all_items if i["purpose"] == p]
    assert len(mine) == 1, mine
    item = mine[0]
    number = scene.auditor.http.get(f"/api/v1/cases/{scene.case}").json()["number"]
    assert item == {
        "seq": event["seq"],
        "actor": me(scene.drafter),
        "case_id": scene.case,
        "case_number": number,
        "document_id": scene.budget,
        "class": "budget",
        "title": "予算額",
        "purpose": p,
        "time": shown(event["time"]),
        "status": "pending",
        "reads": 1,
        # The reader's token was issued by the admin (tests mint tokens that way); the drafter
        # created the case, so nobody granted that membership.
        "token_issuer": "admin",
        "membership_granted_by": None,
    }
    assert not [i for i in all_items if i["document_id"] == scene.spec]
    assert not [i for i in all_items if i["actor"] in (me(scene.rev), me(scene.outsider))]


def test_repeated_reads_join_one_item_and_a_new_purpose_opens_another(scene: Scene) -> None:
    p, q = purpose(), purpose()
    first = read(scene.drafter, scene.budget, p)
    read(scene.drafter, scene.budget, p)
    read(scene.drafter, scene.budget, p)
    read(scene.drafter, scene.budget, q)
    read(scene.drafter2, scene.budget, p)  # another reader: an item of their own
    item = item_for(scene.auditor, me(scene.drafter), scene.budget, p)
    assert item["reads"] == 3
    assert item["seq"] == event_of(scene.auditor, first, action="document.read")["seq"]
    assert item_for(scene.auditor, me(scene.drafter), scene.budget, q)["reads"] == 1
    assert item_for(scene.auditor, me(scene.drafter2), scene.budget, p)["reads"] == 1


# -- who reviews what -------------------------------------------------------------------------


def test_nobody_reviews_their_own_read(scene: Scene) -> None:
    p = purpose()
    read(scene.sup1, scene.budget, p)
    item = item_for(scene.auditor, me(scene.sup1), scene.budget, p)
    # Not offered to the reader...
    assert item["seq"] not in {i["seq"] for i in items(scene.sup1)}
    # ...and refused if tried anyway, with the refusal in the log.
    resp = decide(scene.sup1, item["seq"], "confirmed")
    assert resp.status_code == 403, resp.text
    assert error_code(resp) == "own_read"
    ev = event_of(scene.auditor, resp.headers["X-Request-Id"], action="review.submit")
    assert (ev["actor"], ev["decision"], ev["reason"]) == (me(scene.sup1), "deny", "own_read")
    assert (ev["case_id"], ev["document_id"]) == (scene.case, scene.budget)

    # Another supervisor of the case may decide it.
    assert item["seq"] in {i["seq"] for i in items(scene.sup2, "pending")}
    resp = decide(scene.sup2, item["seq"], "confirmed", "目的どおり")
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert set(got) == set(REPORT_KEYS)
    assert {k: got[k] for k in ("seq", "actor", "status", "reviewer", "verdict", "note")} == {
        "seq": item["seq"],
        "actor": me(scene.sup1),
        "status": "confirmed",
        "reviewer": me(scene.sup2),
        "verdict": "confirmed",
        "note": "目的どおり",
    }
    ev = event_of(scene.auditor, resp.headers["X-Request-Id"], action="review.submit")
    assert (ev["actor"], ev["decision"], ev["reason"]) == (me(scene.sup2), "allow", "confirmed")
    assert (ev["case_id"], ev["document_id"], ev["target"]) == (
        scene.case,
        scene.budget,
        me(scene.sup1),
    )
    assert got["decided_at"] == shown(ev["time"])
    assert item["seq"] in {i["seq"] for i in items(scene.sup2, "confirmed")}
    assert item["seq"] not in {i["seq"] for i in items(scene.sup2, "pending")}

    # Decided once: a second decision is a conflict, and logged as refused.
    resp = decide(scene.auditor, item["seq"], "flagged", "再確認")
    assert resp.status_code == 409, resp.text
    assert error_code(resp) == "already_decided"
    ev = event_of(scene.auditor, resp.headers["X-Request-Id"], action="review.submit")
    assert (ev["decision"], ev["reason"]) == ("deny", "already_decided")


def test_who_may_decide(scene: Scene) -> None:
    p = purpose()
    read(scene.drafter, scene.budget, p)
    seq = item_for(scene.auditor, me(scene.drafter), scene.budget, p)["seq"]
    for client, status in (
        (scene.other_sup, 404),  # supervisor of another case: the item does not exist for them
        (scene.outsider, 404),
        (scene.drafter2, 403),  # a member, not a supervisor
        (scene.rev, 403),
        (scene.admin, 403),  # admin is not a reviewer
    ):
        resp = decide(client, seq, "confirmed")
        assert resp.status_code == status, (me(client), resp.text)
        ev = event_of(scene.auditor, resp.headers["X-Request-Id"], action="review.submit")
        assert ev["decision"] == "deny"
    for path in ("999999999", "not-a-seq"):
        resp = scene.auditor.http.post(f"/api/v1/reviews/{path}", json={"verdict": "confirmed"})
        assert resp.status_code == 404, resp.text
        assert error_code(resp) == "review_not_found"

    # Lists: a supervisor of another case sees none of this case's items; a drafter none at all.
    assert not [i for i in items(scene.other_sup) if i["case_id"] == scene.case]
    for client in (scene.drafter, scene.rev, scene.admin):
        resp = client.http.get("/api/v1/reviews")
        assert resp.status_code == 403, resp.text
        assert error_code(resp) == "reviewer_required"
    resp = scene.auditor.http.get("/api/v1/reviews", params={"status": "maybe"})
    assert resp.status_code == 400
    assert error_code(resp) == "invalid_status"
    ev = event_of(scene.auditor, resp.headers["X-Request-Id"], action="review.list")
    assert (ev["decision"], ev["reason"]) == ("deny", "invalid_status")

    bad_bodies: list[Any] = [
        {"verdict": "maybe"},
        {"verdict": "flagged"},
        {"verdict": "flagged", "note": "   "},
        {"verdict": "confirmed", "note": 5},
        {"verdict": "confirmed", "note": "x" * 2001},
        {"verdict": "confirmed", "notes": "typo"},
        ["confirmed"],
    ]
    for body in bad_bodies:
        resp = scene.auditor.http.post(f"/api/v1/reviews/{seq}", json=body)
        assert resp.status_code == 400, (body, resp.text)
        error_code(resp)
    resp = scene.auditor.http.post(f"/api/v1/reviews/{seq}", content=b"{not json")
    assert resp.status_code == 400

    # An auditor may decide any case's item.
    resp = decide(scene.auditor, seq, "flagged", "x" * 2000)
    assert resp.status_code == 200, resp.text
    assert (resp.json()["status"], resp.json()["reviewer"]) == ("flagged", me(scene.auditor))


def test_concurrent_decisions_one_wins(scene: Scene) -> None:
    seqs = []
    for _ in range(4):
        p = purpose()
        read(scene.drafter, scene.budget, p)
        seqs.append(item_for(scene.auditor, me(scene.drafter), scene.budget, p)["seq"])
    for seq in seqs:
        assert sorted(race([scene.sup1, scene.sup2, scene.auditor], seq)) == [200, 409, 409]


def race(clients: list[KinkoClient], seq: int) -> list[int]:
    """Send the same decision from every client at once; returns the status codes."""
    barrier = threading.Barrier(len(clients))
    results: list[int] = []

    def go(client: KinkoClient) -> None:
        barrier.wait()
        results.append(decide(client, seq, "confirmed").status_code)

    threads = [threading.Thread(target=go, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# -- the daily report ---------------------------------------------------------------------------


def report(client: KinkoClient, **params: str) -> httpx.Response:
    return client.http.get("/api/v1/reviews/report", params=params)


def parse_csv(resp: httpx.Response) -> list[list[str]]:
    assert resp.headers["content-type"].startswith("text/csv")
    assert "charset=utf-8" in resp.headers["content-type"]
    return csv_rows(resp.content)


def csv_rows(data: bytes) -> list[list[str]]:
    """Rows of a report as Excel reads it: a UTF-8 BOM first, CRLF after every line."""
    assert data.startswith(b"\xef\xbb\xbf"), data[:16]
    text = data.decode("utf-8")[1:]
    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", ""), "a bare LF line end"
    return list(csv.reader(io.StringIO(text, newline="")))


def test_report_json_and_csv(scene: Scene) -> None:
    p = purpose()
    rid = read(scene.drafter2, scene.budget, p)
    read(scene.other_sup, scene.other_doc, p)
    seq = item_for(scene.auditor, me(scene.drafter2), scene.budget, p)["seq"]
    tricky = 'reads "too many", see\r\nticket 7; ok'
    assert decide(scene.sup1, seq, "flagged", tricky).status_code == 200
    today = event_of(scene.auditor, rid, action="document.read")["time"][:10]  # UTC server

    resp = report(scene.auditor, date=today)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["date"], body["timezone"]) == (today, "UTC")
    assert all(set(i) == set(REPORT_KEYS) for i in body["items"])
    row = next(i for i in body["items"] if i["seq"] == seq)
    assert (row["status"], row["verdict"], row["reviewer"], row["note"]) == (
        "flagged",
        "flagged",
        me(scene.sup1),
        tricky,
    )
    assert {i["case_id"] for i in body["items"]} >= {scene.case, scene.other_case}
    assert all(i["time"][:10] == today for i in body["items"])

    # CSV by query parameter or by Accept header: a header row, then the same rows.
    for resp in (
        report(scene.auditor, date=today, format="csv"),
        scene.auditor.http.get(
            "/api/v1/reviews/report", params={"date": today}, headers={"Accept": "text/csv"}
        ),
    ):
        assert resp.status_code == 200, resp.text
        rows = parse_csv(resp)
        assert rows[0] == REPORT_KEYS
        assert len(rows) == len(body["items"]) + 1
        line = next(r for r in rows[1:] if r[0] == str(seq))
        assert dict(zip(REPORT_KEYS, line, strict=True))["note"] == tricky
        assert line[REPORT_KEYS.index("purpose")] == p
    # A day without reads still has the header row.
    rows = parse_csv(report(scene.auditor, date="2001-02-03", format="csv"))
    assert rows == [REPORT_KEYS]
    assert report(scene.auditor, date="2001-02-03").json()["items"] == []

    # A supervisor sees their cases only; a drafter nothing.
    mine = report(scene.other_sup, date=today).json()["items"]
    assert mine
    assert {i["case_id"] for i in mine} == {scene.other_case}
    assert report(scene.drafter, date=today).status_code == 403

    for bad in ("2026-02-30", "26-1-1", "yesterday", "2026-1-01", "２０２６-01-01"):
        resp = report(scene.auditor, date=bad)
        assert resp.status_code == 400, (bad, resp.text)
        assert error_code(resp) == "invalid_date"
        ev = event_of(scene.auditor, resp.headers["X-Request-Id"], action="review.report")
        assert (ev["decision"], ev["reason"]) == ("deny", "invalid_date")
    resp = report(scene.auditor, date=today, format="xml")
    assert resp.status_code == 400
    assert error_code(resp) == "invalid_format"


# -- coverage ---------------------------------------------------------------------------------


def test_coverage(fresh_server: KinkoServer) -> None:
    srv = fresh_server
    drafter = srv.user("cv-drafter", ["procurement"])
    auditor = srv.user("cv-auditor", ["auditor"])
    sup = srv.user("cv-sup")
    case = drafter.create_case("CV-1", "coverage")["id"]
    srv.admin.set_member(case, "cv-sup", ["supervisor"])

    def cov(**params: str) -> dict[str, Any]:
        resp = auditor.http.get("/api/v1/reviews/coverage", params=params)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    assert cov() == {
        "reads": 0,
        "reviewed": 0,
        "share_reviewed": None,
        "flagged": 0,
        "unreviewed_older": 0,
    }
    doc = drafter.create_document(case, "budget", "予算", b"x")["id"]
    for p in ("a", "a", "b", "c", "d"):
        read(drafter, doc, p)
    seqs = {i["purpose"]: i["seq"] for i in items(auditor)}
    assert decide(sup, seqs["a"], "confirmed").status_code == 200
    assert decide(auditor, seqs["b"], "flagged", "目的外").status_code == 200
    got = cov(older_than_days="0")
    assert got == {
        "reads": 4,
        "reviewed": 2,
        "share_reviewed": 0.5,
        "flagged": 1,
        "unreviewed_older": 2,
    }
    assert cov()["unreviewed_older"] == 0  # default: older than 7 days
    for bad in ("-1", "x", "1.5", "99999999999"):
        resp = auditor.http.get("/api/v1/reviews/coverage", params={"older_than_days": bad})
        assert resp.status_code == 400, (bad, resp.text)
    for client in (sup, drafter, srv.admin):
        resp = client.http.get("/api/v1/reviews/coverage")
        assert resp.status_code == 403, resp.text
        ev = event_of(auditor, resp.headers["X-Request-Id"], action="review.coverage")
        assert ev["decision"] == "deny"


# -- time zone ---------------------------------------------------------------------------------


def test_day_is_a_calendar_day_in_kinko_timezone(tmp_path: Path) -> None:
    srv = make_server(tmp_path, KINKO_TIMEZONE="Asia/Tokyo")
    srv.start()
    try:
        drafter = srv.user("tz-drafter", ["procurement"])
        auditor = srv.user("tz-auditor", ["auditor"])
        case = drafter.create_case("TZ-1", "時差")["id"]
        doc = drafter.create_document(case, "budget", "予算", b"x")["id"]
        rid = read(drafter, doc, "時差の確認")
        t = event_of(auditor, rid, action="document.read")["time"]
        jst = datetime.fromisoformat(t.replace("Z", "+00:00")).astimezone(ZoneInfo("Asia/Tokyo"))
        day = jst.date()
        body = report(auditor, date=day.isoformat()).json()
        assert body["timezone"] == "Asia/Tokyo"
        # The same instant, shown in the configured zone with its offset.
        (shown,) = [i["time"] for i in body["items"]]
        assert shown.endswith("+09:00")
        assert datetime.fromisoformat(shown) == jst.replace(microsecond=0)
        for other in (day - timedelta(days=1), day + timedelta(days=1)):
            assert report(auditor, date=other.isoformat()).json()["items"] == []
    finally:
        srv.close_clients()
        srv.stop()


def _fake_read(seq: int, when: str, actor: str, doc: str, purpose: str, reason: str) -> dict:
    event = {
        "seq": seq,
        "time": when,
        "actor": actor,
        "action": "document.read",
        "decision": "allow",
        "reason": reason,
        "case_id": "c" * 32,
        "document_id": doc,
        "version": 1,
        "class": "budget",
        "purpose": purpose,
        "target": None,
        "client": {"ip": None, "user_agent": None, "device": None},
        "request_id": f"r{seq}",
    }
    canon = canonical_bytes(event)
    return {
        "seq": seq,
        "time": when,
        "actor": actor,
        "action": "document.read",
        "decision": "allow",
        "case_id": event["case_id"],
        "document_id": doc,
        "canonical": canon,
        "leaf_hash": leaf_hash(canon),
    }


def test_jst_midnight_splits_items(tmp_path: Path) -> None:
    """Reads either side of midnight JST (15:00 UTC) are different days; UTC would join them."""
    settings = Settings(data_dir=tmp_path / "d", timezone="Asia/Tokyo")
    vault = Vault.open(settings, start_audit_writer=False)
    try:
        d = "d" * 32
        rows = [
            _fake_read(0, "2026-03-01T14:59:59.999999Z", "u", d, "p", "ok"),
            _fake_read(1, "2026-03-01T15:00:00.000000Z", "u", d, "p", "ok"),
            _fake_read(2, "2026-03-01T23:00:00.000000Z", "u", d, "p", "ok"),
            _fake_read(3, "2026-03-01T23:30:00.000000Z", "u", d, "p", "disclosed"),
        ]
        # The rows go straight into a throwaway store: only the review index reads them.
        with vault.audit_engine.begin() as conn:
            conn.execute(insert(AuditEvent), rows)
        assert service.sync(vault) == 4
        assert service.sync(vault) == 0  # nothing new: nothing folded twice
        viewer = service.OPERATOR
        first = service.report(vault, date(2026, 3, 1), viewer=viewer)["items"]
        second = service.report(vault, date(2026, 3, 2), viewer=viewer)["items"]
        assert [(i["seq"], i["reads"]) for i in first] == [(0, 1)]
        assert [(i["seq"], i["reads"]) for i in second] == [(1, 2)]
        assert first[0]["time"] == "2026-03-01T23:59:59+09:00"
        assert second[0]["time"] == "2026-03-02T00:00:00+09:00"
        csv_bytes = service.report_csv(service.report(vault, date(2026, 3, 3), viewer=viewer))
        assert csv_bytes == ("\ufeff" + ",".join(REPORT_KEYS) + "\r\n").encode()
    finally:
        vault.close()


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_report_beside_a_running_server(server: KinkoServer, scene: Scene) -> None:
    p = purpose()
    rid = read(scene.drafter, scene.budget, p)
    today = event_of(scene.auditor, rid, action="document.read")["time"][:10]
    env = server_cli_env(server)
    base = [sys.executable, "-m", "vault.cli.main", "review", "report"]
    args = ["--data-dir", str(server.data_dir), "--date", today]

    out = subprocess.run(base + args, env=env, cwd=ROOT, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    cli = json.loads(out.stdout)
    api = report(scene.auditor, date=today).json()
    assert (cli["date"], cli["timezone"]) == (today, "UTC")
    # The auditor's API report is the full report too (read after the CLI: it may only grow).
    assert cli["items"] == api["items"][: len(cli["items"])]
    assert any(i["purpose"] == p for i in cli["items"])
    assert {i["case_id"] for i in cli["items"]} >= {scene.case, scene.other_case}

    out = subprocess.run(
        [*base, *args, "--format", "csv"], env=env, cwd=ROOT, capture_output=True, timeout=60
    )
    assert out.returncode == 0, out.stderr.decode()
    rows = csv_rows(out.stdout)
    assert rows[0] == REPORT_KEYS
    assert [r[0] for r in rows[1:]] == [str(i["seq"]) for i in cli["items"]]

    out = subprocess.run(
        [*base, "--data-dir", str(server.data_dir), "--date", "2026-13-01"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert out.returncode != 0
    # The server is unaffected and still answers.
    assert scene.auditor.http.get("/api/v1/reviews").status_code == 200


def test_format_time_matches_event_times() -> None:
    # The report's day range is compared with event times as strings: same fixed format.
    assert format_time(datetime(2026, 3, 1, 15, tzinfo=UTC)) == "2026-03-01T15:00:00.000000Z"


# -- what a reviewer sees of the document, and the report in Japanese Excel -----------------------


def _policy_without_evaluator_names_for_supervisors(tmp: Path) -> Path:
    """The shipped policies, except that supervisors may not read ``evaluator_names``.

    An operator may tighten the table like this; a supervisor then still reviews the case's
    reads but may not see that document's title.
    """
    from vault.domain import CLASSES
    from vault.settings import default_policies_dir

    shipped = default_policies_dir()
    out = tmp / "policies"
    out.mkdir()
    for name in ("model.conf", "disclosure.csv"):
        (out / name).write_bytes((shipped / name).read_bytes())
    lines = (shipped / "policy.csv").read_text().splitlines()
    assert "p, supervisor, *, read, *" in lines
    lines.remove("p, supervisor, *, read, *")
    lines += [f"p, supervisor, {c}, read, *" for c in CLASSES if c != "evaluator_names"]
    (out / "policy.csv").write_text("\n".join(lines) + "\n")
    return out


def test_items_and_csv_name_the_document_for_those_who_may_see_it(tmp_path: Path) -> None:
    policies = _policy_without_evaluator_names_for_supervisors(tmp_path)
    srv = make_server(tmp_path, KINKO_TIMEZONE="Asia/Tokyo", KINKO_POLICIES_DIR=str(policies))
    srv.start()
    try:
        drafter = srv.user("xl-drafter", ["procurement"])
        sup = srv.user("xl-sup")
        auditor = srv.user("xl-auditor", ["auditor"])
        case = drafter.create_case("R8-XL1", "表計算の確認")["id"]
        srv.admin.set_member(case, "xl-sup", ["supervisor"])
        budget_title = "予算書（第1版）・部外秘.xlsx"
        budget = drafter.create_document(case, "budget", budget_title, b"budget")["id"]
        names = drafter.create_document(case, "evaluator_names", "評価委員名簿.txt", b"n")["id"]
        p = "予算の確認 / checking the budget"
        rid = read(drafter, budget, p)
        read(drafter, names, p)
        t = event_of(auditor, rid, action="document.read")["time"]
        day = datetime.fromisoformat(t.replace("Z", "+00:00")).astimezone(ZoneInfo("Asia/Tokyo"))

        # The pending list: case number, class, and the title where the caller may see it.
        def pending(client: KinkoClient) -> dict[str, dict[str, Any]]:
            return {i["document_id"]: i for i in items(client, "pending")}

        seen_by_auditor = pending(auditor)
        assert seen_by_auditor[budget]["case_number"] == "R8-XL1"
        assert seen_by_auditor[budget]["class"] == "budget"
        assert seen_by_auditor[budget]["title"] == budget_title
        assert seen_by_auditor[names]["title"] == "評価委員名簿.txt"  # auditors see metadata
        assert seen_by_auditor[budget]["time"] == shown(t, "Asia/Tokyo")
        assert seen_by_auditor[budget]["time"].endswith("+09:00")
        seen_by_sup = pending(sup)
        assert seen_by_sup[budget]["title"] == budget_title
        # This supervisor may not read evaluator_names here: the read is theirs to review, but
        # its title is not theirs to see (class and case number still say what it is).
        assert seen_by_sup[names]["title"] is None
        assert (seen_by_sup[names]["class"], seen_by_sup[names]["case_number"]) == (
            "evaluator_names",
            "R8-XL1",
        )
        decided = decide(sup, seen_by_sup[budget]["seq"], "confirmed", "予算確認のため")
        assert decided.status_code == 200, decided.text
        assert decided.json()["decided_at"].endswith("+09:00")
        assert decided.json()["title"] == budget_title

        # The CSV as Japanese Excel opens it: BOM, CRLF, titles intact, local times.
        def csv_for(client: KinkoClient) -> dict[str, dict[str, str]]:
            resp = report(client, date=day.date().isoformat(), format="csv")
            assert resp.status_code == 200, resp.text
            rows = parse_csv(resp)
            assert rows[0] == REPORT_KEYS
            return {r[REPORT_KEYS.index("document_id")]: dict(zip(rows[0], r, strict=True))
                    for r in rows[1:]}  # fmt: skip

        by_auditor = csv_for(auditor)
        row = by_auditor[budget]
        what = (row["case_number"], row["class"], row["title"])
        assert what == ("R8-XL1", "budget", budget_title)
        assert row["purpose"] == p
        assert row["time"] == shown(t, "Asia/Tokyo")
        assert row["decided_at"].endswith("+09:00")
        assert by_auditor[names]["title"] == "評価委員名簿.txt"
        by_sup = csv_for(sup)
        assert by_sup[budget]["title"] == budget_title
        assert by_sup[names]["title"] == ""
        assert by_sup[names]["class"] == "evaluator_names"

        # kinko review report on the data directory: the same bytes a spreadsheet expects.
        env = server_cli_env(srv, KINKO_TIMEZONE="Asia/Tokyo")
        out = subprocess.run(
            [sys.executable, "-m", "vault.cli.main", "review", "report", "--data-dir",
             str(srv.data_dir), "--date", day.date().isoformat(), "--format", "csv"],
            env=env, cwd=ROOT, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr.decode()
        rows = csv_rows(out.stdout)
        cli = {r[REPORT_KEYS.index("document_id")]: dict(zip(rows[0], r, strict=True))
               for r in rows[1:]}  # fmt: skip
        assert cli[budget]["title"] == budget_title
        assert cli[budget]["time"] == shown(t, "Asia/Tokyo")
    finally:
        srv.close_clients()
        srv.stop()


def test_titles_of_a_shredded_case_are_gone_from_the_report(fresh_server: KinkoServer) -> None:
    srv = fresh_server
    drafter = srv.user("sh-drafter", ["procurement"])
    sup = srv.user("sh-sup")
    auditor = srv.user("sh-auditor", ["auditor"])
    case = drafter.create_case("R8-SH1", "廃棄予定")["id"]
    srv.admin.set_member(case, "sh-sup", ["supervisor"])
    doc = drafter.create_document(case, "budget", "予算.xlsx", b"x")["id"]
    rid = read(drafter, doc, "廃棄前の確認")
    today = event_of(auditor, rid, action="document.read")["time"][:10]
    sup.transition(case, "closed")
    env = server_cli_env(srv)
    shred = subprocess.run(
        [sys.executable, "-m", "vault.cli.main", "case", "shred", "R8-SH1", "--confirm",
         "--data-dir", str(srv.data_dir)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert shred.returncode == 0, shred.stderr
    resp = report(auditor, date=today)
    assert resp.status_code == 200, resp.text
    (item,) = [i for i in resp.json()["items"] if i["document_id"] == doc]
    assert (item["case_number"], item["class"], item["title"]) == ("R8-SH1", "budget", None)
    assert [i["title"] for i in items(auditor) if i["document_id"] == doc] == [None]
