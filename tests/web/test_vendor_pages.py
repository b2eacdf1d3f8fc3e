"""The web pages of issue 12, through signed-in browsers: request a disclosure from a document
page, decide it in the supervisor's inbox (own approval refused), see the link once, the
recipient's landing page; plan and report a vendor contact in a case's register; read the
notifications; an admin gives a user an e-mail address."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import serving

from .conftest import Browser, browser, browser_session, csrf_of


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with serving(tmp_path_factory.mktemp("kinko-vendor-web"), KINKO_TIMEZONE="Asia/Tokyo") as srv:
        yield srv


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def setup_case(server: Any) -> tuple[Browser, Browser, Browser, str, str]:
    drafter = browser_session(server, _unique("vw-drafter"), ["procurement"])
    sup1 = browser_session(server, _unique("vw-sup1"))
    sup2 = browser_session(server, _unique("vw-sup2"))
    resp = drafter.post(
        "/ui/cases",
        data={"csrf": drafter.csrf("/ui/"), "number": _unique("VW"), "title": "庁舎清掃"},
    )
    case_id = resp.headers["location"].rsplit("/", 1)[1]
    for b in (sup1, sup2):
        server.admin.set_member(case_id, b.name, ["supervisor"])
    api = server.client(server.admin.create_token(drafter.name)["token"])
    doc = api.create_document(case_id, "specification", "仕様書.txt", b"spec")["id"]
    return drafter, sup1, sup2, case_id, doc


def test_a_disclosure_from_request_to_link_through_the_pages(server: Any) -> None:
    drafter, sup1, _sup2, _case_id, doc = setup_case(server)
    page = drafter.get(f"/ui/documents/{doc}")
    assert "外部への情報提供" in page.text
    resp = drafter.post(
        f"/ui/documents/{doc}/disclosures",
        data={
            "csrf": csrf_of(page.text),
            "recipient_name": "山田 太郎",
            "recipient_organization": "株式会社テスト",
            "recipient_email": "not-an-address",
            "reason": "仕様の確認",
            "days": "7",
            "max_downloads": "3",
        },
    )
    assert resp.status_code == 400
    assert "電子メールアドレスを入力してください" in resp.text
    resp = drafter.post(
        f"/ui/documents/{doc}/disclosures",
        data={
            "csrf": csrf_of(page.text),
            "recipient_name": "山田 太郎",
            "recipient_organization": "株式会社テスト",
            "recipient_email": "yamada@vendor.example.co.jp",
            "reason": "仕様の確認",
            "days": "7",
            "max_downloads": "3",
        },
    )
    assert resp.status_code == 303, resp.text[:500]
    match = re.fullmatch(r"/ui/disclosures/([0-9a-f]+)\?new=1", resp.headers["location"])
    assert match is not None
    disclosure = match.group(1)
    mine = drafter.get(resp.headers["location"])
    assert "申請を案件の上長に送りました" in mine.text
    assert "承認する" not in mine.text  # the requester is not a supervisor

    # The supervisor's inbox lists it; the disclosure page offers the decision.
    inbox = sup1.get("/ui/inbox")
    assert inbox.status_code == 200
    assert "山田 太郎" in inbox.text
    assert f"/ui/disclosures/{disclosure}" in inbox.text
    detail = sup1.get(f"/ui/disclosures/{disclosure}")
    assert "承認する" in detail.text
    approved = sup1.post(
        f"/ui/disclosures/{disclosure}/approve", data={"csrf": csrf_of(detail.text)}
    )
    assert approved.status_code == 200
    link = re.search(r'id="share-url">([^<]+)<', approved.text)
    assert link is not None
    # Shown once: the page opened again has no link.
    assert "share-url" not in sup1.get(f"/ui/disclosures/{disclosure}").text
    token = link.group(1).rsplit("/s/", 1)[1]
    outsider = browser(server)
    landing = outsider.get(f"/s/{token}")
    assert landing.status_code == 200
    assert "仕様書.txt" in landing.text
    # The requester is told in the notifications page.
    notes = drafter.get("/ui/notifications")
    assert "情報提供の承認" in notes.text
    read = drafter.post("/ui/notifications/read", data={"csrf": csrf_of(notes.text)})
    assert read.status_code == 303


def test_own_requests_are_not_decided_by_their_supervisor(server: Any) -> None:
    _drafter, sup1, _sup2, _case_id, doc = setup_case(server)
    page = sup1.get(f"/ui/documents/{doc}")
    resp = sup1.post(
        f"/ui/documents/{doc}/disclosures",
        data={
            "csrf": csrf_of(page.text),
            "recipient_name": "佐藤",
            "recipient_organization": "株式会社テスト",
            "recipient_email": "sato@vendor.example.co.jp",
            "reason": "確認",
        },
    )
    disclosure = resp.headers["location"].split("/")[-1].split("?")[0]
    detail = sup1.get(f"/ui/disclosures/{disclosure}")
    assert "承認する" not in detail.text
    assert "他の上長が決定します" in sup1.get("/ui/inbox").text
    # Posted anyway: refused, with the reason on the page.
    refused = sup1.post(
        f"/ui/disclosures/{disclosure}/approve", data={"csrf": csrf_of(detail.text)}
    )
    assert refused.status_code == 403
    assert "自分の申請は承認できません" in refused.text


def test_the_contact_register_page(server: Any) -> None:
    drafter, sup1, _sup2, case_id, _doc = setup_case(server)
    case_page = drafter.get(f"/ui/cases/{case_id}")
    assert f"/ui/cases/{case_id}/contacts" in case_page.text
    register = drafter.get(f"/ui/cases/{case_id}/contacts")
    assert register.status_code == 200
    form = {
        "csrf": csrf_of(register.text),
        "vendor": "株式会社清掃",
        "channel": "meeting",
        "planned_at": "2026-01-05T10:00",
        "participants": drafter.name,
        "agenda": "見積条件の説明",
    }
    one = drafter.post(f"/ui/cases/{case_id}/contacts", data=form)
    assert one.status_code == 400
    assert "2 名以上" in one.text
    ok = drafter.post(
        f"/ui/cases/{case_id}/contacts",
        data={**form, "participants": f"{drafter.name},{sup1.name}"},
    )
    assert ok.status_code == 303, ok.text[:800]
    register = drafter.get(f"/ui/cases/{case_id}/contacts")
    assert "株式会社清掃" in register.text
    assert "事後報告が未提出" in register.text  # planned in the past, more than 2 days ago
    contact = re.search(r'action="/ui/contacts/([0-9a-f]+)/report"', register.text)
    assert contact is not None
    # The supervisor acknowledges from the inbox.
    inbox = sup1.get("/ui/inbox")
    assert "株式会社清掃" in inbox.text
    ack = sup1.post(
        f"/ui/contacts/{contact.group(1)}/acknowledge",
        data={"csrf": csrf_of(inbox.text), "case_id": case_id, "back": "inbox"},
    )
    assert ack.status_code == 303
    # The report without an approved disclosure, though information was given: refused.
    refused = drafter.post(
        f"/ui/contacts/{contact.group(1)}/report",
        data={
            "csrf": csrf_of(register.text),
            "case_id": case_id,
            "summary": "説明した",
            "information_provided": "1",
        },
    )
    assert refused.status_code == 409
    assert "承認済みの情報提供が必要" in refused.text
    done = drafter.post(
        f"/ui/contacts/{contact.group(1)}/report",
        data={"csrf": csrf_of(register.text), "case_id": case_id, "summary": "説明した"},
    )
    assert done.status_code == 303
    csv_file = drafter.get(f"/ui/cases/{case_id}/contacts.csv")
    assert csv_file.content.startswith("\ufeff".encode())
    assert "株式会社清掃" in csv_file.content.decode("utf-8-sig")


def test_an_admin_sets_an_email_address(server: Any) -> None:
    admin = browser_session(server, _unique("vw-admin"), ["admin"])
    name = _unique("vw-user")
    users = admin.get("/ui/users")
    created = admin.post(
        "/ui/users",
        data={"csrf": csrf_of(users.text), "name": name, "email": "Suzuki@City.Example.JP"},
    )
    assert created.status_code == 303, created.text[:500]
    page = admin.get(f"/ui/users/{name}")
    assert "Suzuki@city.example.jp" in page.text
    bad = admin.post(f"/ui/users/{name}/edit", data={"csrf": csrf_of(page.text), "email": "nope"})
    assert bad.status_code == 400
    edited = admin.post(
        f"/ui/users/{name}/edit",
        data={"csrf": csrf_of(page.text), "display_name": "鈴木", "email": "s@city.example.jp"},
    )
    assert edited.status_code == 303
    assert "s@city.example.jp" in admin.get(f"/ui/users/{name}").text
