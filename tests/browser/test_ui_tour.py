"""Every page of the web interface, in Japanese and in English, as the user who works on it:
each page renders under its CSP with no page error, names its language, passes axe-core with
no serious or critical violation, and leaves a screenshot in the artifacts folder.

The scene is made through the API (one case with documents, a read waiting for review, a
disclosed document); the pages are then only looked at, so this module checks what every user
sees rather than one flow (tests/browser/test_ui_flows.py drives the flows).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import KinkoServer, serving
from playwright.sync_api import Page, expect
from web.conftest import browser_session

# Every page in two languages (or every flow) in a real browser: run by CI and by
# `pytest -m slow`, not in the quick default run.
pytestmark = pytest.mark.slow

CheckAxe = Callable[[Page], list[dict[str, Any]]]
Screenshot = Callable[[Page, str], Path]


@dataclass
class Scene:
    server: KinkoServer
    case_id: str
    doc_id: str
    cookies: dict[str, str]  # user name -> session cookie value


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    with serving(tmp_path_factory.mktemp("tour"), KINKO_TIMEZONE="Asia/Tokyo") as server:
        admin = server.admin
        drafter = server.user("tour-drafter", ["procurement"])
        case = drafter.create_case("R8-0042", "次期基幹業務システム調達")
        supervisor = server.user("tour-sup")
        admin.set_member(case["id"], "tour-sup", ["supervisor"])
        spec = drafter.create_document(
            case["id"],
            "specification",
            "仕様書（案）",
            "要件定義 第1版\n".encode(),
            content_type="text/plain; charset=utf-8",
        )
        drafter.put_content(spec["id"], "要件定義 第2版\n".encode())
        drafter.create_document(case["id"], "budget", "予算見積", b"1,000,000 JPY\n")
        # A confidential read, which the supervisor is to review.
        drafter.read(spec["id"], "仕様の確認", version=1)
        # A second case whose final specification is public.
        public = drafter.create_case("R8-0007", "庁舎清掃業務委託")
        admin.set_member(public["id"], "tour-sup", ["supervisor"])
        notice = drafter.create_document(public["id"], "specification", "公告仕様書", b"public\n")
        drafter.finalize(notice["id"], 1)
        supervisor.transition(public["id"], "announced")
        server.user("tour-aud", ["auditor"])
        admin.http.post("/api/v1/audit/checkpoint")
        cookies = {}
        for name, roles in (
            ("tour-drafter", ["procurement"]),
            ("tour-sup", []),
            ("tour-aud", ["auditor"]),
            ("admin", ["admin"]),
        ):
            b = browser_session(server, name, roles)
            cookies[name] = str(b.cookies.get("kinko_session"))
        yield Scene(server, case["id"], spec["id"], cookies)


def _as(new_page: Callable[..., Page], scene: Scene, who: str | None, locale: str) -> Page:
    page = new_page(locale=locale)
    if who is not None:
        page.context.add_cookies(
            [{"name": "kinko_session", "value": scene.cookies[who], "url": scene.server.base_url}]
        )
    return page


# (name of the screenshot, who looks, path, a heading the page must show: ja, en)
PAGES: list[tuple[str, str | None, str, tuple[str, str]]] = [
    ("sign-in", None, "/ui/sign-in", ("サインイン", "Sign in")),
    ("public", None, "/ui/public", ("公開文書", "Public documents")),
    ("cases", "tour-drafter", "/ui/", ("案件", "Cases")),
    ("case", "tour-drafter", "/ui/cases/{case}", ("R8-0042", "R8-0042")),
    ("document", "tour-drafter", "/ui/documents/{doc}", ("仕様書（案）", "仕様書（案）")),
    ("download", "tour-drafter", "/ui/documents/{doc}/download?version=2", ("", "")),
    ("case-supervisor", "tour-sup", "/ui/cases/{case}", ("R8-0042", "R8-0042")),
    ("reviews", "tour-sup", "/ui/reviews", ("点検・確認", "Reviews")),
    ("report", "tour-aud", "/ui/reviews/report", ("照会結果リスト", "")),
    ("audit", "tour-aud", "/ui/audit", ("監査", "Audit")),
    ("users", "admin", "/ui/users", ("利用者", "Users")),
    ("user", "admin", "/ui/users/tour-drafter", ("tour-drafter", "tour-drafter")),
    ("me", "tour-sup", "/ui/me", ("", "")),
    ("not-found", "tour-drafter", "/ui/cases/no-such-case", ("", "")),
]


@pytest.mark.parametrize("locale", ["ja-JP", "en-US"])
@pytest.mark.parametrize(("name", "who", "path", "heading"), PAGES, ids=[p[0] for p in PAGES])
def test_page(
    scene: Scene,
    new_page: Callable[..., Page],
    check_axe: CheckAxe,
    screenshot: Screenshot,
    locale: str,
    name: str,
    who: str | None,
    path: str,
    heading: tuple[str, str],
) -> None:
    lang = locale[:2]
    page = _as(new_page, scene, who, locale)
    url = scene.server.base_url + path.format(case=scene.case_id, doc=scene.doc_id)
    response = page.goto(url)
    assert response is not None
    expected_status = 404 if name == "not-found" else 200
    assert response.status == expected_status, (name, response.status)
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "unsafe-inline" not in csp
    expect(page.locator("html")).to_have_attribute("lang", lang)
    wanted = heading[0] if lang == "ja" else heading[1]
    if wanted:
        expect(page.locator("h1")).to_contain_text(wanted)
    # Nothing on the page is styled or scripted inline (the CSP would block it anyway).
    assert page.locator("[style]").count() == 0
    assert page.locator("script:not([src])").count() == 0
    # Every form that changes something carries its CSRF token.
    for form in page.locator("form[method=post]").all():
        assert form.locator("input[name=csrf]").count() == 1, form.inner_html()[:300]
    # The navigation reads in the page's language.
    if who is not None:
        nav = page.get_by_role("navigation", name=re.compile("メインメニュー|Main"))
        expect(nav.get_by_role("link", name="案件" if lang == "ja" else "Cases")).to_be_visible()
    check_axe(page)
    screenshot(page, name)
