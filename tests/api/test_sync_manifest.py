"""GET /api/v1/sync/manifest over real HTTP: what a sync client mirrors, and when it changes."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from conftest import ROOT, KinkoServer

from clients import KinkoClient

PURPOSE = {"X-Access-Purpose": "sync%20manifest%20test"}
URL = "/api/v1/sync/manifest"
ALL_BUT_SCORES = [
    "schedule",
    "specification",
    "evaluation_criteria",
    "competition",
    "budget",
    "estimated_price",
    "evaluator_names",
    "proposal",
    "contact_record",
]


@dataclass
class People:
    admin: KinkoClient
    drafter: KinkoClient
    sup: KinkoClient
    ev: KinkoClient
    rev: KinkoClient
    outsider: KinkoClient
    auditor: KinkoClient
    anon: KinkoClient


@pytest.fixture(scope="module")
def people(server: KinkoServer) -> People:
    return People(
        admin=server.admin,
        drafter=server.user("sm-drafter", ["procurement"]),
        sup=server.user("sm-sup"),
        ev=server.user("sm-ev"),
        rev=server.user("sm-rev"),
        outsider=server.user("sm-outsider", ["procurement"]),
        auditor=server.user("sm-auditor", ["auditor"]),
        anon=server.client(None),
    )


def new_case(p: People) -> str:
    case_id = p.drafter.create_case(f"SM-{uuid.uuid4().hex[:12]}", "同期テスト")["id"]
    p.admin.set_member(case_id, "sm-sup", ["supervisor"])
    p.admin.set_member(case_id, "sm-rev", ["reviewer"])
    p.admin.set_member(case_id, "sm-ev", ["evaluator"])
    return case_id


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def sleep_until(t: datetime, slack: float = 0.4) -> None:
    delay = (t - datetime.now(UTC)).total_seconds() + slack
    if delay > 0:
        time.sleep(delay)


def fetch(c: KinkoClient, etag: str | None = None) -> httpx.Response:
    headers = {} if etag is None else {"If-None-Match": etag}
    return c.http.get(URL, headers=headers)


def manifest(c: KinkoClient) -> tuple[dict[str, Any], str]:
    resp = fetch(c)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    etag = resp.headers["ETag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert not etag.startswith("W/")
    body = resp.json()
    assert set(body) == {"generated_at", "cases", "documents"}
    return dict(body), etag


def docs_of(body: dict[str, Any], case_id: str) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in body["documents"] if d["case_id"] == case_id}


def case_of(body: dict[str, Any], case_id: str) -> dict[str, Any] | None:
    found = [c for c in body["cases"] if c["id"] == case_id]
    return found[0] if found else None


def assert_matches_content_decisions(c: KinkoClient, case_id: str, doc_ids: list[str]) -> None:
    """The manifest lists exactly what GET .../content (no version) serves, at that version."""
    body, _ = manifest(c)
    listed = docs_of(body, case_id)
    served: dict[str, tuple[int, int, str]] = {}
    for doc_id in doc_ids:
        resp = c.http.get(f"/api/v1/documents/{doc_id}/content", headers=PURPOSE)
        assert resp.status_code in (200, 403, 404), resp.text
        if resp.status_code == 200:
            served[doc_id] = (
                int(resp.headers["X-Kinko-Version"]),
                len(resp.content),
                resp.headers["X-Kinko-Sha256"],
            )
    assert set(listed) == set(served)
    for doc_id, (version, size, sha) in served.items():
        item = listed[doc_id]
        assert (item["version"], item["size"], item["sha256"]) == (version, size, sha)
    for item in listed.values():
        assert set(item) == {
            "id",
            "case_id",
            "case_number",
            "class",
            "title",
            "version",
            "size",
            "sha256",
            "final_version",
            "rule",
        }


# -- what is listed ------------------------------------------------------------------------------


def test_lists_exactly_what_each_role_may_read(people: People) -> None:
    p = people
    case = new_case(p)
    number = p.drafter.case(case)["number"]
    mk = p.drafter.create_document
    spec = mk(case, "specification", "仕様書", b"spec v1 final")["id"]
    p.drafter.finalize(spec, 1)
    p.drafter.put_content(spec, b"spec v2 draft")
    budget = mk(case, "budget", "予算", b"budget v1")["id"]
    p.drafter.put_content(budget, b"budget v2 final")
    p.drafter.finalize(budget, 2)
    p.drafter.put_content(budget, b"budget v3 draft")
    proposal = mk(case, "proposal", "提案書", b"proposal")["id"]
    names = mk(case, "evaluator_names", "委員名", b"names")["id"]
    schedule = mk(case, "schedule", "日程", b"schedule")["id"]
    ids = [spec, budget, proposal, names, schedule]

    # Drafting: the drafter reads and writes everything but technical scores; others nothing.
    body, _ = manifest(p.drafter)
    assert case_of(body, case) == {
        "id": case,
        "number": number,
        "stage": "drafting",
        "writable_classes": ALL_BUT_SCORES,
    }
    drafter_docs = docs_of(body, case)
    assert drafter_docs[spec] == {
        "id": spec,
        "case_id": case,
        "case_number": number,
        "class": "specification",
        "title": "仕様書",
        "version": 2,
        "size": len(b"spec v2 draft"),
        "sha256": drafter_docs[spec]["sha256"],
        "final_version": 1,
        "rule": 1,
    }
    assert {d["rule"] for d in drafter_docs.values()} == {1}
    for c in (p.drafter, p.sup, p.ev, p.rev):
        assert_matches_content_decisions(c, case, ids)
    body, _ = manifest(p.ev)
    assert case_of(body, case) == {
        "id": case,
        "number": number,
        "stage": "drafting",
        "writable_classes": [],
    }
    assert docs_of(body, case) == {}

    # Review: the reviewer reads the procurement plan (rule 1, latest versions).
    p.sup.transition(case, "review")
    body, _ = manifest(p.rev)
    rev_docs = docs_of(body, case)
    assert set(rev_docs) == {spec, budget, schedule}
    assert rev_docs[budget]["version"] == 3
    assert case_of(body, case)["writable_classes"] == []  # type: ignore[index]
    assert_matches_content_decisions(p.rev, case, ids)

    # Evaluation: the evaluator reads what evaluation needs and writes technical scores.
    p.sup.transition(case, "evaluation")
    scores = p.ev.create_document(case, "technical_scores", "技術点", b"A: 80")["id"]
    ids.append(scores)
    body, _ = manifest(p.ev)
    assert case_of(body, case)["writable_classes"] == ["technical_scores"]  # type: ignore[index]
    ev_docs = docs_of(body, case)
    assert set(ev_docs) == {spec, proposal, scores}
    assert ev_docs[spec]["version"] == 2
    assert ev_docs[spec]["rule"] == 1
    for c in (p.ev, p.rev, p.drafter):
        assert_matches_content_decisions(c, case, ids)
    # The reviewer (no role permission now) sees the announced-stage classes by rule 2 only.
    rev_docs = docs_of(manifest(p.rev)[0], case)
    assert set(rev_docs) == {spec}
    assert (rev_docs[spec]["version"], rev_docs[spec]["rule"]) == (1, 2)
    assert rev_docs[spec]["size"] == len(b"spec v1 final")

    # Awarded: the budget's final version is disclosed; drafts are never named.
    p.sup.transition(case, "awarded")
    rev_docs = docs_of(manifest(p.rev)[0], case)
    assert set(rev_docs) == {spec, budget}
    assert (rev_docs[budget]["version"], rev_docs[budget]["rule"]) == (2, 2)
    assert rev_docs[budget]["final_version"] == 2
    # An evaluator outside evaluation: nothing by role; the scores are not final, so not listed.
    ev_body, _ = manifest(p.ev)
    assert case_of(ev_body, case)["writable_classes"] == []  # type: ignore[index]
    assert set(docs_of(ev_body, case)) == {spec, budget}
    for c in (p.ev, p.rev, p.sup):
        assert_matches_content_decisions(c, case, ids)

    # Non-members get nothing of the case, even disclosed documents (those are /public).
    out_body, _ = manifest(p.outsider)
    assert case_of(out_body, case) is None
    assert docs_of(out_body, case) == {}
    # Admin and auditor never read content: no documents (and no cases without a membership).
    for overseer in (p.admin, p.auditor):
        o_body, _ = manifest(overseer)
        assert o_body["documents"] == []
        assert case_of(o_body, case) is None


# -- ETag and change detection -------------------------------------------------------------------


def test_etag_is_stable_and_changes_with_content(people: People) -> None:
    p = people
    case = new_case(p)
    doc = p.drafter.create_document(case, "schedule", "日程", b"v1")["id"]
    body1, etag = manifest(p.drafter)
    body2, again = manifest(p.drafter)
    assert again == etag
    assert body2["cases"] == body1["cases"]
    assert body2["documents"] == body1["documents"]

    for header in (etag, f"W/{etag}", f'"nope", {etag}'):
        resp = fetch(p.drafter, header)
        assert resp.status_code == 304, (header, resp.text)
        assert resp.content == b""
        assert resp.headers["ETag"] == etag
        assert resp.headers["Cache-Control"] == "no-store"
    assert fetch(p.drafter, '"something-else"').status_code == 200
    # "*" would let a client learn of changes without a logged request: it gets the answer.
    assert fetch(p.drafter, "*").status_code == 200

    def changed(old: str) -> tuple[dict[str, Any], str]:
        resp = fetch(p.drafter, old)
        assert resp.status_code == 200, resp.text
        assert resp.headers["ETag"] != old
        return dict(resp.json()), resp.headers["ETag"]

    p.drafter.put_content(doc, b"v2")
    body, etag = changed(etag)
    assert docs_of(body, case)[doc]["version"] == 2

    p.drafter.finalize(doc, 1)
    body, etag = changed(etag)
    assert docs_of(body, case)[doc]["final_version"] == 1

    new = p.drafter.create_document(case, "budget", "新しい予算 📄", b"B")["id"]
    body, etag = changed(etag)
    assert docs_of(body, case)[new]["title"] == "新しい予算 📄"

    p.sup.transition(case, "rfi")
    body, etag = changed(etag)
    assert case_of(body, case)["stage"] == "rfi"  # type: ignore[index]

    # A change elsewhere in the vault that this user cannot see leaves the ETag alone.
    other = p.outsider.create_case(f"SM-other-{uuid.uuid4().hex[:8]}", "他")["id"]
    p.outsider.create_document(other, "budget", "他の予算", b"x")
    assert fetch(p.drafter, etag).status_code == 304


def test_scheduled_transition_changes_the_manifest_at_its_instant(people: People) -> None:
    p = people
    case = new_case(p)
    spec = p.drafter.create_document(case, "specification", "仕様書", b"spec final")["id"]
    p.drafter.finalize(spec, 1)
    p.drafter.put_content(spec, b"spec draft v2")
    budget = p.drafter.create_document(case, "budget", "予算", b"budget")["id"]
    p.sup.transition(case, "review")

    at = datetime.now(UTC) + timedelta(seconds=2.5)
    p.sup.transition(case, "announced", at=rfc3339(at))
    body, etag = manifest(p.rev)
    rev_docs = docs_of(body, case)
    assert set(rev_docs) == {spec, budget}
    assert (rev_docs[spec]["version"], rev_docs[spec]["rule"]) == (2, 1)
    assert case_of(body, case)["stage"] == "review"  # type: ignore[index]
    assert fetch(p.rev, etag).status_code == 304
    assert datetime.now(UTC) < at, "the checks before the instant ran too late to mean anything"

    # After the instant, with no other request in between: the reviewer lost the budget and
    # the draft, and keeps only the disclosed final version of the specification.
    sleep_until(at)
    resp = fetch(p.rev, etag)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert case_of(body, case)["stage"] == "announced"  # type: ignore[index]
    rev_docs = docs_of(body, case)
    assert set(rev_docs) == {spec}
    assert (rev_docs[spec]["version"], rev_docs[spec]["rule"]) == (1, 2)
    assert_matches_content_decisions(p.rev, case, [spec, budget])


def test_membership_removal_and_expiry(server: KinkoServer, people: People) -> None:
    p = people
    temp = server.user("sm-temp")
    gone = server.user("sm-gone")
    case = new_case(p)
    budget = p.drafter.create_document(case, "budget", "予算", b"100 yen")["id"]
    p.sup.transition(case, "review")
    p.admin.set_member(case, "sm-gone", ["reviewer"])
    expires = datetime.now(UTC) + timedelta(seconds=2)
    p.admin.set_member(case, "sm-temp", ["reviewer"], expires_at=rfc3339(expires))

    temp_body, temp_etag = manifest(temp)
    assert case_of(temp_body, case) is not None
    assert set(docs_of(temp_body, case)) == {budget}
    gone_body, gone_etag = manifest(gone)
    assert set(docs_of(gone_body, case)) == {budget}

    resp = p.sup.http.delete(f"/api/v1/cases/{case}/members/sm-gone")
    assert resp.status_code == 204, resp.text
    resp = fetch(gone, gone_etag)
    assert resp.status_code == 200
    assert case_of(resp.json(), case) is None
    assert docs_of(resp.json(), case) == {}

    assert fetch(temp, temp_etag).status_code == 304
    assert datetime.now(UTC) < expires
    sleep_until(expires)
    resp = fetch(temp, temp_etag)
    assert resp.status_code == 200
    assert case_of(resp.json(), case) is None
    assert docs_of(resp.json(), case) == {}


def test_shredded_cases_are_skipped(server: KinkoServer, people: People) -> None:
    p = people
    closed = new_case(p)
    kept = new_case(p)
    gone_doc = p.drafter.create_document(closed, "budget", "予算", b"secret")["id"]
    kept_doc = p.drafter.create_document(kept, "budget", "予算", b"kept")["id"]
    p.sup.transition(closed, "closed")
    assert gone_doc in docs_of(manifest(p.drafter)[0], closed)
    argv = [sys.executable, "-m", "vault.cli.main", "case", "shred", closed, "--confirm"]
    argv += ["--data-dir", str(server.data_dir)]
    res = subprocess.run(
        argv, env=server.env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert res.returncode == 0, res.stderr
    body, _ = manifest(p.drafter)
    assert case_of(body, closed) is None
    assert docs_of(body, closed) == {}
    assert kept_doc in docs_of(body, kept)


# -- authentication, audit, schema ---------------------------------------------------------------


def test_not_signed_in_is_401(server: KinkoServer, people: People) -> None:
    for client in (people.anon, server.client("not-a-real-token")):
        resp = fetch(client)
        assert resp.status_code == 401, resp.text
        assert set(resp.json()["error"]) == {"code", "message"}
    events = people.auditor.audit_events(action="auth.fail", limit=1000)["events"]
    assert any(e["actor"] is None and e["decision"] == "deny" for e in events)


def test_200_is_logged_and_304_is_not(server: KinkoServer, people: People) -> None:
    poller = server.user("sm-poller")
    case = new_case(people)
    people.admin.set_member(case, "sm-poller", ["supervisor"])

    first = fetch(poller)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    unchanged = [fetch(poller, etag) for _ in range(3)]
    assert all(r.status_code == 304 for r in unchanged)
    again = fetch(poller)
    assert again.status_code == 200

    events = people.auditor.audit_events(actor="sm-poller", action="sync.manifest")["events"]
    assert [(e["decision"], e["reason"]) for e in events] == [("allow", "ok"), ("allow", "ok")]
    assert [e["request_id"] for e in events] == [
        first.headers["X-Request-Id"],
        again.headers["X-Request-Id"],
    ]
    everything = people.auditor.audit_events(actor="sm-poller", limit=1000)["events"]
    logged = {e["request_id"] for e in everything}
    assert not logged & {r.headers["X-Request-Id"] for r in unchanged}


def test_openapi_documents_the_manifest(people: People) -> None:
    spec = people.anon.http.get("/openapi.json").json()
    op = spec["paths"][URL]["get"]
    assert {"200", "304", "401"} <= set(op["responses"])
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/SyncManifest")
    assert "If-None-Match" in op["description"]
    assert any(prm["name"].lower() == "if-none-match" for prm in op["parameters"])
    doc_schema = spec["components"]["schemas"]["SyncDocument"]
    assert {"class", "version", "sha256", "rule", "case_number"} <= set(doc_schema["properties"])
