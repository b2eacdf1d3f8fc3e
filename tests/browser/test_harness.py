"""The browser harness itself: Chromium renders /docs, and each of its checks catches what it is
meant to catch (a CSP violation, an uncaught error, an accessibility violation)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import KinkoServer, missing_requirement
from playwright.sync_api import Page, Request, Route, expect

from .conftest import watch_of

CheckAxe = Callable[[Page], list[dict[str, Any]]]
Screenshot = Callable[[Page, str], Path]

# A page with the strict policy the web UI will have, and an inline script that it must block.
INLINE_SCRIPT_PAGE = """<!DOCTYPE html>
<html lang="en"><head>
<meta http-equiv="Content-Security-Policy" content="default-src 'self'">
<title>inline script</title>
</head><body><main><h1>inline</h1><script>window.inlineRan = true;</script></main></body></html>
"""

# Served by a route under a made-up origin, with the policy as a real response header, so that
# axe is shown to run under the same CSP the web UI's pages will send.
FAKE_ORIGIN = "http://kinko.test"
STRICT_CSP = "default-src 'self'"
IMAGE_WITHOUT_ALT_PAGE = """<!DOCTYPE html>
<html lang="en"><head><title>image without alt</title></head>
<body><main><h1>Documents</h1><img src="/logo.svg"></main></body></html>
"""
JAPANESE_PAGE = '<html lang="ja"><body><h1>電子入札の文書保管庫</h1></body></html>'
LOGO_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect/></svg>'


# The newest swagger-ui-bundle on PyPI (1.1.0) ships Swagger UI 4.15.5, which knows OpenAPI 3.0
# only; FastAPI writes 3.1.0, so /docs shows this message instead of the operations.
UNRENDERABLE = "Unable to render this definition"
UNRENDERABLE_REASON = (
    "Swagger UI 4.15.5 from swagger-ui-bundle cannot render FastAPI's OpenAPI 3.1 document: "
    f"/docs says {UNRENDERABLE!r} in a real browser"
)


def open_docs(page: Page, server: KinkoServer) -> Request:
    """Open /docs and wait until Swagger UI has drawn it (or said that it cannot); the
    navigation's request."""
    with page.expect_request(f"{server.base_url}/docs") as navigation:
        page.goto(f"{server.base_url}/docs")
    # Swagger UI draws the title block only once it has loaded and parsed /openapi.json.
    expect(page.locator(".swagger-ui .info").or_(page.get_by_text(UNRENDERABLE))).to_be_visible()
    return navigation.value


def require_operations_drawn(page: Page) -> None:
    """xfail (only) on the known Swagger UI version problem; otherwise wait for an operation."""
    if page.get_by_text(UNRENDERABLE).is_visible():
        pytest.xfail(UNRENDERABLE_REASON)
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()


@pytest.mark.parametrize("locale", ["en-US", "ja-JP"])
def test_docs_renders_in_chromium(
    page: Page, ui_server: KinkoServer, screenshot: Screenshot, locale: str
) -> None:
    request = open_docs(page, ui_server)
    # The locale reaches the server as Accept-Language, which the web UI will pick its
    # language from.
    assert (request.header_value("accept-language") or "").startswith(locale)
    # Taken before the checks below, so that a failure leaves a picture of what went wrong.
    shot = screenshot(page, "docs")
    assert shot.stat().st_size > 5_000
    watch = watch_of(page)
    watch.flush()
    # /docs loads nothing it cannot find: no console error at all, not only no CSP one.
    assert watch.console_errors == []
    require_operations_drawn(page)


