"""Downloads (issue 9): the uploaded media type is kept sealed and sent back, every content
response is an attachment with a safe filename and ``nosniff``, and ``HEAD`` answers what
``GET`` would, through the same decision, without a byte of content."""

from __future__ import annotations

import os
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from clients import KinkoClient
from tests.conftest import KinkoServer, catalog_sql

PURPOSE = {"X-Access-Purpose": quote("ダウンロードの確認", safe="")}
SAFE_FALLBACK = re.compile(r"[A-Za-z0-9 ._()+-]+")
# Headers GET and HEAD must agree on (Date and X-Request-Id differ by nature).
COMPARED = (
    "content-type",
    "content-length",
    "content-disposition",
    "x-content-type-options",
    "content-security-policy",
    "etag",
    "x-kinko-version",
    "x-kinko-sha256",
    "cache-control",
)


@dataclass
class Scene:
    srv: KinkoServer
    drafter: KinkoClient
    sup: KinkoClient
    sup_name: str
    outsider: KinkoClient
    auditor: KinkoClient
    admin: KinkoClient
    anon: KinkoClient
    case: str


@pytest.fixture(scope="module")
def scene(server: KinkoServer) -> Scene:
    tag = uuid.uuid4().hex[:6]
    drafter = server.user(f"dl-drafter-{tag}", ["procurement"])
    case = drafter.create_case(f"DL-{tag}", "ダウンロード")["id"]
    return Scene(
        srv=server,
        drafter=drafter,
        sup=server.user(f"dl-sup-{tag}"),
        sup_name=f"dl-sup-{tag}",
        outsider=server.user(f"dl-outsider-{tag}"),
        auditor=server.user(f"dl-auditor-{tag}", ["auditor"]),
        admin=server.admin,
        anon=server.client(None),
        case=case,
    )


def new_case(scene: Scene, title: str) -> str:
    case = str(scene.drafter.create_case(f"DL-{uuid.uuid4().hex[:8]}", title)["id"])
    scene.admin.set_member(case, scene.sup_name, ["supervisor"])
    return case


def upload(
    client: KinkoClient,
    case: str,
    title: str,
    body: bytes,
    content_type: str | None,
    cls: str = "specification",
) -> httpx.Response:
    headers = {"X-Kinko-Title": quote(title, safe="")}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.http.post(
        f"/api/v1/cases/{case}/documents", params={"class": cls}, content=body, headers=headers
    )


def put(client: KinkoClient, doc: str, body: bytes, content_type: str | None) -> httpx.Response:
    headers = {} if content_type is None else {"Content-Type": content_type}
    return client.http.put(f"/api/v1/documents/{doc}/content", content=body, headers=headers)


def content(client: KinkoClient, doc: str, method: str = "GET", **kw: Any) -> httpx.Response:
    return client.http.request(method, f"/api/v1/documents/{doc}/content", **kw)


def filenames(disposition: str) -> tuple[str, str]:
    """(ASCII fallback, decoded filename*) of an RFC 6266 attachment header."""
    m = re.fullmatch(r"attachment; filename=\"([^\"]*)\"; filename\*=UTF-8''([^\s;]+)", disposition)
    assert m is not None, disposition
    assert re.fullmatch(r"[A-Za-z0-9%._~-]+", m[2]), "filename* must be percent-encoded"
    return m[1], unquote(m[2], errors="strict")


def test_media_type_title_and_safety_headers_on_every_content_response(scene: Scene) -> None:
    title = "見積書 <b>最終</b>.html"
    html = b"<html><script>alert(document.cookie)</script></html>"
    resp = upload(scene.drafter, scene.case, title, html, "Text/HTML; charset=Shift_JIS")
    assert resp.status_code == 201, resp.text
    doc = resp.json()["id"]

    got = content(scene.drafter, doc, headers=PURPOSE)
    assert got.status_code == 200
    assert got.content == html
    # Kept as sent (type and subtype lower-cased); no charset added or changed.
    assert got.headers["content-type"] == "text/html; charset=Shift_JIS"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in got.headers["content-security-policy"]
    fallback, full = filenames(got.headers["content-disposition"])
    assert full == title
    assert SAFE_FALLBACK.fullmatch(fallback), fallback
    assert fallback.endswith(".html")

    # The public route says the same once the document is disclosed.
    scene.drafter.finalize(doc, 1)
    case = new_case(scene, "公告")
    pub = upload(scene.drafter, case, title, html, "text/html").json()["id"]
    scene.drafter.finalize(pub, 1)
    scene.sup.transition(case, "announced")
    got = scene.anon.http.get(f"/api/v1/public/documents/{pub}/content")
    assert got.status_code == 200
    assert got.headers["content-type"] == "text/html"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert filenames(got.headers["content-disposition"])[1] == title


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("仕様書（案）.docx", "document.docx"),
        ('a"b\\c/d;e.txt', "a_b_c_d_e.txt"),
        ("../../etc/passwd", "etc_passwd"),
        ("Café 予算 2027.xlsx", "Cafe 2027.xlsx"),
        ("評価基準", "document"),
    ],
)
def test_ascii_fallback_filename_is_safe(scene: Scene, title: str, expected: str) -> None:
    doc = upload(scene.drafter, scene.case, title, b"x", None).json()["id"]
    got = content(scene.drafter, doc, headers=PURPOSE)
    fallback, full = filenames(got.headers["content-disposition"])
    assert (fallback, full) == (expected, title)


