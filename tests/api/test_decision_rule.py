"""SPEC §3, §4.2, §4.3 and §7 over real HTTP: stages in time, who sees what, and API hygiene."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from clients import KinkoClient

PURPOSE = {"X-Access-Purpose": "decision%20rule%20test"}


# -- helpers ------------------------------------------------------------------------------------


@dataclass
class People:
    admin: KinkoClient
    drafter: KinkoClient  # procurement; creates every case, so it is each case's drafter
    sup: KinkoClient
    ev: KinkoClient
    ev2: KinkoClient
    rev: KinkoClient
    outsider: KinkoClient  # procurement, never a member
    auditor: KinkoClient
    anon: KinkoClient


@pytest.fixture(scope="module")
def people(server) -> People:
    return People(
        admin=server.admin,
        drafter=server.user("dr-drafter", ["procurement"]),
        sup=server.user("dr-sup"),
        ev=server.user("dr-ev"),
        ev2=server.user("dr-ev2"),
        rev=server.user("dr-rev"),
        outsider=server.user("dr-outsider", ["procurement"]),
        auditor=server.user("dr-auditor", ["auditor"]),
        anon=server.client(None),
    )


def new_case(p: People, *, evaluators: bool = True) -> str:
    case_id = p.drafter.create_case(f"DR-{uuid.uuid4().hex[:12]}", "判定規則テスト")["id"]
    p.admin.set_member(case_id, "dr-sup", ["supervisor"])
    p.admin.set_member(case_id, "dr-rev", ["reviewer"])
    if evaluators:
        p.admin.set_member(case_id, "dr-ev", ["evaluator"])
        p.admin.set_member(case_id, "dr-ev2", ["evaluator"])
    return case_id


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse(t: str) -> datetime:
    return datetime.fromisoformat(t.replace("Z", "+00:00"))


def sleep_until(t: datetime, slack: float = 0.4) -> None:
    delay = (t - datetime.now(UTC)).total_seconds() + slack
    if delay > 0:
        time.sleep(delay)


def content(
    c: KinkoClient, doc_id: str, *, purpose: bool = True, version: int | None = None
) -> httpx.Response:
    params = {} if version is None else {"version": str(version)}
    headers = PURPOSE if purpose else {}
    return c.http.get(f"/api/v1/documents/{doc_id}/content", headers=headers, params=params)


def public_content(c: KinkoClient, doc_id: str) -> httpx.Response:
    return c.http.get(f"/api/v1/public/documents/{doc_id}/content")


def public_ids(c: KinkoClient) -> set[str]:
    return {d["id"] for d in c.public_documents()}


def error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["code"], str)
    assert isinstance(body["error"]["message"], str)
    if code is not None:
        assert body["error"]["code"] == code, body
    return dict(body["error"])


# -- stages in time -----------------------------------------------------------------------------


def test_scheduled_announcement_discloses_at_the_instant(people: People) -> None:
    p = people
    case = new_case(p)
    spec = p.drafter.create_document(case, "specification", "仕様書", b"SPEC v1 final")["id"]
    p.drafter.finalize(spec, 1)
    p.drafter.put_content(spec, b"SPEC v2 draft")
    p.sup.transition(case, "review")

    at = datetime.now(UTC) + timedelta(seconds=2.5)
    t = p.sup.transition(case, "announced", at=rfc3339(at))
    assert t["stage"] == "announced"
    assert abs((parse(t["at"]) - at).total_seconds()) < 0.001

    # Before the instant: nothing is public.
    assert p.sup.case(case)["stage"] == "review"
    error(content(p.outsider, spec), 404, "document_not_found")
    error(content(p.anon, spec, purpose=False), 404)
    error(public_content(p.anon, spec), 404)
    error(p.outsider.http.get(f"/api/v1/documents/{spec}"), 404)
    assert spec not in public_ids(p.anon)
    assert datetime.now(UTC) < at, "the checks before the instant ran too late to mean anything"

    # After the instant, without any further call: disclosed, final version only.
    sleep_until(at)
    assert p.sup.case(case)["stage"] == "announced"
    resp = public_content(p.anon, spec)
    assert resp.status_code == 200, resp.text
    assert resp.content == b"SPEC v1 final"
    listed = {d["id"]: d for d in p.anon.public_documents()}
    assert spec in listed
    assert listed[spec]["latest_version"] == 1
    assert listed[spec]["final_version"] == 1
    resp = content(p.outsider, spec, purpose=False)  # disclosed: no purpose needed
    assert resp.status_code == 200, resp.text
    assert resp.content == b"SPEC v1 final"

    # Now that it is in effect it can no longer be cancelled.
    error(p.sup.http.delete(f"/api/v1/cases/{case}/transitions/{t['id']}"), 409)
    assert p.sup.case(case)["stage"] == "announced"


def test_cancelled_scheduled_transition_never_takes_effect(people: People) -> None:
    p = people
    case = new_case(p)
    spec = p.drafter.create_document(case, "specification", "spec", b"S")["id"]
    p.drafter.finalize(spec, 1)
    p.sup.transition(case, "review")
    at = datetime.now(UTC) + timedelta(seconds=2)
    t = p.sup.transition(case, "announced", at=rfc3339(at))

    resp = p.sup.http.delete(f"/api/v1/cases/{case}/transitions/{t['id']}")
    assert resp.status_code == 204, resp.text
    assert t["id"] not in {x["id"] for x in p.sup.case(case)["transitions"]}

    sleep_until(at)
    assert p.sup.case(case)["stage"] == "review"
    error(content(p.outsider, spec), 404)
    error(public_content(p.anon, spec), 404)
    assert spec not in public_ids(p.anon)

    # Postponing is routine: cancel, then schedule again.
    later = datetime.now(UTC) + timedelta(seconds=60)
    again = p.sup.transition(case, "announced", at=rfc3339(later))
    assert again["stage"] == "announced"
    assert p.sup.case(case)["stage"] == "review"


def test_cancelling_a_past_transition_is_409(people: People) -> None:
    p = people
    case = new_case(p)
    drafting = p.sup.case(case)["transitions"][0]
    assert drafting["stage"] == "drafting"
    error(p.sup.http.delete(f"/api/v1/cases/{case}/transitions/{drafting['id']}"), 409)
    t = p.sup.transition(case, "rfi")
    error(p.sup.http.delete(f"/api/v1/cases/{case}/transitions/{t['id']}"), 409)
    assert p.sup.case(case)["stage"] == "rfi"


def test_transition_must_go_forward(people: People) -> None:
    p = people
    case = new_case(p)
    p.sup.transition(case, "rfi")
    url = f"/api/v1/cases/{case}/transitions"
    error(p.sup.http.post(url, json={"stage": "drafting"}), 409)
    error(p.sup.http.post(url, json={"stage": "rfi"}), 409)
    # "Forward" is relative to the latest transition, scheduled or not.
    at = rfc3339(datetime.now(UTC) + timedelta(seconds=60))
    assert p.sup.http.post(url, json={"stage": "announced", "at": at}).status_code == 201
    error(p.sup.http.post(url, json={"stage": "review"}), 409)
    # Skipping is allowed.
    later = rfc3339(datetime.now(UTC) + timedelta(seconds=120))
    assert p.sup.http.post(url, json={"stage": "opened", "at": later}).status_code == 201
    assert p.sup.case(case)["stage"] == "rfi"
    # Only a supervisor moves the case.
    error(p.drafter.http.post(url, json={"stage": "closed", "at": later}), 403)


def test_expired_membership_counts_as_absent(server, people: People) -> None:
    p = people
    temp = server.user("dr-temp")
    case = new_case(p)
    budget = p.drafter.create_document(case, "budget", "予算", b"100 yen")["id"]
    p.sup.transition(case, "review")
    expires = datetime.now(UTC) + timedelta(seconds=2)
    p.admin.set_member(case, "dr-temp", ["reviewer"], expires_at=rfc3339(expires))

    resp = content(temp, budget)
    assert resp.status_code == 200, resp.text
    assert resp.content == b"100 yen"
    assert temp.http.get(f"/api/v1/cases/{case}").status_code == 200
    assert datetime.now(UTC) < expires

    sleep_until(expires)
    error(content(temp, budget), 404, "document_not_found")
    error(temp.http.get(f"/api/v1/cases/{case}"), 404)
    error(temp.http.get(f"/api/v1/cases/{case}/documents"), 404)
    error(temp.http.get(f"/api/v1/documents/{budget}"), 404)
    assert case not in {c["id"] for c in temp.http.get("/api/v1/cases").json()["cases"]}


# -- 404 vs 403, order of checks ----------------------------------------------------------------


def test_non_member_gets_404_member_without_permission_gets_403(people: People) -> None:
    p = people
    case = new_case(p)
    budget = p.drafter.create_document(case, "budget", "budget", b"B")["id"]
    ghost_case, ghost_doc = uuid.uuid4().hex, uuid.uuid4().hex

    # Non-member: indistinguishable from ids that do not exist.
    pairs = [
        (f"/api/v1/cases/{case}", f"/api/v1/cases/{ghost_case}"),
        (f"/api/v1/cases/{case}/documents", f"/api/v1/cases/{ghost_case}/documents"),
        (f"/api/v1/documents/{budget}", f"/api/v1/documents/{ghost_doc}"),
        (f"/api/v1/documents/{budget}/content", f"/api/v1/documents/{ghost_doc}/content"),
    ]
    for real, ghost in pairs:
        got = error(p.outsider.http.get(real, headers=PURPOSE), 404)
        assert got == error(p.outsider.http.get(ghost, headers=PURPOSE), 404), real

    # Member lacking the permission (a reviewer during drafting).
    assert p.rev.http.get(f"/api/v1/cases/{case}").status_code == 200
    listed = p.rev.http.get(f"/api/v1/cases/{case}/documents")
    assert listed.status_code == 200
    assert budget not in {d["id"] for d in listed.json()["documents"]}
    error(p.rev.http.get(f"/api/v1/documents/{budget}"), 403)
    error(content(p.rev, budget), 403)

    # Disclosed documents do not open the case listing to non-members.
    spec = p.drafter.create_document(case, "specification", "spec", b"S")["id"]
    p.drafter.finalize(spec, 1)
    p.sup.transition(case, "announced")
    error(p.outsider.http.get(f"/api/v1/cases/{case}/documents"), 404)
    error(p.outsider.http.get(f"/api/v1/cases/{case}"), 404)
    error(p.outsider.http.get(f"/api/v1/documents/{budget}"), 404)
    assert p.outsider.http.get(f"/api/v1/documents/{spec}").status_code == 200


def test_order_of_checks_404_then_403_then_400(people: People) -> None:
    p = people
    case = new_case(p)
    budget = p.drafter.create_document(case, "budget", "budget", b"B")["id"]
    error(content(p.outsider, budget, purpose=False), 404)
    error(content(p.anon, budget, purpose=False), 404)
    error(content(p.rev, budget, purpose=False), 403)
    error(content(p.auditor, budget, purpose=False), 403)
    error(content(p.drafter, budget, purpose=False), 400, "purpose_required")
    assert content(p.drafter, budget).content == b"B"


def test_rule2_only_readers_see_only_the_final_version(people: People) -> None:
    p = people
    case = new_case(p)
    budget = p.drafter.create_document(case, "budget", "予算額", b"budget v1")["id"]
    p.drafter.put_content(budget, b"budget v2 final")
    p.drafter.put_content(budget, b"budget v3 draft")
    p.drafter.finalize(budget, 2)
    p.sup.transition(case, "awarded")

    for reader, refused in ((p.outsider, 404), (p.rev, 403), (p.anon, 404)):
        if reader is not p.anon:
            meta = reader.document(budget)
            assert [v["version"] for v in meta["versions"]] == [2]
            assert meta["versions"][0]["final"] is True
            assert meta["latest_version"] == 2
            assert meta["final_version"] == 2
        resp = content(reader, budget, purpose=False)
        assert resp.status_code == 200, resp.text
        assert resp.content == b"budget v2 final"
        assert resp.headers["ETag"] == '"2"'
        assert content(reader, budget, version=2).content == b"budget v2 final"
        error(content(reader, budget, version=1), refused)
        error(content(reader, budget, version=3), refused)

    # The reviewer's case listing and the public listing name the final as the latest.
    (item,) = [d for d in p.rev.documents(case) if d["id"] == budget]
    assert item["latest_version"] == 2
    (item,) = [d for d in p.anon.public_documents() if d["id"] == budget]
    assert item["latest_version"] == 2
    assert item["final_version"] == 2
    # A rule-1 reader still sees everything.
    assert [v["version"] for v in p.drafter.document(budget)["versions"]] == [1, 2, 3]
    (item,) = [d for d in p.drafter.documents(case) if d["id"] == budget]
    assert item["latest_version"] == 3
    assert content(p.drafter, budget).content == b"budget v3 draft"


def test_new_final_version_replaces_the_old_one(people: People) -> None:
    p = people
    case = new_case(p)
    spec = p.drafter.create_document(case, "specification", "仕様書", b"spec v1")["id"]
    p.drafter.put_content(spec, b"spec v2")
    p.drafter.finalize(spec, 1)
    p.sup.transition(case, "announced")
    assert public_content(p.anon, spec).content == b"spec v1"

    p.drafter.put_content(spec, b"spec v3 (corrected)")
    p.drafter.finalize(spec, 3)  # a correction notice
    resp = public_content(p.anon, spec)
    assert resp.content == b"spec v3 (corrected)"
    assert resp.headers["ETag"] == '"3"'
    (item,) = [d for d in p.anon.public_documents() if d["id"] == spec]
    assert item["final_version"] == 3
    meta = p.outsider.document(spec)
    assert [(v["version"], v["final"]) for v in meta["versions"]] == [(3, True)]

    events = p.auditor.audit_events(document_id=spec, action="document.finalize")["events"]
    assert [(e["decision"], e["version"]) for e in events] == [("allow", 1), ("allow", 3)]
    assert all(e["actor"] == "dr-drafter" and e["case_id"] == case for e in events)


# -- evaluators are secret ----------------------------------------------------------------------


def _member_roles(case: dict[str, Any]) -> dict[str, list[str]]:
    return {m["name"]: m["roles"] for m in case["members"]}


def test_evaluators_hidden_from_those_who_may_not_read_evaluator_names(
    server, people: People
) -> None:
    p = people
    dual = server.user("dr-dual")  # drafter and evaluator: its name is an evaluator's name
    case = new_case(p)
    p.admin.set_member(case, "dr-dual", ["drafter", "evaluator"])
    spec = dual.create_document(case, "specification", "spec", b"S")["id"]
    p.drafter.finalize(spec, 1)
    p.sup.transition(case, "review")

    # A reviewer during review: no evaluator role anywhere, no name of an evaluator.
    seen = _member_roles(p.rev.case(case))
    assert all("evaluator" not in roles for roles in seen.values()), seen
    assert "dr-ev" not in seen
    assert "dr-ev2" not in seen
    assert p.rev.document(spec)["versions"][0]["created_by"] is None
    # Those who may read evaluator_names see them.
    for insider in (p.sup, p.drafter, p.auditor, p.admin):
        roles = _member_roles(insider.case(case))
        assert roles["dr-ev"] == ["evaluator"]
        assert "evaluator" in roles["dr-dual"]
    assert p.sup.document(spec)["versions"][0]["created_by"] == "dr-dual"

    p.sup.transition(case, "evaluation")
    scores = p.ev.create_document(case, "technical_scores", "技術点", b"A: 80")["id"]
    p.ev.finalize(scores, 1)
    # Another evaluator may read the scores but not evaluator_names.
    assert p.ev2.document(scores)["versions"][0]["created_by"] is None
    seen = _member_roles(p.ev2.case(case))
    assert all("evaluator" not in roles for roles in seen.values()), seen
    assert p.sup.document(scores)["versions"][0]["created_by"] == "dr-ev"

    p.sup.transition(case, "awarded")  # technical scores are now disclosed
    assert p.outsider.document(scores)["versions"][0]["created_by"] is None
    assert p.rev.document(scores)["versions"][0]["created_by"] is None
    assert p.sup.document(scores)["versions"][0]["created_by"] == "dr-ev"
    assert p.auditor.document(scores)["versions"][0]["created_by"] == "dr-ev"


# -- tokens and users ---------------------------------------------------------------------------


def test_token_revocation_and_user_disabling(server, people: People) -> None:
    admin = people.admin
    admin.create_user("dr-tokens")
    a = admin.create_token("dr-tokens")
    b = admin.create_token("dr-tokens")
    ca, cb = server.client(a["token"]), server.client(b["token"])
    assert ca.http.get("/api/v1/me").status_code == 200

    resp = admin.http.delete(f"/api/v1/users/dr-tokens/tokens/{a['id']}")
    assert resp.status_code == 204, resp.text
    error(ca.http.get("/api/v1/me"), 401)
    assert cb.http.get("/api/v1/me").status_code == 200

    assert admin.http.post("/api/v1/users/dr-tokens/disable").status_code == 200
    error(cb.http.get("/api/v1/me"), 401)
    error(cb.http.get("/api/v1/cases"), 401)
    error(ca.http.get("/api/v1/me"), 401)


# -- writes -------------------------------------------------------------------------------------


def test_if_match_mismatch_is_412(people: People) -> None:
    p = people
    case = new_case(p)
    doc = p.drafter.create_document(case, "schedule", "schedule", b"v1")["id"]
    assert p.drafter.put_content(doc, b"v2", if_match=1)["version"] == 2
    resp = p.drafter.http.put(
        f"/api/v1/documents/{doc}/content", content=b"v3?", headers={"If-Match": '"1"'}
    )
    error(resp, 412)
    assert [v["version"] for v in p.drafter.document(doc)["versions"]] == [1, 2]
    assert p.drafter.put_content(doc, b"v3", if_match=2)["version"] == 3


def test_idempotency_key_on_create_and_on_put(people: People) -> None:
    p = people
    case = new_case(p)
    key = f"create-{uuid.uuid4().hex}"
    first = p.drafter.create_document(case, "budget", "予算", b"B1", idempotency_key=key)
    again = p.drafter.create_document(case, "budget", "予算", b"B1", idempotency_key=key)
    assert again == first
    assert first["version"] == 1
    assert [d["id"] for d in p.drafter.documents(case)] == [first["id"]]
    # The same key on a different request.
    resp = p.drafter.http.post(
        f"/api/v1/cases/{case}/documents",
        params={"class": "schedule"},
        headers={"X-Kinko-Title": "other", "Idempotency-Key": key},
        content=b"S",
    )
    error(resp, 422)
    assert [d["id"] for d in p.drafter.documents(case)] == [first["id"]]

    doc = first["id"]
    put_key = f"put-{uuid.uuid4().hex}"
    v = p.drafter.put_content(doc, b"B2", idempotency_key=put_key)
    assert p.drafter.put_content(doc, b"B2", idempotency_key=put_key) == v == {"version": 2}
    assert [x["version"] for x in p.drafter.document(doc)["versions"]] == [1, 2]
    other = p.drafter.create_document(case, "schedule", "schedule", b"S")["id"]
    error(
        p.drafter.http.put(
            f"/api/v1/documents/{other}/content",
            content=b"S2",
            headers={"Idempotency-Key": put_key},
        ),
        422,
    )
    error(
        p.drafter.http.put(
            f"/api/v1/documents/{doc}/content", content=b"B3", headers={"Idempotency-Key": key}
        ),
        422,
    )
    assert [x["version"] for x in p.drafter.document(other)["versions"]] == [1]
    assert [x["version"] for x in p.drafter.document(doc)["versions"]] == [1, 2]


@pytest.mark.parametrize(
    "title",
    ["仕様書（案）第２版", "見積 📄🏛️ 2026", "/../etc", "%41", "a/b\\c?d#e&f=g", "x" * 255],
    ids=["japanese", "emoji", "dotdot", "percent41", "punctuation", "255chars"],
)
def test_title_round_trips(people: People, title: str) -> None:
    p = people
    case = new_case(p, evaluators=False)
    resp = p.drafter.http.post(
        f"/api/v1/cases/{case}/documents",
        params={"class": "schedule"},
        headers={"X-Kinko-Title": quote(title, safe="")},
        content=b"T",
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["title"] == title
    assert p.drafter.document(created["id"])["title"] == title
    assert [d["title"] for d in p.drafter.documents(case)] == [title]


def test_title_is_percent_decoded_exactly_once(people: People) -> None:
    p = people
    case = new_case(p, evaluators=False)
    url = f"/api/v1/cases/{case}/documents"
    for header, title in (("%41", "A"), ("%2541", "%41"), ("%252541", "%2541")):
        resp = p.drafter.http.post(
            url, params={"class": "schedule"}, headers={"X-Kinko-Title": header}, content=b"T"
        )
        assert resp.status_code == 201, resp.text
        assert resp.json()["title"] == title
        assert p.drafter.document(resp.json()["id"])["title"] == title


@pytest.mark.parametrize(
    "header",
    [None, quote("a\x07b", safe=""), quote("tab\there", safe=""), "%00", "y" * 256, ""],
    ids=["missing", "bell", "tab", "nul", "256chars", "empty"],
)
def test_bad_titles_are_400(people: People, header: str | None) -> None:
    p = people
    case = new_case(p, evaluators=False)
    headers = {} if header is None else {"X-Kinko-Title": header}
    resp = p.drafter.http.post(
        f"/api/v1/cases/{case}/documents", params={"class": "schedule"}, headers=headers
    )
    error(resp, 400)
    assert p.drafter.documents(case) == []


def test_bad_json_and_missing_fields_are_400(people: People) -> None:
    p = people
    case = new_case(p, evaluators=False)
    doc = p.drafter.create_document(case, "schedule", "s", b"S")["id"]
    h = {"Content-Type": "application/json"}
    for method, url, body in (
        ("POST", "/api/v1/cases", b"{"),
        ("POST", "/api/v1/cases", b"[1, 2]"),
        ("POST", "/api/v1/cases", b'{"title": "no number"}'),
        ("POST", "/api/v1/cases", b'{"number": "DR-missing-title"}'),
        ("POST", f"/api/v1/cases/{case}/transitions", b"{not json"),
        ("POST", f"/api/v1/cases/{case}/transitions", b"{}"),
        ("PUT", f"/api/v1/cases/{case}/members/dr-rev", b'{"expires_at": null}'),
        ("POST", f"/api/v1/documents/{doc}/final", b"{}"),
        ("POST", f"/api/v1/documents/{doc}/final", b'{"version": "1"}'),
    ):
        client = p.sup if "transitions" in url else p.drafter
        if "members" in url:
            client = p.admin
        error(client.http.request(method, url, content=body, headers=h), 400)


def test_error_shape_for_framework_errors(people: People) -> None:
    p = people
    error(p.drafter.http.get("/api/v1/no-such-route"), 404)
    error(p.anon.http.get("/nowhere"), 404)
    error(p.drafter.http.delete("/api/v1/me"), 405)
    error(p.anon.http.post("/healthz"), 405)


def test_error_shape_for_a_framework_validation_error(tmp_path) -> None:
    """No shipped route has a typed parameter FastAPI could reject with 422, so this serves the
    real application (its error handlers included) plus one typed route, over loopback HTTP."""
    import socket
    import threading

    import uvicorn

    from vault.api.app import create_app
    from vault.settings import Settings

    app = create_app(Settings(data_dir=tmp_path))

    @app.get("/__typed/{n}")
    def typed(n: int) -> dict[str, int]:
        return {"n": n}

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # No lifespan: the typed route needs no vault.
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="error")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not srv.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert srv.started
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            assert c.get("/__typed/7").json() == {"n": 7}
            got = error(c.get("/__typed/seven"), 422)
            assert got["code"] == "validation_error"
            assert "n" in got["message"]
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def test_unknown_route_and_method_without_a_token(server) -> None:
    resp = httpx.get(f"{server.base_url}/api/v1/definitely/not/here")
    error(resp, 404)
    resp = httpx.put(f"{server.base_url}/api/v1/public/documents")
    error(resp, 405)
