"""The case page and the document page (issue 10), through a real server and signed-in browsers:
uploads through the streaming multipart form, versions, final, confidentiality badges in both
languages, scheduled stage changes, what an evaluator sees, downloads with a purpose and the
audit events they leave."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from conftest import serving

from clients import KinkoClient

from .conftest import Browser, browser_session, csrf_of

TZ = "Asia/Tokyo"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # The office's time zone is not UTC, so the pages' conversion of local times is tested.
    with serving(tmp_path_factory.mktemp("kinko-web"), KINKO_TIMEZONE=TZ) as srv:
        yield srv


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def token_client(server: Any, name: str) -> KinkoClient:
    """An API client of an existing user (created by ``browser_session``)."""
    return server.client(server.admin.create_token(name)["token"])


def new_case(browser: Browser, title: str = "庁舎清掃業務委託") -> str:
    number = _unique("R8")
    resp = browser.post(
        "/ui/cases", data={"csrf": browser.csrf("/ui/"), "number": number, "title": title}
    )
    assert resp.status_code == 303, resp.text[:500]
    match = re.fullmatch(r"/ui/cases/([0-9a-f]+)", resp.headers["location"])
    assert match is not None, resp.headers["location"]
    return match.group(1)


def upload(
    browser: Browser,
    case_id: str,
    title: str,
    cls: str,
    content: bytes,
    content_type: str = "text/plain; charset=utf-8",
) -> httpx.Response:
    csrf = browser.csrf(f"/ui/cases/{case_id}")
    # httpx sends the data fields before the file, as the page's form does.
    return browser.post(
        f"/ui/cases/{case_id}/documents",
        data={"csrf": csrf, "title": title, "class": cls},
        files={"file": ("upload.txt", content, content_type)},
    )


def uploaded_id(resp: httpx.Response) -> str:
    assert resp.status_code == 303, resp.text[:800]
    match = re.fullmatch(r"/ui/documents/([0-9a-f]+)", resp.headers["location"])
    assert match is not None, resp.headers["location"]
    return match.group(1)


def events(auditor: KinkoClient, **filters: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = auditor.audit_events(limit=1000, cursor=cursor, **filters)
        out.extend(page["events"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out


@pytest.fixture(scope="module")
def people(server: Any) -> dict[str, Any]:
    return {
        "drafter": browser_session(server, "cp-drafter", ["procurement"]),
        "sup": browser_session(server, "cp-sup"),
        "evaluator": browser_session(server, "cp-eval"),
        "auditor": server.user("cp-auditor", ["auditor"]),
    }


def test_upload_new_version_final_and_the_content_round_trips(
    server: Any, people: dict[str, Any]
) -> None:
    drafter: Browser = people["drafter"]
    case_id = new_case(drafter)
    page = drafter.get(f"/ui/cases/{case_id}")
    assert page.status_code == 200
    # The case list shows the caller's own roles; the upload form offers the writable classes.
    assert "調達担当" in drafter.get("/ui/").text
    for label in ("ファイル", "件名", "区分", "アップロード"):
        assert label in page.text
    assert '<option value="specification"' in page.text
    assert '<option value="technical_scores"' not in page.text  # drafters never write these
    assert 'enctype="multipart/form-data"' in page.text

    first = "仕様書（案）第1版\n".encode() + os.urandom(200_000)
    doc_id = uploaded_id(upload(drafter, case_id, "仕様書（案）", "specification", first))
    api = token_client(server, "cp-drafter")
    assert api.read(doc_id, "内容の確認") == first
    meta = api.document(doc_id)
    assert meta["title"] == "仕様書（案）"
    assert meta["class"] == "specification"
    head = api.http.get(f"/api/v1/documents/{doc_id}/content", headers={"X-Access-Purpose": "type"})
    assert head.headers["content-type"] == "text/plain; charset=utf-8"

    doc_page = drafter.get(f"/ui/documents/{doc_id}")
    assert doc_page.status_code == 200
    assert hashlib.sha256(first).hexdigest()[:12] in doc_page.text
    assert hashlib.sha256(first).hexdigest()[:13] not in doc_page.text

    second = b"second version " * 1000
    resp = drafter.post(
        f"/ui/documents/{doc_id}/versions",
        data={"csrf": csrf_of(doc_page.text), "if_match": "1"},
        files={"file": ("v2.bin", second, "application/octet-stream")},
    )
    assert resp.status_code == 303, resp.text[:500]
    assert resp.headers["location"] == f"/ui/documents/{doc_id}"
    assert api.read(doc_id, "第2版の確認", version=2) == second
    # A stale form (it still shows version 1 as the latest) does not overwrite unseen.
    stale = drafter.post(
        f"/ui/documents/{doc_id}/versions",
        data={"csrf": csrf_of(doc_page.text), "if_match": "1"},
        files={"file": ("v3.bin", b"late", "application/octet-stream")},
    )
    assert stale.status_code == 412
    assert api.document(doc_id)["latest_version"] == 2

    resp = drafter.post(
        f"/ui/documents/{doc_id}/final",
        data={"csrf": drafter.csrf(f"/ui/documents/{doc_id}"), "version": "2"},
    )
    assert resp.status_code == 303
    assert api.document(doc_id)["final_version"] == 2
    shown = drafter.get(f"/ui/documents/{doc_id}").text
    assert "確定版" in shown or "最終版" in shown
    assert drafter.get(f"/ui/cases/{case_id}").text.count(f"/ui/documents/{doc_id}") == 1


def test_upload_refusals_are_shown_on_the_case_page(server: Any, people: dict[str, Any]) -> None:
    drafter: Browser = people["drafter"]
    case_id = new_case(drafter)
    api = token_client(server, "cp-drafter")
    # Drafters never write technical scores: the form is re-shown with the refusal.
    refused = upload(drafter, case_id, "技術点", "technical_scores", b"x")
    assert refused.status_code == 403
    assert 'role="alert"' in refused.text
    no_title = upload(drafter, case_id, "   ", "budget", b"x")
    assert no_title.status_code == 303  # the file's name stands in for a missing title
    assert [d["title"] for d in api.documents(case_id)] == ["upload.txt"]


def test_confidentiality_badges_in_japanese_and_english(
    server: Any, people: dict[str, Any]
) -> None:
    drafter: Browser = people["drafter"]
    case_id = new_case(drafter)
    spec = uploaded_id(upload(drafter, case_id, "仕様書", "specification", b"spec"))
    uploaded_id(upload(drafter, case_id, "提案書A", "proposal", b"proposal"))
    ja = drafter.get(f"/ui/cases/{case_id}", headers={"Accept-Language": "ja"}).text
    en = drafter.get(f"/ui/cases/{case_id}", headers={"Accept-Language": "en"}).text
    assert "秘: 入札公告まで" in ja
    assert "永久秘" in ja
    assert "Confidential until: Tender announced" in en
    assert "Confidential forever" in en
    assert "公開済" not in ja

    drafter.post(
        f"/ui/documents/{spec}/final",
        data={"csrf": drafter.csrf(f"/ui/documents/{spec}"), "version": "1"},
    )
    server.admin.set_member(case_id, "cp-sup", ["supervisor"])
    token_client(server, "cp-sup").transition(case_id, "announced")
    ja = drafter.get(f"/ui/cases/{case_id}", headers={"Accept-Language": "ja"}).text
    en = drafter.get(f"/ui/cases/{case_id}", headers={"Accept-Language": "en-US,en;q=0.9"}).text
    assert "公開済" in ja
    assert "永久秘" in ja
    assert "秘: 入札公告まで" not in ja
    assert "Disclosed" in en
    assert "Confidential forever" in en
    # The disclosed final version downloads without a purpose, straight from the public route.
    doc_page = drafter.get(f"/ui/documents/{spec}").text
    assert f"/api/v1/public/documents/{spec}/content" in doc_page


def test_supervisor_schedules_and_cancels_a_stage_change(
    server: Any, people: dict[str, Any]
) -> None:
    drafter: Browser = people["drafter"]
    sup: Browser = people["sup"]
    case_id = new_case(drafter)
    server.admin.set_member(case_id, "cp-sup", ["supervisor"])
    # The drafter is offered no stage form at all.
    assert f"/ui/cases/{case_id}/transition" not in drafter.get(f"/ui/cases/{case_id}").text

    local = (datetime.now(ZoneInfo(TZ)) + timedelta(days=3)).replace(second=0, microsecond=0)
    resp = sup.post(
        f"/ui/cases/{case_id}/transition",
        data={
            "csrf": sup.csrf(f"/ui/cases/{case_id}"),
            "stage": "announced",
            "at": local.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert resp.status_code == 303, resp.text[:500]
    detail = token_client(server, "cp-sup").case(case_id)
    scheduled = detail["transitions"][-1]
    assert scheduled["stage"] == "announced"
    # The local time was taken in KINKO_TIMEZONE and stored as the same instant in UTC.
    assert datetime.fromisoformat(scheduled["at"].replace("Z", "+00:00")) == local
    assert scheduled["at"].endswith("Z")
    assert detail["stage"] == "drafting"

    cancel = f"/ui/cases/{case_id}/transitions/{scheduled['id']}/cancel"
    sup_page = sup.get(f"/ui/cases/{case_id}").text
    assert cancel in sup_page
    assert local.strftime("%Y-%m-%d %H:%M") in sup_page  # shown in local time
    assert cancel not in drafter.get(f"/ui/cases/{case_id}").text
    # A drafter posting the cancel anyway is refused by the service.
    refused = drafter.post(cancel, data={"csrf": drafter.csrf(f"/ui/cases/{case_id}")})
    assert refused.status_code == 403

    resp = sup.post(cancel, data={"csrf": sup.csrf(f"/ui/cases/{case_id}")})
    assert resp.status_code == 303
    after = token_client(server, "cp-sup").case(case_id)
    assert [t["stage"] for t in after["transitions"]] == ["drafting"]
    # A backwards step is refused and explained on the page.
    back = sup.post(
        f"/ui/cases/{case_id}/transition",
        data={"csrf": sup.csrf(f"/ui/cases/{case_id}"), "stage": "drafting", "at": ""},
    )
    assert back.status_code == 409
    assert 'role="alert"' in back.text


def test_members_are_managed_by_supervisors(server: Any, people: dict[str, Any]) -> None:
    drafter: Browser = people["drafter"]
    sup: Browser = people["sup"]
    case_id = new_case(drafter)
    server.admin.set_member(case_id, "cp-sup", ["supervisor"])
    assert f"/ui/cases/{case_id}/members" not in drafter.get(f"/ui/cases/{case_id}").text
    local = (datetime.now(ZoneInfo(TZ)) + timedelta(days=30)).replace(second=0, microsecond=0)
    resp = sup.post(
        f"/ui/cases/{case_id}/members",
        data={
            "csrf": sup.csrf(f"/ui/cases/{case_id}"),
            "name": "cp-eval",
            "role_evaluator": "1",
            "expires_at": local.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert resp.status_code == 303, resp.text[:500]
    members = {m["name"]: m for m in token_client(server, "cp-sup").case(case_id)["members"]}
    assert members["cp-eval"]["roles"] == ["evaluator"]
    expiry = datetime.fromisoformat(members["cp-eval"]["expires_at"].replace("Z", "+00:00"))
    assert expiry == local
    # A reviewer may not read evaluator names, so the service leaves the evaluator out of
    # the reviewer's member list; the drafter and the supervisor may, and see them.
    reviewer = browser_session(server, "cp-rev")
    server.admin.set_member(case_id, "cp-rev", ["reviewer"])
    seen_by_reviewer = reviewer.get(f"/ui/cases/{case_id}")
    assert seen_by_reviewer.status_code == 200
    assert "cp-rev" in seen_by_reviewer.text
    assert "cp-eval" not in seen_by_reviewer.text
    assert "cp-eval" in sup.get(f"/ui/cases/{case_id}").text
    assert "cp-eval" in drafter.get(f"/ui/cases/{case_id}").text

    resp = sup.post(
        f"/ui/cases/{case_id}/members/remove",
        data={"csrf": sup.csrf(f"/ui/cases/{case_id}"), "name": "cp-eval"},
    )
    assert resp.status_code == 303
    names = [m["name"] for m in token_client(server, "cp-sup").case(case_id)["members"]]
    assert "cp-eval" not in names


def test_evaluator_sees_evaluation_documents_only_in_evaluation(
    server: Any, people: dict[str, Any]
) -> None:
    drafter: Browser = people["drafter"]
    evaluator: Browser = people["evaluator"]
    case_id = new_case(drafter)
    uploaded_id(upload(drafter, case_id, "評価基準書", "evaluation_criteria", b"criteria"))
    uploaded_id(upload(drafter, case_id, "予算見積", "budget", b"budget"))
    server.admin.set_member(case_id, "cp-sup", ["supervisor"])
    server.admin.set_member(case_id, "cp-eval", ["evaluator"])
    page = evaluator.get(f"/ui/cases/{case_id}")
    assert page.status_code == 200
    assert "評価基準書" not in page.text
    assert "予算見積" not in page.text
    assert 'enctype="multipart/form-data"' not in page.text  # nothing to write in drafting

    token_client(server, "cp-sup").transition(case_id, "evaluation")
    page = evaluator.get(f"/ui/cases/{case_id}")
    assert "評価基準書" in page.text
    assert "予算見積" not in page.text
    # Now the evaluator may write technical scores, and only those.
    assert '<option value="technical_scores"' in page.text
    assert '<option value="budget"' not in page.text


def test_download_with_a_purpose_is_audited_with_it(server: Any, people: dict[str, Any]) -> None:
    drafter: Browser = people["drafter"]
    auditor: KinkoClient = people["auditor"]
    case_id = new_case(drafter)
    content = "予定価格調書\n".encode() * 500
    doc_id = uploaded_id(upload(drafter, case_id, "予定価格調書.txt", "estimated_price", content))

    form = drafter.get(f"/ui/documents/{doc_id}/download?version=1")
    assert form.status_code == 200
    assert "利用目的" in form.text
    assert "ダウンロード" in form.text
    purpose = "入札書比較価格の確認（第3回）"
    resp = drafter.post(
        f"/ui/documents/{doc_id}/download",
        data={"csrf": csrf_of(form.text), "version": "1", "purpose": purpose},
    )
    assert resp.status_code == 200, resp.text[:500]
    assert resp.content == content
    assert resp.headers["content-disposition"].startswith("attachment;")
    assert resp.headers["x-kinko-version"] == "1"
    reads = events(auditor, document_id=doc_id, action="document.read")
    assert reads[-1]["purpose"] == purpose
    assert reads[-1]["decision"] == "allow"
    assert reads[-1]["actor"] == "cp-drafter"

    # No purpose: the form again, with the reason, and the refusal on the record.
    missing = drafter.post(
        f"/ui/documents/{doc_id}/download",
        data={"csrf": csrf_of(form.text), "version": "1", "purpose": "  "},
    )
    assert missing.status_code == 400
    assert 'name="purpose"' in missing.text
    assert 'role="alert"' in missing.text
    denied = events(auditor, document_id=doc_id, action="document.read", decision="deny")
    assert denied
    assert denied[-1]["reason"]

    # An auditor's session never gets content, whatever the form says.
    aud = browser_session(server, "cp-aud-web", ["auditor"])
    refused = aud.post(
        f"/ui/documents/{doc_id}/download",
        data={"csrf": aud.csrf(f"/ui/documents/{doc_id}/download?version=1"), "purpose": "x"},
    )
    assert refused.status_code == 403
    assert content not in refused.content
    assert 'name="purpose"' in refused.text


def test_posts_without_csrf_are_refused_and_logged(server: Any, people: dict[str, Any]) -> None:
    drafter: Browser = people["drafter"]
    auditor: KinkoClient = people["auditor"]
    case_id = new_case(drafter)
    before = len(events(auditor, actor="cp-drafter", decision="deny"))
    resp = drafter.post(
        f"/ui/cases/{case_id}/documents",
        data={"title": "偽の書類", "class": "specification"},
        files={"file": ("x.txt", b"should never be stored", "text/plain")},
    )
    assert resp.status_code == 403
    wrong = drafter.post(f"/ui/cases/{case_id}/transition", data={"csrf": "forged", "stage": "rfi"})
    assert wrong.status_code == 403
    denied = events(auditor, actor="cp-drafter", decision="deny")[before:]
    assert [e["action"] for e in denied] == ["auth.csrf", "auth.csrf"]
    assert token_client(server, "cp-drafter").documents(case_id) == []
    # A file sent before the token counts as a post without one: nothing of it is used.
    csrf = drafter.csrf(f"/ui/cases/{case_id}")
    boundary = "kinko-test-boundary"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
        "early file\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="csrf"\r\n\r\n'
        f"{csrf}\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    early = drafter.post(
        f"/ui/cases/{case_id}/documents",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert early.status_code == 403
    assert token_client(server, "cp-drafter").documents(case_id) == []


def test_truncated_multipart_upload_stores_nothing(server: Any, people: dict[str, Any]) -> None:
    drafter: Browser = people["drafter"]
    case_id = new_case(drafter)
    csrf = drafter.csrf(f"/ui/cases/{case_id}")
    boundary = "kinko-cut"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="csrf"\r\n\r\n'
        f"{csrf}\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="title"\r\n\r\n'
        "途中で切れた\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="class"\r\n\r\n'
        "specification\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n'
        "no closing boundary"
    ).encode()
    resp = drafter.post(
        f"/ui/cases/{case_id}/documents",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert resp.status_code == 400
    assert token_client(server, "cp-drafter").documents(case_id) == []


def test_outsiders_get_404(server: Any, people: dict[str, Any]) -> None:
    drafter: Browser = people["drafter"]
    case_id = new_case(drafter)
    doc_id = uploaded_id(upload(drafter, case_id, "仕様書", "specification", b"s"))
    outsider = browser_session(server, "cp-outsider")
    assert outsider.get(f"/ui/cases/{case_id}").status_code == 404
    assert outsider.get(f"/ui/documents/{doc_id}").status_code == 404
    assert outsider.get(f"/ui/documents/{doc_id}/download?version=1").status_code == 404
    # Signed out: sent to sign in.
    with httpx.Client(base_url=server.base_url) as anon:
        assert anon.get(f"/ui/cases/{case_id}").status_code == 303


def test_large_upload_does_not_grow_server_memory(server: Any, people: dict[str, Any]) -> None:
    psutil = pytest.importorskip("psutil")
    drafter: Browser = people["drafter"]
    case_id = new_case(drafter)
    proc = psutil.Process(server.proc.pid)
    # A first upload warms up the allocator and the code paths.
    uploaded_id(upload(drafter, case_id, "warm-up", "proposal", os.urandom(2 << 20)))
    before = proc.memory_info().rss
    size = 48 << 20
    blob = os.urandom(1 << 20) * 48
    doc_id = uploaded_id(upload(drafter, case_id, "大きな提案書", "proposal", blob))
    grown = proc.memory_info().rss - before
    assert grown < size // 3, f"RSS grew by {grown} bytes for a {size}-byte upload"
    meta = token_client(server, "cp-drafter").document(doc_id)
    assert meta["versions"][0]["size"] == size
    assert meta["versions"][0]["sha256"] == hashlib.sha256(blob).hexdigest()


def test_case_list_summary_carries_own_roles(server: Any, people: dict[str, Any]) -> None:
    drafter: Browser = people["drafter"]
    case_id = new_case(drafter)
    listed = {
        c["id"]: c
        for c in token_client(server, "cp-drafter").http.get("/api/v1/cases").json()["cases"]
    }
    assert listed[case_id]["roles"] == ["drafter"]
    everyone = {c["id"]: c for c in people["auditor"].http.get("/api/v1/cases").json()["cases"]}
    assert everyone[case_id]["roles"] == []
