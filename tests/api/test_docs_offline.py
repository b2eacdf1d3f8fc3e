"""``/docs`` works on a closed network: every asset comes from Kinko itself (issue 9)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx

from tests.conftest import KinkoServer

EXPECTED_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
}


class Assets(HTMLParser):
    """Every URL the page loads, and the body of every inline script."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self.openapi: str | None = None
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            if a.get("src"):
                self.urls.append(str(a["src"]))
            else:
                self._in_inline_script = True
                self.inline.append("")
        elif tag == "link" and a.get("href"):
            self.urls.append(str(a["href"]))
        elif a.get("data-openapi-url"):
            self.openapi = a["data-openapi-url"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data: str) -> None:
        if self._in_inline_script:
            self.inline[-1] += data


def test_docs_page_loads_only_same_origin_assets(server: KinkoServer) -> None:
    page = httpx.get(f"{server.base_url}/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    parsed = Assets()
    parsed.feed(page.text)
    assert len(parsed.urls) == 4  # bundle, start-up script, style sheet, icon
    assert parsed.inline == [], "no inline script: a strict CSP must be able to allow the page"
    origin = urlsplit(server.base_url)
    for url in parsed.urls:
        absolute = urljoin(f"{server.base_url}/docs", url)
        parts = urlsplit(absolute)
        assert (parts.scheme, parts.netloc) == (origin.scheme, origin.netloc), url
        resp = httpx.get(absolute)
        assert resp.status_code == 200, url
        suffix = parts.path[parts.path.rfind(".") :]
        assert resp.headers["content-type"].startswith(EXPECTED_TYPES[suffix]), url
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert len(resp.content) > 100
    start = httpx.get(urljoin(server.base_url, "/docs/static/kinko-docs.js")).text
    assert "SwaggerUIBundle(" in start
    assert parsed.openapi == "/openapi.json"
    schema = httpx.get(urljoin(server.base_url, parsed.openapi))
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "Kinko"


def test_only_the_page_assets_are_served(server: KinkoServer) -> None:
    # The bundle's own demo page (which points at a public server) is not reachable.
    for path in ("/docs/static/index.html", "/docs/static/swagger-initializer.js", "/redoc"):
        resp = httpx.get(f"{server.base_url}{path}")
        assert resp.status_code == 404, path
    for path in ("/docs/static/../../pyproject.toml", "/docs/static/%2e%2e%2fapp.py"):
        assert httpx.get(f"{server.base_url}{path}").status_code == 404, path