# Found with Swagger UI 4.15.5 drawing the document once its version field was rewritten to
# 3.0.3 (by a route, in a trial run only): 44 nodes for color-contrast (the version badges, the
# method labels), 42 each for label-content-name-mismatch and nested-interactive (every
# operation's summary button).  Strict, so that a fixed Swagger UI turns this into a failure
# that says the mark can go.
@pytest.mark.xfail(
    reason="Swagger UI's own markup fails axe: color-contrast, label-content-name-mismatch and "
    "nested-interactive (serious); not Kinko's pages",
    raises=AssertionError,
    strict=True,
)
def test_docs_accessibility(page: Page, ui_server: KinkoServer, check_axe: CheckAxe) -> None:
    open_docs(page, ui_server)
    require_operations_drawn(page)
    check_axe(page)


@pytest.mark.parametrize("locale", ["ja-JP"])
def test_japanese_text_is_drawn_with_a_cjk_font(page: Page, screenshot: Screenshot) -> None:
    page.set_content(JAPANESE_PAGE)
    screenshot(page, "japanese-text")
    # Chromium says which installed fonts it drew the heading's glyphs with; without a CJK font
    # they would come out as empty boxes, which no other check here would notice.
    cdp = page.context.new_cdp_session(page)
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    heading = cdp.send("DOM.querySelector", {"nodeId": root, "selector": "h1"})["nodeId"]
    cdp.send("CSS.enable")
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": heading})["fonts"]
    if not any("CJK" in font["familyName"] for font in fonts):
        missing_requirement(
            f"needs a Japanese font (Debian package fonts-noto-cjk); Chromium used {fonts}"
        )


def test_inline_script_under_strict_csp_is_caught(page: Page) -> None:
    watch = watch_of(page)
    page.set_content(INLINE_SCRIPT_PAGE)
    watch.flush()
    assert page.evaluate("window.inlineRan") is None, "the policy did not block the script"
    assert len(watch.csp_violations) == 1
    assert "inline script" in watch.csp_violations[0]
    with pytest.raises(pytest.fail.Exception, match="CSP violation"):
        watch.check()
    # This violation was the point of the test; without it the watch has nothing to fail on.
    watch.csp_violations.clear()


def test_uncaught_error_in_page_is_caught(page: Page) -> None:
    watch = watch_of(page)
    page.set_content("<script>throw new Error('harness-check boom')</script>")
    watch.flush()
    assert len(watch.page_errors) == 1
    assert "harness-check boom" in watch.page_errors[0]
    with pytest.raises(pytest.fail.Exception, match="uncaught error"):
        watch.check()
    watch.page_errors.clear()


def _serve_fake_origin(route: Route) -> None:
    if route.request.url == f"{FAKE_ORIGIN}/":
        route.fulfill(
            body=IMAGE_WITHOUT_ALT_PAGE,
            content_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": STRICT_CSP},
        )
    elif route.request.url == f"{FAKE_ORIGIN}/logo.svg":
        route.fulfill(body=LOGO_SVG, content_type="image/svg+xml")
    else:
        route.fulfill(status=404, body="")


def test_axe_runs_under_strict_csp_and_reports_violations(page: Page, check_axe: CheckAxe) -> None:
    page.route(f"{FAKE_ORIGIN}/**", _serve_fake_origin)
    response = page.goto(f"{FAKE_ORIGIN}/")
    assert response is not None
    assert response.headers["content-security-policy"] == STRICT_CSP
    with pytest.raises(AssertionError) as failure:
        check_axe(page)
    message = str(failure.value)
    assert "- image-alt (critical, 1 nodes): Images must have alternative text" in message
    assert '    img: <img src="/logo.svg">' in message
    # Loading axe is not a CSP violation of the page (the watch would fail the test if it were),
    # and the page really is under its policy: an added inline script is refused.
    watch = watch_of(page)
    watch.flush()
    assert watch.csp_violations == []
    with pytest.raises(Exception, match="Content Security Policy"):
        page.add_script_tag(content="window.injected = 1")
    watch.flush()
    assert len(watch.csp_violations) == 1
    watch.csp_violations.clear()
    # Once the image has its text, the same page passes.
    page.evaluate("document.querySelector('img').alt = 'Kinko'")
    assert [v["id"] for v in check_axe(page) if v["impact"] in ("serious", "critical")] == []
