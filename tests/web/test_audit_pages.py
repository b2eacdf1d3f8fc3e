"""The Reviews and Audit pages (issue 10) over real HTTP against a real ``kinko serve``.

Browsers are httpx clients holding a session cookie set through an invitation; what the pages
did is checked through the API (the review's state, the audit events), so a page that only
looked right would fail here.
"""

from __future__ import annotations

import re
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

import httpx
import pytest
from conftest import KinkoServer, run_kinko, serving

from clients import KinkoClient

from .conftest import Browser, browser_session

SVG = "{http://www.w3.org/2000/svg}"


@dataclass
class Scene:
    server: KinkoServer
    tmp: Path
    tag: str
    case: str
    budget: str
    drafter: KinkoClient
    sup: Browser  # supervisor of the case, signed in
    sup_api: KinkoClient  # the same person through a token
    sup_name: str
    drafter_name: str
    auditor: Browser
    auditor_api: KinkoClient
    auditor_name: str


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    tmp = tmp_path_factory.mktemp("auditpages")
    server_tmp = tmp / "server-tmp"
    server_tmp.mkdir()
    # The server's own temporary directory, so the tests can see that exports clean up.
    with serving(tmp, KINKO_CHECKPOINT_INTERVAL_SECONDS="1", TMPDIR=str(server_tmp)) as srv:
        tag = uuid.uuid4().hex[:6]
        drafter_name, sup_name, auditor_name = (f"ap-{k}-{tag}" for k in ("drf", "sup", "aud"))
        drafter = srv.user(drafter_name, ["procurement"])
        case = drafter.create_case(f"AP-{tag}", "監査画面テスト")["id"]
        sup = browser_session(srv, sup_name)
        srv.admin.set_member(case, sup_name, ["supervisor"])
        budget = drafter.create_document(case, "budget", "予算額の内訳", b"budget v1")["id"]
        auditor = browser_session(srv, auditor_name, ["auditor"])
        yield Scene(
            server=srv,
            tmp=tmp,
            tag=tag,
            case=case,
            budget=budget,
            drafter=drafter,
            sup=sup,
            sup_api=srv.user(sup_name),
            sup_name=sup_name,
            drafter_name=drafter_name,
            auditor=auditor,
            auditor_api=srv.user(auditor_name, ["auditor"]),
            auditor_name=auditor_name,
        )
        sup.close()
        auditor.close()


def read(client: KinkoClient, doc_id: str, purpose: str) -> None:
    resp = client.http.get(
        f"/api/v1/documents/{doc_id}/content", headers={"X-Access-Purpose": quote(purpose)}
    )
    assert resp.status_code == 200, resp.text


def pending_seq(scene: Scene, actor: str, purpose: str) -> int:
    """The review item of a read, as the API lists it to the supervisor (never their own)."""
    items = scene.sup_api.http.get("/api/v1/reviews").json()["items"]
    [item] = [i for i in items if i["actor"] == actor and i["purpose"] == purpose]
    return int(item["seq"])


def own_seq(scene: Scene, purpose: str) -> int:
    """The supervisor's own read, as the auditor (who may decide it) sees it."""
    items = scene.auditor_api.http.get("/api/v1/reviews").json()["items"]
    [item] = [i for i in items if i["actor"] == scene.sup_name and i["purpose"] == purpose]
    return int(item["seq"])


