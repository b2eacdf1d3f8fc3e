"""Disclosure to a named outsider (issue 12), against a real server and a real SMTP server.

request → approval by another supervisor (own approval refused) → e-mail to the recipient
with every supervisor in Cc and its SHA-256 in the audit log → landing page → POST download
(a PDF stamped with the recipient, the stamp extractable with pypdf) → supervisors notified →
downloads used up → 410; revocation, expiry and the review request kill live links.
"""

from __future__ import annotations

import hashlib
import io
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from mail_support import Mailbox, Received
from pypdf import PdfReader, PdfWriter

from clients import KinkoClient
from tests.conftest import KinkoServer, serving

PURPOSE = {"X-Access-Purpose": "disclosure%20test"}


def tag() -> str:
    return uuid.uuid4().hex[:8]


def code(resp: httpx.Response) -> str:
    return str(resp.json()["error"]["code"])


def pdf(pages: int = 2) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(595, 842)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox) -> Iterator[KinkoServer]:
    with serving(
        tmp_path_factory.mktemp("disclosures"),
        KINKO_SMTP_URL=mailbox.url,
        KINKO_MAIL_FROM="kinko@city.example.jp",
        KINKO_ORGANIZATION="架空市 契約課",
        KINKO_OUTBOX_POLL_SECONDS="0.2",
    ) as srv:
        yield srv


@dataclass
class Case:
    id: str
    number: str
    doc: str
    drafter: KinkoClient
    sup1: KinkoClient
    sup2: KinkoClient
    names: dict[str, str]


def user(server: KinkoServer, prefix: str, t: str, roles: list[str] | None = None) -> KinkoClient:
    name = f"{prefix}-{t}"
    resp = server.admin.http.post(
        "/api/v1/users",
        json={"name": name, "roles": roles or [], "email": f"{name}@city.example.jp"},
    )
    assert resp.status_code == 201, resp.text
    return server.client(server.admin.create_token(name)["token"])


def outside(server: KinkoServer) -> httpx.Client:
    """A client with no token (the recipient), closed with the server's clients."""
    return server.client().http


def make_case(
    server: KinkoServer,
    *,
    content: bytes | None = None,
    title: str = "仕様書.pdf",
    content_type: str = "application/pdf",
) -> Case:
    t = tag()
    drafter = user(server, "ds-drafter", t, ["procurement"])
    sup1 = user(server, "ds-sup1", t)
    sup2 = user(server, "ds-sup2", t)
    number = f"DS-{t}"
    case = drafter.create_case(number, "庁舎清掃業務委託")["id"]
    server.admin.set_member(case, f"ds-sup1-{t}", ["supervisor"])
    server.admin.set_member(case, f"ds-sup2-{t}", ["supervisor"])
    doc = drafter.create_document(
        case, "specification", title, content if content is not None else pdf(),
        content_type=content_type,
    )["id"]  # fmt: skip
    names = {"drafter": f"ds-drafter-{t}", "sup1": f"ds-sup1-{t}", "sup2": f"ds-sup2-{t}"}
    return Case(case, number, doc, drafter, sup1, sup2, names)


def ask(c: Case, client: KinkoClient | None = None, **more: Any) -> httpx.Response:
    body = {
        "recipient_name": "山田 太郎",
        "recipient_organization": "株式会社テスト清掃",
        "recipient_email": "yamada@vendor.example.co.jp",
        "reason": "仕様の確認のため",
        **more,
    }
    return (client or c.drafter).http.post(f"/api/v1/documents/{c.doc}/disclosures", json=body)


def approve(c: Case, disclosure: str, client: KinkoClient | None = None) -> httpx.Response:
    return (client or c.sup1).http.post(f"/api/v1/disclosures/{disclosure}/approve")


def token_of(link: str) -> str:
    return link.rsplit("/s/", 1)[1]


def events(server: KinkoServer, **filters: Any) -> list[dict[str, Any]]:
    auditor = server_auditor(server)
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**filters, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = auditor.http.get("/api/v1/audit/events", params=params).json()
        out += page["events"]
        cursor = page.get("next_cursor")
        if not cursor:
            return out


_auditors: dict[str, KinkoClient] = {}


def server_auditor(server: KinkoServer) -> KinkoClient:
    if server.base_url not in _auditors:
        name = f"ds-auditor-{tag()}"
        server.admin.create_user(name, ["auditor"])
        _auditors[server.base_url] = server.client(server.admin.create_token(name)["token"])
    return _auditors[server.base_url]


