"""Browser tests: Debian's Chromium driven by Playwright's sync API, checked with axe-core.

Fixtures (see each one's docstring):

* ``chromium_path`` – the system Chromium; ``axe_path`` – axe-core's ``axe.min.js``.
* ``browser`` – one Chromium for all tests of this folder.
* ``locale`` – the locale ``page`` is made in (``"en-US"``); parametrize it to change it.
* ``new_page(locale=…, **context_options) -> Page`` – a page in a fresh context of its own;
  ``page`` is ``new_page()``.
* ``ui_server`` – a real ``kinko serve`` for the test module.
* ``check_axe(page) -> list[dict]`` and ``screenshot(page, name) -> Path``.

Every page made by ``new_page`` is watched: a console message about the Content-Security-Policy
or an uncaught error in the page fails the test that made it, once its body has run.  Other
console errors are only recorded (``watch_of(page).console_errors``) for tests to look at.

This folder is a package (it has an ``__init__.py``) on purpose: pytest imports a conftest.py
outside any package under the module name ``conftest``, replacing ``tests/conftest.py`` in
``sys.modules``, and every test module collected after it that does ``from conftest import …``
would then get this file instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import pytest
from conftest import ROOT, KinkoServer, missing_requirement, require_tool, serving
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    sync_playwright,
)

AXE_PATH = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"

# Flags for a headless Chromium in a container, kept off the network: no sandbox (the tests may
# run as root, where Chromium refuses its sandbox), no GPU, /tmp instead of a small /dev/shm, and
# none of the background requests (updates, sync, QUIC probes) Chromium makes on its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# Chromium's console messages for a blocked script, style, image or javascript: URL all name the
# "Content Security Policy" ("Executing inline script violates the following Content Security
# Policy directive …").  Older versions began with "Refused to …", which is matched as well.
CSP_MARKERS = ("Content Security Policy", "Refused to")

# The impacts axe reports that fail a test; "moderate" and "minor" findings are returned only.
FAILING_IMPACTS = ("serious", "critical")


@dataclass
class PageWatch:
    """What one page reported on its console and as uncaught errors."""

    page: Page
    locale: str
    csp_violations: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        text = message.text
        if any(marker in text for marker in CSP_MARKERS):
            self.csp_violations.append(text)
        elif message.type == "error":
            self.console_errors.append(text)

    def on_page_error(self, error: Error) -> None:
        self.page_errors.append(error.stack or f"{error.name}: {error.message}")

    def flush(self) -> None:
        """Let the events the page has already sent reach the handlers above.

        Playwright delivers events only while a call waits on the driver; one round trip makes
        sure what the page printed before this point has been recorded.
        """
        if not self.page.is_closed():
            self.page.evaluate("0")

    def check(self) -> None:
        """Fail, listing them, if the page broke its CSP or threw an uncaught error."""
        self.flush()
        problems = [f"CSP violation: {text}" for text in self.csp_violations]
        problems += [f"uncaught error in the page: {text}" for text in self.page_errors]
        if problems:
            pytest.fail(f"{self.page.url}:\n" + "\n".join(problems), pytrace=False)


# Weak so that a page of a finished test does not stay alive through this table.
_WATCHES: WeakKeyDictionary[Page, PageWatch] = WeakKeyDictionary()
_PAGES_OF_TEST = pytest.StashKey[list[PageWatch]]()


def watch_of(page: Page) -> PageWatch:
    """The watch of a page made by ``new_page`` (to read or clear what it recorded)."""
    return _WATCHES[page]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    # Checked here rather than in a fixture's teardown so that a CSP violation is reported as
    # the test's own failure, not as an error of its teardown.  A test that already failed keeps
    # its own failure (the yield raises it).
    result = yield
    for watch in item.stash.get(_PAGES_OF_TEST, []):
        watch.check()
    return result


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium; the test skips (naming the package) when it is not installed."""
    return require_tool("chromium")


@pytest.fixture(scope="session")
def axe_path() -> Path:
    """axe-core's browser bundle, installed from tests/browser/package-lock.json by npm."""
    if not AXE_PATH.is_file():
        missing_requirement(
            "needs the npm package axe-core, which is not installed "
            "(run: npm ci --prefix tests/browser)"
        )
    return AXE_PATH


# Package scope, not session: while Playwright's sync API is started, its event loop counts as
# the running loop of the main thread, even between calls (playwright/_impl/_greenlets.py sets
# it again after every call), so asyncio.run() anywhere else in the thread would fail with
# "cannot be called from a running event loop".  Stopping Playwright after the last test of this
# folder keeps that state away from the tests of the other folders.
@pytest.fixture(scope="package")
def browser(chromium_path: str) -> Iterator[Browser]:
    """One headless Chromium (Debian's, never a downloaded one) for all tests of this folder."""
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def locale() -> str:
    """The locale of ``page``; ``@pytest.mark.parametrize("locale", ["ja-JP"])`` changes it.

    Playwright sends it as Accept-Language and reports it as ``navigator.language``.
    """
    return "en-US"