def events(api: KinkoClient, **filters: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = api.audit_events(limit=1000, cursor=cursor, **filters)
        out += page["events"]
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def row(html: str, seq: int) -> str:
    found = re.search(rf'<tr id="review-{seq}".*?</tr>', html, re.S)
    assert found is not None, f"no row for review item {seq}"
    return found.group(0)


# -- reviews -----------------------------------------------------------------------------------


def test_supervisor_confirms_another_members_read_with_htmx(scene: Scene) -> None:
    purpose = f"予算の確認 {scene.tag}"
    read(scene.drafter, scene.budget, purpose)
    seq = pending_seq(scene, scene.drafter_name, purpose)

    page = scene.sup.get("/ui/reviews")
    assert page.status_code == 200
    mine = row(page.text, seq)
    assert scene.drafter_name in mine
    assert purpose in mine
    assert f"AP-{scene.tag}" in mine
    assert "予算額の内訳" in mine
    assert f'hx-post="/ui/reviews/{seq}"' in mine
    assert 'hx-target="closest tr"' in mine
    assert 'value="confirmed"' in mine
    assert 'value="flagged"' in mine
    assert f'<label for="note-{seq}">メモ' in mine  # the row's own labelled note field
    assert "確認済み" in mine
    assert "要確認" in mine

    csrf = scene.sup.csrf("/ui/reviews")
    note = "目的どおりの照会を確認"
    resp = scene.sup.post(
        f"/ui/reviews/{seq}",
        data={"csrf": csrf, "verdict": "confirmed", "note": note},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 200, resp.text
    swapped = resp.text.strip()
    assert swapped.startswith(f'<tr id="review-{seq}"')
    assert swapped.endswith("</tr>")
    assert 'role="status"' in swapped
    assert note in swapped
    assert "<form" not in swapped

    report = scene.sup_api.http.get("/api/v1/reviews/report").json()["items"]
    [decided] = [i for i in report if i["seq"] == seq]
    assert (decided["status"], decided["reviewer"], decided["note"]) == (
        "confirmed",
        scene.sup_name,
        note,
    )
    # Decided, it is no longer offered.
    assert f'id="review-{seq}"' not in scene.sup.get("/ui/reviews").text


def test_plain_form_post_flags_and_redirects_back(scene: Scene) -> None:
    purpose = f"念のための照会 {scene.tag}"
    read(scene.drafter, scene.budget, purpose)
    seq = pending_seq(scene, scene.drafter_name, purpose)
    csrf = scene.sup.csrf("/ui/reviews")
    # Flagging needs a note: refused without one, and nothing is decided.
    refused = scene.sup.post(f"/ui/reviews/{seq}", data={"csrf": csrf, "verdict": "flagged"})
    assert refused.status_code == 400
    assert 'role="alert"' in refused.text
    assert pending_seq(scene, scene.drafter_name, purpose) == seq
    resp = scene.sup.post(
        f"/ui/reviews/{seq}", data={"csrf": csrf, "verdict": "flagged", "note": "目的が曖昧"}
    )
    assert resp.status_code == 303
    assert resp.headers["location"] == f"/ui/reviews?done={seq}"
    assert 'role="status"' in scene.sup.get(resp.headers["location"]).text
    flagged = scene.sup_api.http.get("/api/v1/reviews", params={"status": "flagged"}).json()
    assert [i["seq"] for i in flagged["items"] if i["seq"] == seq] == [seq]


def test_own_read_is_listed_without_buttons_and_a_forged_decision_is_refused(
    scene: Scene,
) -> None:
    purpose = f"上長自身の照会 {scene.tag}"
    read(scene.sup_api, scene.budget, purpose)
    seq = own_seq(scene, purpose)

    mine = row(scene.sup.get("/ui/reviews").text, seq)
    assert purpose in mine
    assert "<form" not in mine
    assert "<button" not in mine
    assert "別の上長" in mine  # "another supervisor or an auditor decides it"

    csrf = scene.sup.csrf("/ui/reviews")
    forged = scene.sup.post(
        f"/ui/reviews/{seq}", data={"csrf": csrf, "verdict": "confirmed", "note": "自分で確認"}
    )
    assert forged.status_code == 403
    assert 'role="alert"' in forged.text
    htmx = scene.sup.post(
        f"/ui/reviews/{seq}",
        data={"csrf": csrf, "verdict": "confirmed"},
        headers={"HX-Request": "true"},
    )
    assert htmx.status_code == 403
    assert htmx.headers["HX-Retarget"] == f"#review-msg-{seq}"
    assert 'role="alert"' in htmx.text
    refusals = events(
        scene.auditor_api, actor=scene.sup_name, action="review.submit", decision="deny"
    )
    assert [e["reason"] for e in refusals if e["reason"] == "own_read"] == ["own_read"] * 2
    # Still pending, for the auditor to decide.
    assert own_seq(scene, purpose) == seq


def test_review_post_without_csrf_is_refused_and_logged(scene: Scene) -> None:
    purpose = f"CSRFの確認 {scene.tag}"
    read(scene.drafter, scene.budget, purpose)
    seq = pending_seq(scene, scene.drafter_name, purpose)
    resp = scene.sup.post(f"/ui/reviews/{seq}", data={"verdict": "confirmed"})
    assert resp.status_code == 403
    denied = events(scene.auditor_api, actor=scene.sup_name, action="auth.csrf")
    assert [(e["decision"], e["reason"]) for e in denied][-1] == ("deny", "csrf_missing")
    assert pending_seq(scene, scene.drafter_name, purpose) == seq


def test_reviews_page_refuses_a_member_who_reviews_nothing(scene: Scene) -> None:
    outsider = browser_session(scene.server, f"ap-out-{scene.tag}")
    try:
        for path in ("/ui/reviews", "/ui/reviews/report", "/ui/reviews/report.csv"):
            resp = outsider.get(path)
            assert resp.status_code == 403, path
            assert "text/html" in resp.headers["content-type"]
    finally:
        outsider.close()


def test_daily_report_page_and_csv(scene: Scene) -> None:
    purpose = f"報告用の照会 {scene.tag}"
    read(scene.drafter, scene.budget, purpose)
    today = datetime.now(ZoneInfo("UTC")).date().isoformat()  # KINKO_TIMEZONE is UTC here

    page = scene.sup.get("/ui/reviews/report")
    assert page.status_code == 200
    assert f'value="{today}"' in page.text  # the date picker defaults to today
    assert purpose in page.text
    assert scene.drafter_name in page.text
    assert f'href="/ui/reviews/report.csv?date={today}"' in page.text

    csv = scene.sup.get("/ui/reviews/report.csv", params={"date": today})
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["content-disposition"] == f'attachment; filename="shokai-{today}.csv"'
    assert csv.content.startswith(b"\xef\xbb\xbfseq,actor,")
    assert b"\r\n" in csv.content
    assert purpose.encode() in csv.content
    api = scene.sup_api.http.get("/api/v1/reviews/report", params={"date": today, "format": "csv"})
    assert csv.content == api.content

    assert scene.sup.get("/ui/reviews/report", params={"date": "2026-13-40"}).status_code == 400


# -- audit -------------------------------------------------------------------------------------


def _seqs_and_actions(html: str) -> list[tuple[int, str]]:
    rows = re.findall(r"<tr>\s*<td>(\d+)</td>.*?<td><code>([^<]+)</code></td>", html, re.S)
    return [(int(s), a) for s, a in rows]


def test_auditor_filters_events_by_action_and_pages_with_the_cursor(scene: Scene) -> None:
    for i in range(3):
        read(scene.drafter, scene.budget, f"ページ送り {i} {scene.tag}")
    page = scene.auditor.get("/ui/audit", params={"action": "document.read", "limit": "2"})
    assert page.status_code == 200
    first = _seqs_and_actions(page.text)
    assert len(first) == 2
    assert {a for _s, a in first} == {"document.read"}
    found = re.search(r'<a class="button" rel="next" href="([^"]+)"', page.text)
    assert found is not None
    next_url = unescape(found.group(1))
    assert "cursor=" in next_url
    assert "action=document.read" in next_url

    second_page = scene.auditor.get(next_url)
    second = _seqs_and_actions(second_page.text)
    assert second
    assert {a for _s, a in second} == {"document.read"}
    assert min(s for s, _a in second) > max(s for s, _a in first)

    # The same search as htmx asks for it: the results part alone, and the page's address.
    part = scene.auditor.get(
        next_url.replace("/ui/audit?", "/ui/audit/events?"), headers={"HX-Request": "true"}
    )
    assert part.status_code == 200
    assert "<html" not in part.text
    assert _seqs_and_actions(part.text) == second
    assert part.headers["HX-Push-Url"].startswith("/ui/audit?")

    # What the page showed is what the API answers for the same filters.
    api = scene.auditor_api.audit_events(action="document.read", limit=2)
    assert [e["seq"] for e in api["events"]] == [s for s, _a in first]
    queries = events(scene.auditor_api, actor=scene.auditor_name, action="audit.query")
    assert len(queries) >= 3
    assert all(q["decision"] == "allow" for q in queries)

    bad = scene.auditor.get("/ui/audit", params={"since": "not a time"})
    assert bad.status_code == 400
    assert 'role="alert"' in bad.text


def test_audit_page_shows_checkpoint_and_verifier_key(scene: Scene) -> None:
    key = scene.auditor_api.http.get("/api/v1/audit/public-key")
    assert key.status_code == 200
    deadline = time.monotonic() + 10
    while True:
        checkpoint = scene.auditor_api.http.get("/api/v1/audit/checkpoint")
        if checkpoint.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert checkpoint.status_code == 200
    page = scene.auditor.get("/ui/audit")
    assert page.status_code == 200
    pres = [unescape(p) for p in re.findall(r"<pre[^>]*>(.*?)</pre>", page.text, re.S)]
    assert key.text in pres
    # The page's checkpoint is the latest, at least as new as the one fetched before it.
    origin = checkpoint.text.splitlines()[0]
    assert any(p.startswith(origin + "\n") for p in pres)


def test_non_auditor_gets_403_on_the_audit_pages(scene: Scene) -> None:
    for path in ("/ui/audit", "/ui/audit/events", "/ui/audit/coverage.svg"):
        resp = scene.sup.get(path)
        assert resp.status_code == 403, path
    csrf = scene.sup.csrf("/ui/reviews")
    assert scene.sup.post("/ui/audit/export", data={"csrf": csrf}).status_code == 403
    denied = events(scene.auditor_api, actor=scene.sup_name, action="audit.export")
    assert [e["reason"] for e in denied] == ["auditor_required"]


def test_coverage_svg_is_valid_xml_with_the_figures(scene: Scene) -> None:
    resp = scene.auditor.get("/ui/audit/coverage.svg", params={"older_than_days": "0"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("image/svg+xml")
    assert "style=" not in resp.text  # the CSP forbids inline style
    # Our own server's answer, parsed to prove it is well-formed XML.
    root = ET.fromstring(resp.content)  # noqa: S314
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-label")
    title = root.find(f"{SVG}title")
    assert title is not None
    assert title.text
    figures = {
        r.get("data-figure"): int(r.get("data-value", "-1"))
        for r in root.iter(f"{SVG}rect")
        if r.get("data-figure")
    }
    api = scene.auditor_api.http.get(
        "/api/v1/reviews/coverage", params={"older_than_days": "0"}
    ).json()
    assert figures == {k: api[k] for k in ("reads", "reviewed", "flagged", "unreviewed_older")}
    assert api["reads"] >= 5
    assert api["reviewed"] >= 2
    assert api["flagged"] >= 1
    assert str(api["reads"]) in title.text
    page = scene.auditor.get("/ui/audit", params={"older_than_days": "0"})
    img = r'<img class="chart" src="/ui/audit/coverage.svg\?older_than_days=0" alt="[^"]+"'
    assert re.search(img, page.text)


def test_bundle_export_downloads_a_bundle_that_verifies(scene: Scene) -> None:
    page = scene.auditor.get("/ui/audit")
    assert 'action="/ui/audit/export"' in page.text
    assert "エクスポート" in page.text
    csrf = scene.auditor.csrf("/ui/audit")
    out = scene.tmp / "download.tar.gz"
    with scene.auditor.stream("POST", "/ui/audit/export", data={"csrf": csrf}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/gzip"
        assert re.fullmatch(
            r'attachment; filename="kinko-audit-\d{8}T\d{6}Z\.tar\.gz"',
            resp.headers["content-disposition"],
        )
        with out.open("wb") as f:
            for chunk in resp.iter_bytes():
                f.write(chunk)
    unpacked = scene.tmp / "unpacked"
    with tarfile.open(out, "r:gz") as tar:
        tar.extractall(unpacked, filter="data")
    [bundle] = list(unpacked.iterdir())
    key = scene.tmp / "verifier.key"
    key.write_text(scene.auditor_api.http.get("/api/v1/audit/public-key").text)
    result = run_kinko("audit", "verify", str(bundle), "--key", str(key))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    # The export is an audit event of its own, and the bundle holds it.
    [exported] = list(events(scene.auditor_api, actor=scene.auditor_name, action="audit.export"))
    assert exported["decision"] == "allow"
    assert f'"request_id":"{exported["request_id"]}"' in (bundle / "events.jsonl").read_text()
    # Nothing of the export is left behind: not in the data directory, where it is written
    # (not /tmp, often memory), nor in the server's temporary directory.
    deadline = time.monotonic() + 5
    exports = scene.server.data_dir / "exports"
    assert exports.is_dir()
    while list(exports.glob("web-export-*")) or list((scene.tmp / "server-tmp").iterdir()):
        assert time.monotonic() < deadline, "the export's temporary directory was left behind"
        time.sleep(0.1)


def test_export_without_csrf_is_refused_with_an_audit_deny_event(scene: Scene) -> None:
    resp = scene.auditor.post("/ui/audit/export", data={})
    assert resp.status_code == 403
    assert "application/gzip" not in resp.headers["content-type"]
    denied = events(scene.auditor_api, actor=scene.auditor_name, action="auth.csrf")
    assert [(e["decision"], e["reason"]) for e in denied] == [("deny", "csrf_missing")]


def test_signed_out_visitor_is_sent_to_sign_in(scene: Scene) -> None:
    with httpx.Client(base_url=scene.server.base_url) as anon:
        for path in ("/ui/reviews", "/ui/audit", "/ui/audit/coverage.svg"):
            resp = anon.get(path)
            assert resp.status_code == 303
            assert resp.headers["location"].startswith("/ui/sign-in?next=")