def mails_to(mailbox: Mailbox, address: str) -> list[Received]:
    return [m for m in mailbox.received if address in m.rcpt_tos]


def test_the_whole_walk_from_request_to_used_up(server: KinkoServer, mailbox: Mailbox) -> None:
    c = make_case(server)
    resp = ask(c, max_downloads=2)
    assert resp.status_code == 201, resp.text
    d = resp.json()
    assert (d["status"], d["version"], d["max_downloads"]) == ("requested", 1, 2)
    expires = datetime.fromisoformat(d["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)

    # The requester cannot approve (not a supervisor); a supervisor cannot approve their own.
    assert code(approve(c, d["id"], c.drafter)) == "supervisor_required"
    own = ask(c, c.sup1).json()
    refused = approve(c, own["id"], c.sup1)
    assert refused.status_code == 403
    assert code(refused) == "own_request"

    # The supervisors were told of the request, in Kinko and by mail.
    notes = c.sup2.http.get("/api/v1/notifications").json()["notifications"]
    assert any(n["kind"] == "disclosure.requested" and n["subject_id"] == d["id"] for n in notes)
    assert "山田 太郎" in next(n["text"] for n in notes if n["subject_id"] == d["id"])

    ok = approve(c, d["id"])
    assert ok.status_code == 200, ok.text
    link = ok.json()["link"]
    assert ok.json()["status"] == "approved"
    assert link.startswith(server.base_url + "/s/")
    assert len(token_of(link)) >= 43  # 256 bits, base64url
    # Shown once: reading the disclosure again does not give the link.
    again = c.drafter.http.get(f"/api/v1/disclosures/{d['id']}").json()
    assert "link" not in again
    assert approve(c, d["id"], c.sup2).status_code == 409

    # The recipient's message: to the recipient, every supervisor in Cc, the link inside.
    got = mailbox.wait_for(lambda m: "yamada@vendor.example.co.jp" in m.rcpt_tos)
    assert len(got) == 1
    msg = got[0].message
    assert msg["To"] == "yamada@vendor.example.co.jp"
    cc = {a.strip() for a in str(msg["Cc"]).split(",")}
    assert cc == {f"{c.names['sup1']}@city.example.jp", f"{c.names['sup2']}@city.example.jp"}
    assert set(got[0].rcpt_tos) == {"yamada@vendor.example.co.jp", *cc}
    text = got[0].text()
    assert link in text
    assert "山田 太郎 様" in text
    assert "Dear 山田 太郎" in text
    # Its SHA-256 is in the approval's audit event.
    digest = hashlib.sha256(got[0].content).hexdigest()
    approved = [e for e in events(server, action="disclosure.approve") if d["id"] in e["reason"]]
    assert len(approved) == 1
    assert f"mail_sha256={digest}" in approved[0]["reason"]
    assert approved[0]["actor"] == c.names["sup1"]

    # The landing page: title, sender, expiry; nothing consumed by GET (mail scanners).
    anonymous = outside(server)
    for _ in range(3):
        page = anonymous.get(f"/s/{token_of(link)}")
        assert page.status_code == 200
    assert "仕様書.pdf" in page.text
    assert "架空市 契約課" in page.text
    assert "ダウンロード" in page.text
    assert "Download" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"

    # The download: a POST with an empty body and no CSRF token.
    dl = anonymous.post(f"/s/{token_of(link)}")
    assert dl.status_code == 200, dl.text
    assert dl.headers["content-disposition"].startswith("attachment")
    assert dl.headers["cache-control"] == "no-store"
    assert dl.headers["referrer-policy"] == "no-referrer"
    reader = PdfReader(io.BytesIO(dl.content))
    assert len(reader.pages) == 2
    for p in reader.pages:
        stamp = p.extract_text()
        assert "山田 太郎" in stamp
        assert "株式会社テスト清掃" in stamp
        assert d["id"] in stamp
    # The supervisors hear of it.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        notes = c.sup2.http.get("/api/v1/notifications").json()["notifications"]
        if any(n["kind"] == "disclosure.downloaded" for n in notes):
            break
        time.sleep(0.1)
    assert any(n["kind"] == "disclosure.downloaded" for n in notes)
    # The audit event names the disclosure as actor, the recipient and the client address.
    downloads = events(server, action="disclosure.download", actor=f"disclosure:{d['id']}")
    assert [e["decision"] for e in downloads] == ["allow"]
    assert downloads[0]["target"] == "yamada@vendor.example.co.jp"
    assert downloads[0]["client"]["ip"] == "127.0.0.1"
    assert downloads[0]["document_id"] == c.doc
    assert "stamped" in downloads[0]["reason"]

    assert anonymous.post(f"/s/{token_of(link)}").status_code == 200
    gone = anonymous.post(f"/s/{token_of(link)}")
    assert gone.status_code == 410
    assert "上限" in gone.text
    assert anonymous.get(f"/s/{token_of(link)}").status_code == 410
    state = c.drafter.http.get(f"/api/v1/disclosures/{d['id']}").json()
    assert (state["status"], state["downloads"]) == ("used_up", 2)
    refused_events = events(server, action="disclosure.download", actor=f"disclosure:{d['id']}")
    assert [e["decision"] for e in refused_events] == ["allow", "allow", "deny"]
    assert refused_events[-1]["reason"] == "disclosure_used_up"


def test_checks_come_in_the_order_of_the_issue(server: KinkoServer) -> None:
    c = make_case(server)
    t = tag()
    outsider = server.user(f"ds-outsider-{t}")
    assert ask(c, outsider).status_code == 404
    evaluator = server.user(f"ds-eval-{t}")
    server.admin.set_member(c.id, f"ds-eval-{t}", ["evaluator"])
    assert code(ask(c, evaluator)) == "read_not_permitted"
    # An admin never reads content, so it cannot ask to give it away either.
    assert ask(c, server.admin).status_code == 403
    # A bad body is judged after visibility: a non-member learns nothing from it.
    assert ask(c, outsider, recipient_email="nope").status_code == 404
    assert code(ask(c, recipient_email="nope")) == "invalid_email"
    assert code(ask(c, max_downloads=21)) == "invalid_max_downloads"
    assert code(ask(c, max_downloads=0)) == "invalid_max_downloads"
    too_late = (datetime.now(UTC) + timedelta(days=15)).isoformat()
    assert code(ask(c, expires_at=too_late)) == "invalid_time"
    assert ask(c, version=9).status_code == 404
    # A disclosed document is public already.
    public = make_case(server)
    public.drafter.finalize(public.doc, 1)
    server.admin.set_member(public.id, public.names["sup1"], ["supervisor"])
    public.sup1.transition(public.id, "announced")
    assert code(ask(public)) == "already_public"
    # From the review request on: contact is prohibited.
    c.sup1.transition(c.id, "review")
    resp = ask(c)
    assert resp.status_code == 409
    assert code(resp) == "contact_prohibited"
    denied = list(events(server, action="disclosure.request", case_id=c.id))
    assert {e["reason"] for e in denied if e["decision"] == "deny"} >= {
        "read_not_permitted",
        "contact_prohibited",
        "invalid_email",
    }


def test_defaults_take_the_final_version_else_the_latest(server: KinkoServer) -> None:
    c = make_case(server)
    c.drafter.put_content(c.doc, pdf(3))
    assert ask(c).json()["version"] == 2
    c.drafter.finalize(c.doc, 1)
    assert ask(c).json()["version"] == 1
    assert ask(c, version=2).json()["version"] == 2


def test_revoke_reject_and_the_review_request_end_links(
    server: KinkoServer, mailbox: Mailbox
) -> None:
    c = make_case(server)
    anonymous = outside(server)
    # Revoked by the requester: the link is 410 at once.
    d = ask(c).json()
    link = approve(c, d["id"]).json()["link"]
    assert c.drafter.http.post(f"/api/v1/disclosures/{d['id']}/revoke").json()["status"] == (
        "revoked"
    )
    assert anonymous.post(f"/s/{token_of(link)}").status_code == 410
    assert code(c.drafter.http.post(f"/api/v1/disclosures/{d['id']}/revoke")) == ("already_decided")
    # Rejected with a note: no link, the requester is told.
    d2 = ask(c).json()
    rej = c.sup2.http.post(f"/api/v1/disclosures/{d2['id']}/reject", json={"note": "不要です"})
    assert rej.status_code == 200
    assert (rej.json()["status"], rej.json()["note"]) == ("rejected", "不要です")
    assert "link" not in rej.json()
    notes = c.drafter.http.get("/api/v1/notifications").json()["notifications"]
    assert any(n["kind"] == "disclosure.rejected" and "不要です" in n["text"] for n in notes)
    # A live link dies when the case reaches the review request.
    d3 = ask(c).json()
    link3 = approve(c, d3["id"], c.sup2).json()["link"]
    assert anonymous.get(f"/s/{token_of(link3)}").status_code == 200
    c.sup1.transition(c.id, "review")
    assert anonymous.post(f"/s/{token_of(link3)}").status_code == 410
    listed = c.sup1.http.get(f"/api/v1/cases/{c.id}/disclosures").json()["disclosures"]
    assert {x["id"]: x["status"] for x in listed} == {
        d["id"]: "revoked",
        d2["id"]: "rejected",
        d3["id"]: "closed",
    }
    # Auditors see every case's disclosures; outsiders none.
    assert len(server_auditor(server).http.get(f"/api/v1/cases/{c.id}/disclosures").json()[
        "disclosures"]) == 3  # fmt: skip
    assert server.user(f"ds-nobody-{tag()}").http.get(
        f"/api/v1/cases/{c.id}/disclosures"
    ).status_code == 404  # fmt: skip


def test_expiry_ends_a_link(server: KinkoServer) -> None:
    c = make_case(server)
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    d = ask(c, expires_at=soon).json()
    link = approve(c, d["id"]).json()["link"]
    anonymous = outside(server)
    assert anonymous.get(f"/s/{token_of(link)}").status_code == 200
    time.sleep(2.2)
    resp = anonymous.post(f"/s/{token_of(link)}")
    assert resp.status_code == 410
    assert "有効期限" in resp.text
    assert c.drafter.http.get(f"/api/v1/disclosures/{d['id']}").json()["status"] == "expired"


def test_unknown_links_are_404_logged_and_throttled(server: KinkoServer) -> None:
    anonymous = outside(server)
    # uvicorn takes the client address from X-Forwarded-For sent by a proxy on loopback:
    # this client stands for one address of its own, so the throttle meets no other test.
    anonymous.headers["X-Forwarded-For"] = "192.0.2.44"
    before = len(events(server, action="disclosure.download", decision="deny"))
    statuses = [anonymous.post(f"/s/{'x' * 43}").status_code for _ in range(22)]
    assert statuses[:20] == [404] * 20
    assert statuses[-1] == 429
    denied = events(server, action="disclosure.download", decision="deny")
    assert len(denied) - before == 22
    assert {e["reason"] for e in denied[before:]} == {"disclosure_not_found", "too_many_attempts"}
    assert all(e["actor"] is None for e in denied[before:])


def test_other_formats_are_served_as_stored_and_the_page_says_so(server: KinkoServer) -> None:
    c = make_case(
        server, content=b"plain text, not a PDF", title="見積条件.txt", content_type="text/plain"
    )
    link = approve(c, ask(c).json()["id"]).json()["link"]
    anonymous = outside(server)
    page = anonymous.get(f"/s/{token_of(link)}")
    assert "保存されたままの形" in page.text
    dl = anonymous.post(f"/s/{token_of(link)}")
    assert dl.content == b"plain text, not a PDF"


def test_nothing_of_a_disclosure_is_stored_in_the_clear(server: KinkoServer) -> None:
    c = make_case(server)
    secret_org = "極秘商事株式会社-" + tag()
    d = ask(c, recipient_organization=secret_org, reason="理由-" + secret_org).json()
    link = approve(c, d["id"]).json()["link"]
    token = token_of(link)
    time.sleep(1.0)  # let the outbox send and erase the message
    for path in Path(server.data_dir).rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            assert secret_org.encode() not in raw, path
            assert token.encode() not in raw, path


def test_mail_sent_after_the_server_returns_arrives_once(
    tmp_path: Path,
) -> None:
    box = Mailbox()
    with serving(tmp_path, KINKO_SMTP_URL=box.url, KINKO_OUTBOX_POLL_SECONDS="0.2") as srv:
        c = make_case(srv)
        d = ask(c).json()
        # The mail server is down while the disclosure is approved.
        assert approve(c, d["id"]).status_code == 200
        time.sleep(2.0)
        assert box.received == []
        box.start()
        try:
            got = box.wait_for(lambda m: "yamada@vendor.example.co.jp" in m.rcpt_tos, 40)
            time.sleep(2.0)
            assert len(mails_to(box, "yamada@vendor.example.co.jp")) == 1, got
            sent = [e for e in events(srv, action="mail.send") if "disclosure.link" in e["reason"]]
            assert len(sent) == 1
            assert re.search(r"attempts=([2-9]|\d\d)", sent[0]["reason"]), sent[0]
        finally:
            box.stop()
