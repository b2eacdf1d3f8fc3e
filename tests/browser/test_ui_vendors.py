"""The seed's workflows in a real browser (issue 12), with a real SMTP server: a drafter asks
to give a PDF to a vendor from the document page; a second supervisor approves it from the
inbox (the first, who asked for their own, cannot); the recipient opens the link from the
e-mail, sees the landing page and downloads the PDF stamped with their name; a contact is
planned and reported in the case's register; notifications are read.  Every page is checked
with axe-core and photographed, in Japanese."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import KinkoServer, serving
from mail_support import Mailbox
from playwright.sync_api import Page, expect
from pypdf import PdfReader, PdfWriter

pytestmark = pytest.mark.slow

CheckAxe = Callable[[Page], list[dict[str, Any]]]
Screenshot = Callable[[Page, str], Path]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def locale() -> str:
    return "ja-JP"


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox) -> Iterator[KinkoServer]:
    with serving(
        tmp_path_factory.mktemp("kinko-vendors"),
        KINKO_TIMEZONE="Asia/Tokyo",
        KINKO_SMTP_URL=mailbox.url,
        KINKO_ORGANIZATION="架空市 契約課",
        KINKO_OUTBOX_POLL_SECONDS="0.2",
    ) as srv:
        yield srv


def sign_in(server: KinkoServer, new_page: Callable[..., Page], name: str) -> Page:
    made = server.admin.http.post(f"/api/v1/users/{name}/invitation")
    assert made.status_code == 201, made.text
    page = new_page()
    page.goto(made.json()["url"])
    page.get_by_label("新しいパスワード").fill(PASSWORD)
    page.get_by_label("パスワード（確認）").fill(PASSWORD)
    page.get_by_role("button", name="パスワードを設定").click()
    expect(page).to_have_url(re.compile(r"/ui/$"))
    return page


def blank_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_disclosure_and_contact_register_in_the_browser(
    ui_server: KinkoServer,
    mailbox: Mailbox,
    new_page: Callable[..., Page],
    check_axe: CheckAxe,
    screenshot: Screenshot,
    tmp_path: Path,
) -> None:
    t = uuid.uuid4().hex[:6]
    admin = ui_server.admin
    names = {k: f"bv-{k}-{t}" for k in ("drafter", "sup1", "sup2")}
    for key, name in names.items():
        admin.http.post(
            "/api/v1/users",
            json={
                "name": name,
                "roles": ["procurement"] if key == "drafter" else [],
                "email": f"{name}@city.example.jp",
            },
        )
    api = ui_server.client(admin.create_token(names["drafter"])["token"])
    case = api.create_case(f"BV-{t}", "庁舎清掃業務委託")["id"]
    for key in ("sup1", "sup2"):
        admin.set_member(case, names[key], ["supervisor"])
    doc = api.create_document(
        case, "specification", "仕様書.pdf", blank_pdf(), content_type="application/pdf"
    )["id"]

    # The drafter asks from the document page.
    page = sign_in(ui_server, new_page, names["drafter"])
    page.goto(ui_server.base_url + f"/ui/documents/{doc}")
    expect(page.get_by_role("heading", name="外部への情報提供")).to_be_visible()
    check_axe(page)
    page.get_by_label("提供先の氏名").fill("山田 太郎")
    page.get_by_label("提供先の所属").fill("株式会社テスト清掃")
    page.get_by_label("提供先の電子メールアドレス").fill("yamada@vendor.example.co.jp")
    page.get_by_label("理由").fill("仕様の確認のため")
    page.get_by_role("button", name="承認を申請する").click()
    expect(page.get_by_role("status")).to_contain_text("申請を案件の上長に送りました")
    check_axe(page)
    screenshot(page, "disclosure-requested")

    # The second supervisor approves from the inbox; the link is shown once.
    sup = sign_in(ui_server, new_page, names["sup2"])
    sup.get_by_role("link", name="承認・確認").click()
    expect(sup.get_by_role("table", name="承認待ちの情報提供")).to_contain_text("山田 太郎")
    check_axe(sup)
    screenshot(sup, "inbox")
    sup.get_by_role("link", name="開いて決定する").click()
    check_axe(sup)
    sup.get_by_role("button", name="承認する").click()
    link = sup.locator("#share-url").inner_text()
    assert "/s/" in link
    check_axe(sup)
    screenshot(sup, "disclosure-approved")

    # The recipient's e-mail, with the supervisors in copy, carries the link.
    got = mailbox.wait_for(lambda m: "yamada@vendor.example.co.jp" in m.rcpt_tos)
    assert link in got[0].text()
    assert f"{names['sup1']}@city.example.jp" in str(got[0].message["Cc"])

    # The recipient's landing page and the stamped download.
    outside = new_page()
    outside.goto(link)
    expect(outside.get_by_role("heading", level=1)).to_contain_text("資料の受け取り")
    expect(outside.locator("main")).to_contain_text("架空市 契約課")
    check_axe(outside)
    screenshot(outside, "share-landing")
    with outside.expect_download() as caught:
        outside.get_by_role("button", name=re.compile("ダウンロード")).click()
    saved = tmp_path / "got.pdf"
    caught.value.save_as(saved)
    assert "山田 太郎" in PdfReader(saved).pages[0].extract_text()

    # A contact planned and reported in the case's register.
    page.goto(ui_server.base_url + f"/ui/cases/{case}")
    page.get_by_role("link", name="この案件の事業者との接触記録と情報提供").click()
    check_axe(page)
    page.get_by_label("事業者", exact=True).fill("株式会社テスト清掃")
    page.get_by_label("方法").select_option("phone")
    page.get_by_label("日時").fill("2026-01-05T10:00")
    page.get_by_label("議題").fill("仕様に関する質問への回答")
    page.get_by_role("button", name="事前報告する").click()
    register = page.get_by_role("table", name="この案件での事業者との接触")
    expect(register).to_contain_text("株式会社テスト清掃")
    page.get_by_label("接触の概要").fill("質問に回答した")
    page.get_by_label("事業者に情報を提供した").check()
    page.get_by_label(re.compile("仕様書.pdf → 山田 太郎")).check()
    page.get_by_role("button", name="事後報告する").click()
    expect(register).to_contain_text("質問に回答した")
    check_axe(page)
    screenshot(page, "contact-register")

    # The notifications page.
    page.get_by_role("link", name="お知らせ").click()
    expect(page.locator("main")).to_contain_text("情報提供の承認")
    check_axe(page)
    screenshot(page, "notifications")
