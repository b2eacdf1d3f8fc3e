"""Regression tests for the holes found by attacking Kinko (issue 8), over real HTTP.

Each test here failed on the code before the fix: puppet tokens, the public route, reads after
a decided review, idempotent replays, the case-number oracle, inputs that caused 500s, purposes
without content, and 403 messages that named what the caller may not know.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from clients import KinkoClient

PURPOSE = {"X-Access-Purpose": quote("穴の回帰テスト", safe="")}


@dataclass
class Scene:
    admin: KinkoClient
    drafter: KinkoClient
    sup: KinkoClient
    rev: KinkoClient
    outsider: KinkoClient
    auditor: KinkoClient
    anon: KinkoClient
    case: str
    budget: str  # not disclosed before awarded
    spec: str  # disclosed from announced; version 1 final, version 2 a draft


def events_of(auditor: KinkoClient, resp: httpx.Response) -> list[dict[str, Any]]:
    rid = resp.headers["X-Request-Id"]
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = auditor.audit_events(limit=1000, cursor=cursor)
        out.extend(e for e in page["events"] if e["request_id"] == rid)
        cursor = page["next_cursor"]
        if not cursor:
            return out


@pytest.fixture(scope="module")
def scene(server) -> Scene:  # type: ignore[no-untyped-def]
    admin = server.admin
    drafter = server.user("ho-drafter", ["procurement"])
    sup = server.user("ho-sup")
    rev = server.user("ho-rev")
    outsider = server.user("ho-outsider", ["procurement"])
    auditor = server.user("ho-auditor", ["auditor"])
    case = drafter.create_case(f"HO-{uuid.uuid4().hex[:8]}", "穴の回帰")["id"]
    admin.set_member(case, "ho-sup", ["supervisor"])
    admin.set_member(case, "ho-rev", ["reviewer"])
    budget = drafter.create_document(case, "budget", "予算", b"budget v1")["id"]
    spec = drafter.create_document(case, "specification", "仕様書", b"spec final v1")["id"]
    drafter.finalize(spec, 1)
    drafter.put_content(spec, b"spec draft v2")
    return Scene(
        admin=admin,
        drafter=drafter,
        sup=sup,
        rev=rev,
        outsider=outsider,
        auditor=auditor,
        anon=server.client(None),
        case=case,
        budget=budget,
        spec=spec,
    )


def announced_case(s: Scene) -> tuple[str, str]:
    """A case at ``announced`` with a disclosed specification: v1 final, v2 a newer draft."""
    case = s.drafter.create_case(f"HOA-{uuid.uuid4().hex[:8]}", "公告済み")["id"]
    s.admin.set_member(case, "ho-sup", ["supervisor"])
    doc = s.drafter.create_document(case, "specification", "公告仕様書", b"public final")["id"]
    s.drafter.finalize(doc, 1)
    s.drafter.put_content(doc, b"secret draft")
    s.sup.transition(case, "announced")
    return case, doc


# -- puppet tokens: an admin minting a token for someone else is marked ---------------------------


def test_admin_issued_token_marks_every_event_and_review_item(server, scene: Scene) -> None:  # type: ignore[no-untyped-def]
    # The drafter's test token was minted by the admin: its read names the issuer.
    resp = scene.drafter.http.get(f"/api/v1/documents/{scene.budget}/content", headers=PURPOSE)
    assert resp.status_code == 200
    (event,) = events_of(scene.auditor, resp)
    assert event["client"]["token_issuer"] == "admin"
    items = scene.sup.http.get("/api/v1/reviews").json()["items"]
    mine = [i for i in items if i["seq"] == event["seq"]]
    assert mine
    assert mine[0]["token_issuer"] == "admin"


def test_users_mint_their_own_tokens_unmarked(server, scene: Scene) -> None:  # type: ignore[no-untyped-def]
    # A token the user mints for themselves carries the admin's mark still, because it was
    # minted with a marked token; only a token minted with an unmarked one is clean.  The
    # bootstrap admin's own token is unmarked, so the admin can show the clean case.
    own = scene.admin.http.post("/api/v1/me/tokens", json={})
    assert own.status_code == 201, own.text
    assert own.json()["issued_by"] is None
    admin2 = server.client(own.json()["token"])
    resp = admin2.http.get("/api/v1/me")
    assert resp.status_code == 200
    (event,) = events_of(scene.auditor, resp)
    assert "token_issuer" not in event["client"]

    listed = admin2.http.get("/api/v1/me/tokens").json()["tokens"]
    ids = {t["id"] for t in listed}
    assert own.json()["id"] in ids
    assert all("token" not in t for t in listed)  # never the secret itself
    assert admin2.http.delete(f"/api/v1/me/tokens/{own.json()['id']}").status_code == 204
    assert admin2.http.get("/api/v1/me").status_code == 401


def test_a_token_minted_with_a_marked_token_inherits_the_mark(server, scene: Scene) -> None:  # type: ignore[no-untyped-def]
    puppet = server.user("ho-puppet")
    child = puppet.http.post("/api/v1/me/tokens", json={"ttl_seconds": 3600})
    assert child.status_code == 201, child.text
    assert child.json()["issued_by"] == "admin"
    laundered = server.client(child.json()["token"])
    resp = laundered.http.get("/api/v1/me")
    (event,) = events_of(scene.auditor, resp)
    assert event["client"]["token_issuer"] == "admin"


def test_issuing_a_token_for_someone_notifies_them_and_their_supervisors(
    server,  # type: ignore[no-untyped-def]
    scene: Scene,
) -> None:
    before_sup = len(scene.sup.http.get("/api/v1/me/notifications").json()["notifications"])
    tok = scene.admin.create_token("ho-rev")
    rev2 = server.client(tok["token"])
    mine = rev2.http.get("/api/v1/me/notifications").json()["notifications"]
    assert [n for n in mine if n["token_id"] == tok["id"]] == [
        {
            "id": mine[-1]["id"],
            "kind": "token.issued_for_user",
            "user": "ho-rev",
            "by": "admin",
            "token_id": tok["id"],
            "created_at": mine[-1]["created_at"],
        }
    ]
    sup_notes = scene.sup.http.get("/api/v1/me/notifications").json()["notifications"]
    assert len(sup_notes) == before_sup + 1
    assert sup_notes[-1]["token_id"] == tok["id"]
    # A user minting their own token notifies nobody (the new token inherits the mark).
    own = rev2.http.post("/api/v1/me/tokens", json={})
    assert own.status_code == 201
    after = scene.sup.http.get("/api/v1/me/notifications").json()["notifications"]
    assert len(after) == before_sup + 1


def test_membership_granted_by_is_shown_in_member_lists_and_review_items(scene: Scene) -> None:
    members = {m["name"]: m for m in scene.sup.case(scene.case)["members"]}
    assert members["ho-sup"]["granted_by"] == "admin"
    assert members["ho-drafter"]["granted_by"] is None  # the creator's own membership
    resp = scene.sup.http.get(f"/api/v1/documents/{scene.budget}/content", headers=PURPOSE)
    assert resp.status_code == 200
    (event,) = events_of(scene.auditor, resp)
    items = scene.auditor.http.get("/api/v1/reviews").json()["items"]
    item = next(i for i in items if i["seq"] == event["seq"])
    assert item["membership_granted_by"] == "admin"


# -- the public route ---------------------------------------------------------------------------


def test_public_route_serves_only_the_final_of_a_disclosed_document(scene: Scene) -> None:
    # Not disclosed (drafting): 404 for everyone, members included.
    for c in (scene.drafter, scene.anon):
        resp = c.http.get(f"/api/v1/public/documents/{scene.spec}/content")
        assert resp.status_code == 404, resp.text
    _case, doc = announced_case(scene)
    # Disclosed: the final version (not the newer draft), to anyone, with no purpose.
    for c in (scene.anon, scene.admin, scene.auditor, scene.outsider, scene.drafter):
        resp = c.http.get(f"/api/v1/public/documents/{doc}/content")
        assert resp.status_code == 200, resp.text
        assert resp.content == b"public final"
        assert resp.headers["ETag"] == '"1"'
        (event,) = events_of(scene.auditor, resp)
        assert (event["decision"], event["reason"], event["version"]) == ("allow", "disclosed", 1)
    # No review item opens for a public read.
    items = scene.auditor.http.get("/api/v1/reviews", params={"status": "all"}).json()["items"]
    assert not [i for i in items if i["document_id"] == doc]


def test_admin_and_auditor_read_a_disclosed_final_on_the_member_route_too(scene: Scene) -> None:
    _case, doc = announced_case(scene)
    for c in (scene.admin, scene.auditor):
        resp = c.http.get(f"/api/v1/documents/{doc}/content")
        assert resp.status_code == 200, resp.text
        assert resp.content == b"public final"
        # The draft stays out of reach (403: they see the case, not its content).
        draft = c.http.get(f"/api/v1/documents/{doc}/content", params={"version": "2"})
        assert draft.status_code == 403


# -- reviews ------------------------------------------------------------------------------------


def test_a_read_after_a_decided_item_opens_a_new_item(scene: Scene) -> None:
    purpose = {"X-Access-Purpose": quote(f"再閲覧 {uuid.uuid4().hex[:6]}", safe="")}
    first = scene.drafter.http.get(f"/api/v1/documents/{scene.budget}/content", headers=purpose)
    (e1,) = events_of(scene.auditor, first)
    decided = scene.sup.http.post(f"/api/v1/reviews/{e1['seq']}", json={"verdict": "confirmed"})
    assert decided.status_code == 200, decided.text
    again = scene.drafter.http.get(f"/api/v1/documents/{scene.budget}/content", headers=purpose)
    (e2,) = events_of(scene.auditor, again)
    pending = scene.sup.http.get("/api/v1/reviews").json()["items"]
    new = [i for i in pending if i["seq"] == e2["seq"]]
    assert new, "the read after the decision was folded into the decided item"
    assert new[0]["status"] == "pending"
    assert new[0]["reads"] == 1
    # And a third read joins the new pending item, not the decided one.
    scene.drafter.http.get(f"/api/v1/documents/{scene.budget}/content", headers=purpose)
    pending = scene.sup.http.get("/api/v1/reviews").json()["items"]
    assert next(i for i in pending if i["seq"] == e2["seq"])["reads"] == 2


# -- idempotent replays ---------------------------------------------------------------------------


def test_case_create_replay_rechecks_authorization(server, scene: Scene) -> None:  # type: ignore[no-untyped-def]
    leaver = server.user("ho-leaver", ["procurement"])
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"number": f"HOR-{uuid.uuid4().hex[:8]}", "title": "秘密の案件名"}
    first = leaver.http.post("/api/v1/cases", json=body, headers=key)
    assert first.status_code == 201
    case = first.json()["id"]
    assert scene.admin.http.delete(f"/api/v1/cases/{case}/members/ho-leaver").status_code == 204
    replay = leaver.http.post("/api/v1/cases", json=body, headers=key)
    assert replay.status_code == 404, replay.text
    assert "秘密" not in replay.text
    assert replay.json()["error"]["code"] == "case_not_found"


def test_idempotency_key_reused_with_another_body_is_422(scene: Scene) -> None:
    key = uuid.uuid4().hex
    headers = {"Idempotency-Key": key, "X-Kinko-Title": quote("同じ鍵", safe="")}
    url = f"/api/v1/cases/{scene.case}/documents"
    first = scene.drafter.http.post(url, params={"class": "budget"}, headers=headers, content=b"A")
    assert first.status_code == 201
    same = scene.drafter.http.post(url, params={"class": "budget"}, headers=headers, content=b"A")
    assert same.status_code == 201
    assert same.json() == first.json()
    other = scene.drafter.http.post(url, params={"class": "budget"}, headers=headers, content=b"B")
    assert other.status_code == 422, other.text
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    retitled = {**headers, "X-Kinko-Title": quote("別の題名", safe="")}
    resp = scene.drafter.http.post(url, params={"class": "budget"}, headers=retitled, content=b"A")
    assert resp.status_code == 422
    # Same for a new version under a reused key with other content.
    doc = first.json()["id"]
    vkey = {"Idempotency-Key": uuid.uuid4().hex}
    v = scene.drafter.http.put(f"/api/v1/documents/{doc}/content", headers=vkey, content=b"v2")
    assert v.status_code == 201
    v2 = scene.drafter.http.put(f"/api/v1/documents/{doc}/content", headers=vkey, content=b"v2!")
    assert v2.status_code == 422
    assert [x["version"] for x in scene.drafter.document(doc)["versions"]] == [1, 2]


# -- the case-number oracle -----------------------------------------------------------------------


def test_a_taken_number_is_not_confirmed_to_outsiders(scene: Scene) -> None:
    number = scene.drafter.case(scene.case)["number"]
    outsider = scene.outsider.http.post("/api/v1/cases", json={"number": number, "title": "x"})
    assert outsider.status_code == 409
    assert outsider.json()["error"]["code"] == "case_number_unavailable"
    assert number not in outsider.text
    assert "穴" not in outsider.text
    member = scene.drafter.http.post("/api/v1/cases", json={"number": number, "title": "x"})
    assert member.status_code == 409
    assert member.json()["error"]["code"] == "case_exists"


# -- inputs that used to answer 500 ---------------------------------------------------------------


@pytest.mark.parametrize("raw", ["%C2%B9", "%E2%91%A0", "%D9%A1", "%EF%BC%91", "1%20", "-1"])
def test_non_ascii_digits_in_version_are_400(scene: Scene, raw: str) -> None:
    url = f"{scene.drafter.http.base_url}/api/v1/documents/{scene.budget}/content?version={raw}"
    resp = scene.drafter.http.get(httpx.URL(url), headers=PURPOSE)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid_version"
    (event,) = events_of(scene.auditor, resp)
    assert (event["decision"], event["reason"]) == ("deny", "invalid_version")


@pytest.mark.parametrize(
    "raw",
    # Sent as raw header bytes: "¹" as its latin-1 byte (which the server sees as "¹", a
    # character str.isdigit() accepts), the others as UTF-8.
    ['"\u00b9"'.encode("latin-1"), '"①"'.encode(), '"\u0661"'.encode(), b'"1x"'],
    ids=["superscript-one", "circled-one", "arabic-indic-one", "1x"],
)
def test_non_ascii_digits_in_if_match_are_400(scene: Scene, raw: bytes) -> None:
    resp = scene.drafter.http.put(
        f"/api/v1/documents/{scene.budget}/content",
        headers={"If-Match": raw},
        content=b"x",
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid_if_match"
    versions = [v["version"] for v in scene.drafter.document(scene.budget)["versions"]]
    assert len(versions) == len(set(versions))


@pytest.mark.parametrize("depth", [33, 5000, 200_000])
def test_deeply_nested_json_is_400_and_audited(scene: Scene, depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    resp = scene.drafter.http.post(
        "/api/v1/cases", content=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid_json"
    (event,) = events_of(scene.auditor, resp)
    assert (event["action"], event["decision"]) == ("case.create", "deny")


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "9001-01-01"])
def test_report_dates_at_the_calendar_edge_are_400(scene: Scene, day: str) -> None:
    resp = scene.sup.http.get("/api/v1/reviews/report", params={"date": day})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid_date"
    (event,) = events_of(scene.auditor, resp)
    assert event["decision"] == "deny"


# -- purposes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "code"),
    [
        ("%00", "purpose_invalid"),
        ("ok%00", "purpose_invalid"),
        ("%E2%80%8B", "purpose_required"),  # zero-width space alone
        ("%E2%80%8B%E2%80%8C%EF%BB%BF%20", "purpose_required"),
        ("line%0D%0Abreak", "purpose_invalid"),
        ("tab%09inside", "purpose_invalid"),
        ("%FF%FE", "purpose_invalid"),  # not UTF-8
        ("%E3%81", "purpose_invalid"),  # truncated UTF-8
    ],
)
def test_purposes_without_content_are_refused(scene: Scene, sent: str, code: str) -> None:
    resp = scene.drafter.http.get(
        f"/api/v1/documents/{scene.budget}/content", headers={"X-Access-Purpose": sent}
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == code
    assert resp.json()["error"]["message"]
    (event,) = events_of(scene.auditor, resp)
    assert (event["decision"], event["reason"]) == ("deny", code)


# -- what a 403 says ----------------------------------------------------------------------------


def test_403_names_neither_class_nor_stage(scene: Scene) -> None:
    # The reviewer may not even list the budget at drafting; the refusal must not tell them
    # that it is a budget, or that the case is still being drafted.
    read = scene.rev.http.get(f"/api/v1/documents/{scene.budget}/content", headers=PURPOSE)
    meta = scene.rev.http.get(f"/api/v1/documents/{scene.budget}")
    write = scene.rev.http.put(f"/api/v1/documents/{scene.budget}/content", content=b"x")
    for resp in (read, meta, write):
        assert resp.status_code == 403, resp.text
        message = resp.json()["error"]["message"]
        assert "budget" not in message
        assert "drafting" not in message


# -- second review: puppets, descendants, stalled uploads, odd encodings -------------------------


def test_the_issuer_cannot_review_a_read_made_through_their_puppet(scene: Scene) -> None:
    # The admin becomes a supervisor of the case and reads through the drafter's token, which
    # the admin minted: the read is the admin's own for review purposes.
    scene.admin.set_member(scene.case, "admin", ["supervisor"])
    try:
        purpose = {"X-Access-Purpose": quote(f"傀儡 {uuid.uuid4().hex[:6]}", safe="")}
        resp = scene.drafter.http.get(f"/api/v1/documents/{scene.budget}/content", headers=purpose)
        (event,) = events_of(scene.auditor, resp)
        offered = scene.admin.http.get("/api/v1/reviews").json()["items"]
        assert not [i for i in offered if i["seq"] == event["seq"]]
        decided = scene.admin.http.post(
            f"/api/v1/reviews/{event['seq']}", json={"verdict": "confirmed"}
        )
        assert decided.status_code == 403, decided.text
        assert decided.json()["error"]["code"] == "own_read"
        # Someone else (another supervisor) still can.
        ok = scene.sup.http.post(f"/api/v1/reviews/{event['seq']}", json={"verdict": "confirmed"})
        assert ok.status_code == 200, ok.text
    finally:
        scene.admin.http.delete(f"/api/v1/cases/{scene.case}/members/admin")


def test_an_admin_issuing_for_someone_is_named_not_their_own_issuer(server, scene: Scene) -> None:  # type: ignore[no-untyped-def]
    admin2 = server.user("ho-admin2", ["admin"])  # its token is marked "admin"
    scene.admin.http.post("/api/v1/users", json={"name": "ho-target"})
    tok = admin2.http.post("/api/v1/users/ho-target/tokens", json={})
    assert tok.status_code == 201, tok.text
    assert tok.json()["issued_by"] == "ho-admin2"


def test_revoking_a_marked_token_revokes_what_was_minted_with_it(server, scene: Scene) -> None:  # type: ignore[no-untyped-def]
    scene.admin.http.post("/api/v1/users", json={"name": "ho-victim"})
    parent = scene.admin.create_token("ho-victim")
    victim = server.client(parent["token"])
    child = victim.http.post("/api/v1/me/tokens", json={"ttl_seconds": 315360000}).json()
    grandchild_client = server.client(child["token"])
    grandchild = grandchild_client.http.post("/api/v1/me/tokens", json={}).json()
    assert victim.http.delete(f"/api/v1/me/tokens/{parent['id']}").status_code == 204
    for token in (child["token"], grandchild["token"]):
        assert server.client(token).http.get("/api/v1/me").status_code == 401


def test_disabling_an_admin_stops_the_tokens_they_issued(server, scene: Scene) -> None:  # type: ignore[no-untyped-def]
    admin3 = server.user("ho-admin3", ["admin"])
    scene.admin.http.post("/api/v1/users", json={"name": "ho-puppet3"})
    puppet = server.client(admin3.create_token("ho-puppet3")["token"])
    assert puppet.http.get("/api/v1/me").status_code == 200
    assert scene.admin.http.post("/api/v1/users/ho-admin3/disable").status_code == 200
    assert puppet.http.get("/api/v1/me").status_code == 401


def test_a_refused_marked_token_still_names_its_issuer(server, scene: Scene) -> None:  # type: ignore[no-untyped-def]
    scene.admin.http.post("/api/v1/users", json={"name": "ho-revoked"})
    tok = scene.admin.create_token("ho-revoked")
    assert (
        scene.admin.http.delete(f"/api/v1/users/ho-revoked/tokens/{tok['id']}").status_code == 204
    )
    resp = server.client(tok["token"]).http.get("/api/v1/me")
    assert resp.status_code == 401
    (event,) = events_of(scene.auditor, resp)
    assert (event["action"], event["reason"]) == ("auth.fail", "token_revoked")
    assert event["client"]["token_issuer"] == "admin"


@pytest.mark.parametrize("sent", ["a%E2%80%A8b", "a%E2%80%A9b"])
def test_unicode_line_separators_in_a_purpose_are_refused(scene: Scene, sent: str) -> None:
    resp = scene.drafter.http.get(
        f"/api/v1/documents/{scene.budget}/content", headers={"X-Access-Purpose": sent}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "purpose_invalid"


def test_an_unusable_purpose_on_a_disclosed_read_is_not_recorded(scene: Scene) -> None:
    _case, doc = announced_case(scene)
    resp = scene.outsider.http.get(
        f"/api/v1/documents/{doc}/content", headers={"X-Access-Purpose": "line1%0D%0Aline2%00"}
    )
    assert resp.status_code == 200
    (event,) = events_of(scene.auditor, resp)
    assert (event["reason"], event["purpose"]) == ("disclosed", None)


def test_utf16_json_cannot_slip_past_the_depth_limit(scene: Scene) -> None:
    body = ("[" * 900 + '"∀"' + "]" * 900).encode("utf-16-le")
    resp = scene.drafter.http.post(
        "/api/v1/cases", content=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("raw", [b'"1', b'1"', b"0", b'"0"'])
def test_half_quoted_or_zero_if_match_is_400(scene: Scene, raw: bytes) -> None:
    resp = scene.drafter.http.put(
        f"/api/v1/documents/{scene.budget}/content", headers={"If-Match": raw}, content=b"x"
    )
    assert resp.status_code == 400, resp.text


def test_version_zero_is_400(scene: Scene) -> None:
    resp = scene.drafter.http.get(
        f"/api/v1/documents/{scene.budget}/content", params={"version": "0"}, headers=PURPOSE
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_version"