@pytest.fixture
def new_page(
    browser: Browser, locale: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Page]]:
    """``new_page(locale=…, **context_options) -> Page``: a watched page in a new context.

    Each page has a context (cookies, storage) of its own.  The context never bypasses the
    page's Content-Security-Policy, so that a violation shows as it would for a user.
    ``context_options`` go to ``Browser.new_context`` (``storage_state``, ``base_url``, …).
    """
    contexts: list[BrowserContext] = []
    watches = request.node.stash.setdefault(_PAGES_OF_TEST, [])

    def make(locale: str = locale, **context_options: Any) -> Page:
        options: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
        options.update(context_options, locale=locale)
        context = browser.new_context(**options)
        contexts.append(context)
        # A page that does not answer fails within seconds instead of Playwright's 30.
        context.set_default_timeout(10_000)
        page = context.new_page()
        watch = PageWatch(page, locale)
        page.on("console", watch.on_console)
        page.on("pageerror", watch.on_page_error)
        _WATCHES[page] = watch
        watches.append(watch)
        return page

    try:
        yield make
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    """A watched page in a context of its own, in ``locale``."""
    return new_page()


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KinkoServer]:
    """A real ``kinko serve`` on a free loopback port, shared by the test module's tests."""
    with serving(tmp_path_factory.mktemp("kinko-ui")) as srv:
        yield srv


def _describe(violations: Sequence[dict[str, Any]], nodes_per_rule: int = 8) -> str:
    """One line per rule, then the first few nodes it failed on (a page of generated markup can
    fail one rule on hundreds of nodes, which would bury the other rules)."""
    lines = []
    for v in violations:
        nodes = v["nodes"]
        lines.append(
            f"- {v['id']} ({v['impact']}, {len(nodes)} nodes): {v['help']}  <{v['helpUrl']}>"
        )
        for node in nodes[:nodes_per_rule]:
            # A target is a CSS selector, or a list of them for a node inside a frame.
            parts = node["target"]
            target = " >> ".join(t if isinstance(t, str) else " >> ".join(t) for t in parts)
            lines.append(f"    {target}: {node['html'][:160]}")
        if len(nodes) > nodes_per_rule:
            lines.append(f"    … and {len(nodes) - nodes_per_rule} more")
    return "\n".join(lines)


@pytest.fixture
def check_axe(axe_path: Path) -> Callable[[Page], list[dict[str, Any]]]:
    """``check_axe(page) -> violations``: run axe-core on the page as it is now.

    Fails listing every violation of impact "serious" or "critical" (rule, impact, help and the
    nodes); returns all violations, the moderate and minor ones included.

    axe is loaded with ``page.evaluate`` and not ``page.add_script_tag``: the latter adds an
    inline ``<script>``, which the page's CSP blocks (and which would be reported as a CSP
    violation of the page), whereas code Playwright evaluates goes through the DevTools protocol,
    which the CSP does not govern.  So the page keeps its CSP and axe still sees its real state,
    including what the test did on it.  Only the top document is checked, not its iframes.
    """
    source = axe_path.read_text(encoding="utf-8")

    def run(page: Page) -> list[dict[str, Any]]:
        if not page.evaluate("typeof window.axe === 'object'"):
            page.evaluate(source)
        results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        violations: list[dict[str, Any]] = results["violations"]
        failing = [v for v in violations if v["impact"] in FAILING_IMPACTS]
        if failing:
            # Raised rather than asserted, so that pytest does not append the whole result list.
            raise AssertionError(f"axe-core on {page.url}:\n{_describe(failing)}")
        return violations

    return run


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave files for people to look at: $KINKO_ARTIFACTS, else test-artifacts/."""
    return Path(os.environ.get("KINKO_ARTIFACTS") or ROOT / "test-artifacts").resolve()


@pytest.fixture
def screenshot(artifacts_dir: Path) -> Callable[[Page, str], Path]:
    """``screenshot(page, name) -> Path``: the full page, as a PNG in the artifacts folder.

    The file is ``<artifacts>/screenshots/<name>-<lang>.png``; ``lang`` is the language of the
    page's locale ("ja" for "ja-JP"), so that the same test run in two languages leaves two files.
    """
    folder = artifacts_dir / "screenshots"

    def take(page: Page, name: str) -> Path:
        assert re.fullmatch(r"[A-Za-z0-9._-]+", name), f"not a plain file name: {name!r}"
        lang = watch_of(page).locale.split("-")[0].lower()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}-{lang}.png"
        # Animations are stopped so that two runs of the same page give the same picture.
        page.screenshot(path=path, full_page=True, animations="disabled")
        return path

    return take
