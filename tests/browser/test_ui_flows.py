"""The web interface's main flows in a real browser (Debian's Chromium), as each kind of user
(issue 10): a drafter creates a case, uploads a document and new versions and marks one final;
a supervisor schedules and cancels a stage change; an evaluator sees documents only during the
evaluation; a download asks for its purpose, which lands in the audit log; a supervisor
confirms another member's read in place; an auditor filters the log, exports a bundle and
verifies it offline.  Every page visited is checked with axe-core and photographed, in
Japanese (the office's language), with a short English pass of the case and document pages.

One server serves the whole module, and each user signs in once (through their invitation
link, as a person does); later tests reuse the browser state of that sign-in.
"""

from __future__ import annotations

import re
import tarfile
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import KinkoServer, run_kinko, serving
from playwright.sync_api import Locator, Page, expect

from clients import KinkoClient

# Every page in two languages (or every flow) in a real browser: run by CI and by
# `pytest -m slow`, not in the quick default run.
pytestmark = pytest.mark.slow

CheckAxe = Callable[[Page], list[dict[str, Any]]]
Screenshot = Callable[[Page, str], Path]
PASSWORD = "correct horse battery staple"
# The office's time zone is not UTC, so a scheduled time typed into the page must be taken as
# local time for the test's expectations to hold.
TZ = "Asia/Tokyo"

# Every user the flows need, with their global roles; case roles are given per case.
USERS = {
    "fl-drafter": ["procurement"],
    "fl-sup": [],
    "fl-eval": [],
    "fl-auditor": ["auditor"],
}


@pytest.fixture
def locale() -> str:
    # The office's language; the English pass overrides it.
    return "ja-JP"


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KinkoServer]:
    with serving(tmp_path_factory.mktemp("kinko-flows"), KINKO_TIMEZONE=TZ) as srv:
        admin = srv.admin
        for name, roles in USERS.items():
            admin.create_user(name, roles)
        yield srv


class Accounts:
    """Signed-in browser states and API clients of the module's users, made once each."""

    def __init__(self, server: KinkoServer) -> None:
        self.server = server
        self.states: dict[str, Any] = {}
        self.apis: dict[str, KinkoClient] = {}

    def api(self, name: str) -> KinkoClient:
        if name not in self.apis:
            token = self.server.admin.create_token(name)["token"]
            self.apis[name] = self.server.client(token)
        return self.apis[name]

    def page(self, new_page: Callable[..., Page], name: str, locale: str | None = None) -> Page:
        """A page of a fresh context signed in as ``name`` (showing the cases list)."""
        options: dict[str, Any] = {} if locale is None else {"locale": locale}
        if name in self.states:
            page = new_page(storage_state=self.states[name], **options)
            page.goto(self.server.base_url + "/ui/")
        else:
            made = self.server.admin.http.post(f"/api/v1/users/{name}/invitation")
            assert made.status_code == 201, made.text
            page = new_page(**options)
            page.goto(made.json()["url"])
            # The invitation page speaks the browser's language (English for the English pass
            # when it runs alone).
            en = page.locator("html").get_attribute("lang") == "en"
            page.get_by_label("New password" if en else "新しいパスワード").fill(PASSWORD)
            page.get_by_label("Confirm password" if en else "パスワード（確認）").fill(PASSWORD)
            page.get_by_role("button", name="Set password" if en else "パスワードを設定").click()
            expect(page).to_have_url(re.compile(r"/ui/$"))
            self.states[name] = page.context.storage_state()
        expect(page.locator("header .me")).to_have_text(name)
        return page


@pytest.fixture(scope="module")
def accounts(ui_server: KinkoServer) -> Accounts:
    return Accounts(ui_server)