def test_each_version_keeps_its_own_type_and_absent_means_octet_stream(scene: Scene) -> None:
    doc = upload(scene.drafter, scene.case, "版ごと", b"v1", None).json()["id"]
    assert put(scene.drafter, doc, b"%PDF-1.7", "application/pdf").status_code == 201
    assert put(scene.drafter, doc, b"a,b", "text/csv;charset=utf-8").status_code == 201
    types = [
        content(scene.drafter, doc, headers=PURPOSE, params={"version": v}).headers["content-type"]
        for v in (1, 2, 3)
    ]
    assert types == ["application/octet-stream", "application/pdf", "text/csv; charset=utf-8"]


@pytest.mark.parametrize(
    "bad",
    ["html", "text/html, text/plain", "*/*", "text/*", "text/plain; charset", "a/" + "b" * 300],
)
def test_an_invalid_content_type_is_refused_before_anything_is_stored(
    scene: Scene, bad: str
) -> None:
    resp = upload(scene.drafter, scene.case, "不正な型", b"body", bad)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_content_type"
    doc = upload(scene.drafter, scene.case, "既存", b"v1", "text/plain").json()["id"]
    resp = put(scene.drafter, doc, b"v2", bad)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_content_type"
    assert scene.drafter.document(doc)["latest_version"] == 1
    events = scene.auditor.audit_events(document_id=doc, action="document.write")["events"]
    assert [(e["decision"], e["reason"]) for e in events][-1] == ("deny", "invalid_content_type")


def test_a_version_stored_before_types_were_kept_is_octet_stream(scene: Scene) -> None:
    doc = upload(scene.drafter, scene.case, "古い版", b"old", "text/plain").json()["id"]
    catalog_sql(
        scene.srv, "UPDATE versions SET content_type_sealed = NULL WHERE document_id = :d", d=doc
    )
    got = content(scene.drafter, doc, headers=PURPOSE)
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/octet-stream"


def test_the_media_type_is_sealed_on_disk(scene: Scene) -> None:
    marker = f"application/vnd.kinko-secret-{secrets.token_hex(6)}+xml"
    assert upload(scene.drafter, scene.case, "型の秘匿", b"x", marker).status_code == 201
    assert content(scene.drafter, _latest(scene), headers=PURPOSE).headers["content-type"] == (
        marker
    )
    needle = marker.split("/")[1].encode()
    for root, _dirs, files in os.walk(scene.srv.data_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                assert needle not in fh.read(), f"media type in clear in {name}"


def _latest(scene: Scene) -> str:
    return str(scene.drafter.documents(scene.case)[-1]["id"])


# -- HEAD -----------------------------------------------------------------------------------


def test_head_answers_what_get_would_without_the_body(scene: Scene) -> None:
    # Larger than one read chunk, so GET streams and HEAD must still name the full length.
    body = os.urandom((1 << 20) + 12345)
    doc = upload(scene.drafter, scene.case, "大きな資料.bin", body, "application/zip").json()["id"]
    get = content(scene.drafter, doc, headers=PURPOSE)
    head = content(scene.drafter, doc, "HEAD", headers=PURPOSE)
    assert get.status_code == head.status_code == 200
    assert get.content == body
    assert head.content == b""
    assert head.headers["content-length"] == str(len(body))
    for name in COMPARED:
        assert head.headers.get(name) == get.headers.get(name), name


def test_head_goes_through_the_same_decision_and_is_audited_as_its_own_action(
    scene: Scene,
) -> None:
    doc = upload(scene.drafter, scene.case, "見出しだけ", b"secret", "text/plain").json()["id"]
    pending_before = _pending_reads(scene, doc)
    cases = [
        (scene.drafter, {}, 400),  # a purpose is needed, exactly as for GET
        (scene.outsider, PURPOSE, 404),  # not a member: as if it did not exist
        (scene.auditor, PURPOSE, 403),  # auditors never read non-disclosed content
        (scene.admin, PURPOSE, 403),
        (scene.anon, PURPOSE, 404),
        (scene.drafter, PURPOSE, 200),
    ]
    for client, headers, status in cases:
        get = content(client, doc, headers=headers)
        head = content(client, doc, "HEAD", headers=headers)
        assert (get.status_code, head.status_code) == (status, status)
        assert head.content == b""
    heads = scene.auditor.audit_events(document_id=doc, action="document.head")["events"]
    assert [(e["decision"], e["reason"]) for e in heads] == [
        ("deny", "purpose_required"),
        ("deny", "document_not_found"),
        ("deny", "content_not_permitted"),
        ("deny", "content_not_permitted"),
        ("deny", "document_not_found"),
        ("allow", "ok"),
    ]
    assert heads[-1]["purpose"] == "ダウンロードの確認"
    assert heads[-1]["version"] == 1
    # The one allowed GET opened a review item; the allowed HEAD read no content and did not.
    assert _pending_reads(scene, doc) == pending_before + 1


def test_head_on_the_public_route(scene: Scene) -> None:
    case = new_case(scene, "公開前")
    doc = upload(scene.drafter, case, "公告.pdf", b"%PDF", "application/pdf").json()["id"]
    scene.drafter.finalize(doc, 1)
    path = f"/api/v1/public/documents/{doc}/content"
    assert scene.anon.http.head(path).status_code == 404  # not disclosed yet
    scene.sup.transition(case, "announced")
    get, head = scene.anon.http.get(path), scene.anon.http.head(path)
    assert get.status_code == head.status_code == 200
    assert head.content == b""
    for name in COMPARED:
        assert head.headers.get(name) == get.headers.get(name), name
    events = scene.auditor.audit_events(document_id=doc, action="document.head")["events"]
    assert [(e["decision"], e["reason"]) for e in events] == [
        ("deny", "document_not_found"),
        ("allow", "disclosed"),
    ]


def _pending_reads(scene: Scene, doc: str) -> int:
    resp = scene.auditor.http.get("/api/v1/reviews", params={"status": "all"})
    assert resp.status_code == 200
    return sum(item["reads"] for item in resp.json()["items"] if item["document_id"] == doc)