@pytest.fixture
def signed_in(accounts: Accounts, new_page: Callable[..., Page]) -> Callable[..., Page]:
    """``signed_in(name, locale=None) -> Page``: a page signed in as ``name``."""

    def make(name: str, locale: str | None = None) -> Page:
        return accounts.page(new_page, name, locale)

    return make


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _scene(accounts: Accounts, members: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """A case made by the drafter through the API, with ``members`` added by the admin."""
    case = accounts.api("fl-drafter").create_case(_unique("R8"), "庁舎清掃業務委託")
    for name, roles in (members or {}).items():
        accounts.server.admin.set_member(case["id"], name, roles)
    return dict(case)


def _nav(page: Page, name: str) -> Locator:
    """A link of the main navigation (the page body may have links of the same name)."""
    return page.get_by_role("navigation", name="メインメニュー").get_by_role(
        "link", name=name, exact=True
    )


def _version_rows(page: Page) -> Locator:
    return page.get_by_role("table", name="文書の版").locator("tbody tr")


def _class_values(page: Page) -> list[str]:
    """The values of the upload form's class options (the SPEC's class names)."""
    select = page.get_by_label("区分", exact=True)
    return list(select.locator("option").evaluate_all("options => options.map(o => o.value)"))


def _events(auditor: KinkoClient, **filters: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        got = auditor.audit_events(limit=1000, cursor=cursor, **filters)
        out.extend(got["events"])
        cursor = got["next_cursor"]
        if cursor is None:
            return out


def _upload_on_case_page(page: Page, file: Path, title: str, cls: str) -> str:
    """Fill the case page's upload form; returns the new document's id (from the page URL)."""
    page.get_by_label("ファイル", exact=True).set_input_files(file)
    page.get_by_label("件名", exact=True).fill(title)
    page.get_by_label("区分", exact=True).select_option(cls)
    page.get_by_role("button", name="アップロード").click()
    expect(page).to_have_url(re.compile(r"/ui/documents/[0-9a-f]+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    return page.url.rsplit("/", 1)[1]


def test_drafter_creates_a_case_uploads_versions_and_marks_one_final(
    signed_in: Callable[..., Page], tmp_path: Path, check_axe: CheckAxe, screenshot: Screenshot
) -> None:
    page = signed_in("fl-drafter")
    expect(page.get_by_role("heading", level=1)).to_have_text("案件")
    number = _unique("R8")
    page.get_by_label("案件番号").fill(number)
    page.get_by_label("案件名").fill("庁舎清掃業務委託")
    page.get_by_role("button", name="案件を作成").click()
    expect(page).to_have_url(re.compile(r"/ui/cases/[0-9a-f]+$"))
    case_url = page.url

    # Back on the list, the new case links by its number, with the creator's role.
    _nav(page, "案件").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=number))
    expect(row).to_contain_text("調達担当")
    check_axe(page)
    screenshot(page, "cases")
    row.get_by_role("link", name=number).click()
    expect(page).to_have_url(case_url)
    expect(page.get_by_role("heading", level=1)).to_contain_text(number)
    # The class selector carries SPEC class names; drafters never write technical scores.
    values = _class_values(page)
    assert "specification" in values
    assert "proposal" in values
    assert "technical_scores" not in values
    check_axe(page)
    screenshot(page, "case")

    first = tmp_path / "shiyousho-v1.txt"
    first.write_bytes("仕様書（案）第1版\n".encode() * 20)
    _upload_on_case_page(page, first, "仕様書（案）", "specification")
    expect(_version_rows(page)).to_have_count(1)
    check_axe(page)
    screenshot(page, "document")

    second = tmp_path / "shiyousho-v2.txt"
    second.write_bytes("仕様書（案）第2版\n".encode() * 30)
    page.get_by_label("ファイル", exact=True).set_input_files(second)
    page.get_by_role("button", name="アップロード").click()
    expect(_version_rows(page)).to_have_count(2)
    expect(_version_rows(page).nth(1)).to_contain_text(f"{second.stat().st_size:,}")

    page.get_by_label("確定版にする版").select_option("2")
    page.get_by_role("button", name="確定版にする").click()
    rows = _version_rows(page)
    expect(rows.nth(1).locator(".badge.final")).to_have_text("確定版")
    expect(rows.nth(0).locator(".badge.final")).to_have_count(0)
    # Both versions are there to download, each behind the purpose form.
    expect(page.get_by_role("link", name="第1版をダウンロード")).to_be_visible()
    expect(page.get_by_role("link", name="第2版をダウンロード")).to_be_visible()
    check_axe(page)
    screenshot(page, "document-final")

    # The case page lists the document by its title, with its final version.
    page.get_by_role("link", name="案件に戻る").click()
    doc_row = page.get_by_role("row").filter(has=page.get_by_role("link", name="仕様書（案）"))
    expect(doc_row).to_contain_text("確定版: 第2版")
    expect(doc_row.get_by_role("cell").nth(1)).to_have_text("2")
    check_axe(page)
    screenshot(page, "case-with-document")


def test_supervisor_schedules_and_cancels_a_stage_change(
    accounts: Accounts,
    signed_in: Callable[..., Page],
    check_axe: CheckAxe,
    screenshot: Screenshot,
) -> None:
    case = _scene(accounts, {"fl-sup": ["supervisor"]})
    url = accounts.server.base_url + f"/ui/cases/{case['id']}"
    sup = signed_in("fl-sup")
    sup.goto(url)
    at = (datetime.now(ZoneInfo(TZ)) + timedelta(days=3)).replace(second=0, microsecond=0)
    sup.get_by_label("次の段階").select_option("announced")
    sup.get_by_label("日時（任意）").fill(at.strftime("%Y-%m-%dT%H:%M"))
    sup.get_by_role("button", name="段階を変更").click()
    cancel = sup.get_by_role("button", name="「入札公告」への変更を取消")
    expect(cancel).to_be_visible()
    scheduled = sup.locator("ol.timeline li.scheduled")
    # Shown in office time, as typed.
    expect(scheduled).to_contain_text(f"{at:%Y-%m-%d %H:%M} (JST) に予定 実施者: fl-sup")
    expect(sup.locator("ol.timeline li.current")).to_contain_text("(現在の段階) 実施者: fl-drafter")
    # Scheduled, not yet in force: the case is still drafting.
    expect(sup.locator("dl.facts")).to_contain_text("仕様書案作成")
    check_axe(sup)
    screenshot(sup, "case-supervisor")
    transitions = accounts.api("fl-sup").case(case["id"])["transitions"]
    assert [t["stage"] for t in transitions] == ["drafting", "announced"]
    assert datetime.fromisoformat(transitions[-1]["at"].replace("Z", "+00:00")) == at

    # The drafter sees the scheduled change, but neither the cancel button nor the stage form.
    drafter = signed_in("fl-drafter")
    drafter.goto(url)
    expect(drafter.locator("ol.timeline li.scheduled")).to_contain_text("入札公告")
    expect(drafter.get_by_role("button", name=re.compile("への変更を取消"))).to_have_count(0)
    expect(drafter.get_by_role("button", name="段階を変更")).to_have_count(0)

    cancel.click()
    expect(sup.locator("ol.timeline li.scheduled")).to_have_count(0)
    expect(sup.get_by_role("button", name=re.compile("への変更を取消"))).to_have_count(0)
    assert [t["stage"] for t in accounts.api("fl-sup").case(case["id"])["transitions"]] == [
        "drafting"
    ]
    check_axe(sup)


def test_evaluator_sees_documents_only_during_the_evaluation(
    accounts: Accounts,
    signed_in: Callable[..., Page],
    check_axe: CheckAxe,
    screenshot: Screenshot,
) -> None:
    case = _scene(accounts, {"fl-sup": ["supervisor"], "fl-eval": ["evaluator"]})
    drafter = accounts.api("fl-drafter")
    drafter.create_document(case["id"], "evaluation_criteria", "評価基準書", b"criteria")
    drafter.create_document(case["id"], "budget", "予算見積", b"budget")
    evaluator = signed_in("fl-eval")
    evaluator.goto(accounts.server.base_url + f"/ui/cases/{case['id']}")
    expect(evaluator.get_by_role("heading", level=1)).to_contain_text(case["number"])
    expect(evaluator.get_by_text("閲覧できる文書はまだありません。")).to_be_visible()
    expect(evaluator.get_by_role("link", name="評価基準書")).to_have_count(0)
    expect(evaluator.get_by_role("button", name="アップロード")).to_have_count(0)
    check_axe(evaluator)
    screenshot(evaluator, "case-evaluator-drafting")

    accounts.api("fl-sup").transition(case["id"], "evaluation")
    evaluator.reload()
    expect(evaluator.locator("dl.facts")).to_contain_text("技術審査")
    expect(evaluator.get_by_role("link", name="評価基準書")).to_be_visible()
    expect(evaluator.get_by_role("link", name="予算見積")).to_have_count(0)
    # In the evaluation the evaluator may write technical scores, and nothing else.
    values = _class_values(evaluator)
    assert values == ["technical_scores"]
    check_axe(evaluator)
    screenshot(evaluator, "case-evaluator-evaluation")
    evaluator.get_by_role("link", name="評価基準書").click()
    expect(evaluator.get_by_role("heading", level=1)).to_have_text("評価基準書")
    expect(_version_rows(evaluator)).to_have_count(1)
    check_axe(evaluator)
    screenshot(evaluator, "document-evaluator")


def test_a_download_asks_for_its_purpose_and_the_log_keeps_it(
    accounts: Accounts,
    signed_in: Callable[..., Page],
    tmp_path: Path,
    check_axe: CheckAxe,
    screenshot: Screenshot,
) -> None:
    case = _scene(accounts)
    page = signed_in("fl-drafter")
    page.goto(accounts.server.base_url + f"/ui/cases/{case['id']}")
    file = tmp_path / "yotei-kakaku.txt"
    file.write_bytes("予定価格調書\n".encode() * 50)
    doc_id = _upload_on_case_page(page, file, "予定価格調書", "estimated_price")
    page.get_by_role("link", name="第1版をダウンロード").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("ダウンロード")
    purpose = page.get_by_label("利用目的")
    expect(purpose).to_be_focused()
    check_axe(page)
    screenshot(page, "download")

    # An empty purpose is not sent: the browser holds the form back (the field is required).
    downloads: list[Any] = []
    page.on("download", lambda d: downloads.append(d))
    form_url = page.url
    page.get_by_role("button", name="ダウンロード").click()
    assert purpose.evaluate("el => el.validity.valueMissing") is True
    expect(page).to_have_url(form_url)
    # Blanks pass the browser's check, and the server refuses them with its message.
    purpose.fill("   ")
    page.get_by_role("button", name="ダウンロード").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("利用目的")).to_be_visible()
    check_axe(page)
    screenshot(page, "download-refused")
    assert downloads == []

    typed = "入札書比較価格の確認（第3回）"
    page.get_by_label("利用目的").fill(typed)
    with page.expect_download() as caught:
        page.get_by_role("button", name="ダウンロード").click()
    got = tmp_path / "got.bin"
    caught.value.save_as(got)
    assert got.read_bytes() == file.read_bytes()
    assert caught.value.suggested_filename

    reads = _events(accounts.api("fl-auditor"), document_id=doc_id, action="document.read")
    assert [(e["decision"], e["purpose"]) for e in reads][-1] == ("allow", typed)
    assert reads[-1]["actor"] == "fl-drafter"
    assert reads[-1]["version"] == 1
    # The blank attempt is on the record too, as a refusal.
    assert any(e["decision"] == "deny" for e in reads[:-1])


def test_supervisor_confirms_another_members_read_in_place(
    accounts: Accounts,
    signed_in: Callable[..., Page],
    check_axe: CheckAxe,
    screenshot: Screenshot,
) -> None:
    case = _scene(accounts, {"fl-sup": ["supervisor"]})
    doc = accounts.api("fl-drafter").create_document(
        case["id"], "budget", "予算要求資料", b"budget figures"
    )
    theirs = _unique("予算額の確認")
    mine = _unique("上長による内容確認")
    accounts.api("fl-drafter").read(doc["id"], theirs)
    accounts.api("fl-sup").read(doc["id"], mine)

    page = signed_in("fl-sup")
    _nav(page, "点検・確認").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("点検・確認")
    row = page.get_by_role("row").filter(has_text=theirs)
    own = page.get_by_role("row").filter(has_text=mine)
    expect(row).to_contain_text("fl-drafter")
    expect(own).to_contain_text("ご自身の照会です")
    # Nobody reviews their own read: that row has no buttons and no note.
    expect(own.get_by_role("button")).to_have_count(0)
    expect(own.get_by_role("textbox")).to_have_count(0)
    check_axe(page)
    screenshot(page, "reviews")

    # htmx swaps the row in place: the page is not reloaded (the marker survives), and the
    # row says who confirmed it.
    page.evaluate("window.kinkoTestMarker = 1")
    url = page.url
    row.get_by_label("メモ").fill("予算要求の作業として妥当")
    row.get_by_role("button", name="確認済み").click()
    expect(row.get_by_role("status")).to_have_text("fl-sup が確認済みとしました")
    expect(row).to_contain_text("予算要求の作業として妥当")
    expect(row.get_by_role("button")).to_have_count(0)
    assert page.evaluate("window.kinkoTestMarker") == 1
    assert page.url == url
    expect(own.get_by_role("button")).to_have_count(0)
    check_axe(page)
    screenshot(page, "reviews-confirmed")

    report = accounts.api("fl-sup").http.get("/api/v1/reviews/report").json()["items"]
    [item] = [i for i in report if i["purpose"] == theirs]
    assert (item["verdict"], item["reviewer"], item["note"]) == (
        "confirmed",
        "fl-sup",
        "予算要求の作業として妥当",
    )
    [left] = [i for i in report if i["purpose"] == mine]
    assert left["verdict"] is None


def test_auditor_filters_the_log_and_verifies_an_export(
    accounts: Accounts,
    signed_in: Callable[..., Page],
    tmp_path: Path,
    check_axe: CheckAxe,
    screenshot: Screenshot,
) -> None:
    case = _scene(accounts)
    doc = accounts.api("fl-drafter").create_document(case["id"], "schedule", "日程表", b"dates")
    purpose = _unique("日程の確認")
    accounts.api("fl-drafter").read(doc["id"], purpose)

    page = signed_in("fl-auditor")
    # An auditor is offered the audit page, and neither reviews-only nor admin areas.
    expect(_nav(page, "利用者")).to_have_count(0)
    _nav(page, "監査").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("監査")
    actions = page.locator("#events table tbody tr td:nth-child(4)")
    expect(actions.first).to_be_visible()
    assert set(actions.all_inner_texts()) - {"document.read"}, "the unfiltered log has more"
    check_axe(page)
    screenshot(page, "audit")

    page.get_by_label("操作").fill("document.read")
    page.get_by_role("button", name="検索").click()
    expect(page.locator("#events").get_by_role("row").filter(has_text=purpose)).to_have_count(1)
    shown = actions.all_inner_texts()
    assert shown
    assert set(shown) == {"document.read"}
    expect(page.locator("#events [role=status]")).to_contain_text(f"{len(shown)}件")
    check_axe(page)
    screenshot(page, "audit-filtered")

    with page.expect_download() as caught:
        page.get_by_role("button", name="エクスポート").click()
    archive = tmp_path / caught.value.suggested_filename
    assert archive.name.endswith(".tar.gz")
    caught.value.save_as(archive)
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(unpacked, filter="data")
    [bundle] = list(unpacked.iterdir())
    key = tmp_path / "verifier.key"
    answer = accounts.api("fl-auditor").http.get("/api/v1/audit/public-key")
    assert answer.status_code == 200
    key.write_text(answer.text)
    result = run_kinko("audit", "verify", str(bundle), "--key", str(key))
    assert result.returncode == 0, result.stdout + result.stderr
    # The bundle holds the read the filter found, with its purpose.
    assert purpose in (bundle / "events.jsonl").read_text(encoding="utf-8")


def test_admin_navigation_reaches_the_users_page(
    accounts: Accounts,
    signed_in: Callable[..., Page],
    check_axe: CheckAxe,
    screenshot: Screenshot,
) -> None:
    page = signed_in("admin")
    expect(_nav(page, "点検・確認")).to_have_count(0)
    _nav(page, "利用者").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("利用者")
    expect(page.get_by_role("link", name="fl-drafter", exact=True)).to_have_count(1)
    check_axe(page)
    screenshot(page, "users")


@pytest.mark.parametrize("locale", ["en-US"])
def test_case_and_document_pages_in_english(
    accounts: Accounts,
    signed_in: Callable[..., Page],
    tmp_path: Path,
    check_axe: CheckAxe,
    screenshot: Screenshot,
) -> None:
    case = _scene(accounts)
    page = signed_in("fl-drafter")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.goto(accounts.server.base_url + f"/ui/cases/{case['id']}")
    expect(page.locator("ol.timeline li.current")).to_contain_text("(in force) by fl-drafter")
    file = tmp_path / "spec.txt"
    file.write_bytes(b"Specification, draft 1\n")
    page.get_by_label("File", exact=True).set_input_files(file)
    page.get_by_label("Title", exact=True).fill("Specification (draft)")
    page.get_by_label("Class", exact=True).select_option("specification")
    check_axe(page)
    screenshot(page, "case")
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Specification (draft)")
    expect(page.get_by_role("columnheader", name="Final")).to_be_visible()
    check_axe(page)
    screenshot(page, "document")
    page.get_by_role("link", name="Download version 1").click()
    page.get_by_label("Purpose").fill("Checking the draft")
    check_axe(page)
    screenshot(page, "download")
    with page.expect_download() as caught:
        page.get_by_role("button", name="Download").click()
    assert Path(caught.value.path()).read_bytes() == file.read_bytes()
