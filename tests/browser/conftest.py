"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, axe-core, screenshots.

A test asks for ``browser_page`` (a page in a fresh browser context: no cookies, locale zh-CN,
time zone Asia/Shanghai), ``new_browser_page`` for more people at once (each call a page in a
context of its own), ``assert_accessible`` and ``screenshot``, and for ``stack`` (the session's
running platform, tests/conftest.py) when it visits the platform's pages.

What must hold:

* the browser is Debian's ``/usr/bin/chromium``, which ``make prepare`` installs; Playwright's
  own browser download is never used. One browser, headless, serves all of tests/browser;
* what is missing (Chromium, axe-core's script) makes the fixtures fail, never skip, with a
  message naming ``make prepare``: a machine that cannot run these tests must not pass them;
* a page that throws an uncaught script error fails the test that opened it;
* screenshots go under the run's temporary folder (``<basetemp>/screenshots/<test>/``), which
  the end of the run's report names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, ViewportSize, sync_playwright

from deploy.stack.browser import CHROMIUM_ARGS, require_axe_script, require_chromium
from tests.browser.support import AccessibilityCheck, PageErrors, Screenshots, file_name, found_or_fail

#: What every page of a test sees: the console's people work in Chinese, in China's time zone,
#: on a screen the console's stylesheet is made for.
LOCALE, TIMEZONE, VIEWPORT = "zh-CN", "Asia/Shanghai", ViewportSize(width=1280, height=720)
#: How long an action or a navigation may take before the test fails (two shared cores).
ACTION_TIMEOUT_MS = 20_000

_SCREENSHOTS = pytest.StashKey[Path]()
_AXE = pytest.StashKey[AccessibilityCheck]()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the browser tests (closed when the last of them is done, so
    the rest of the suite runs without Playwright's event loop around)."""
    executable = found_or_fail(require_chromium)
    driver: Playwright = sync_playwright().start()
    try:
        launched = driver.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS), headless=True)
        try:
            yield launched
        finally:
            launched.close()
    finally:
        driver.stop()


@pytest.fixture
def new_browser_page(browser: Browser) -> Iterator[Callable[[], Page]]:
    """Opens pages, each in a fresh context (its own cookies: one person each); closes them after
    the test, and fails it if a page threw an uncaught script error."""
    contexts: list[BrowserContext] = []
    errors = PageErrors()

    def open_page() -> Page:
        context = browser.new_context(locale=LOCALE, timezone_id=TIMEZONE, viewport=VIEWPORT)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        errors.watch(page)
        return page

    yield open_page
    for context in contexts:
        context.close()
    errors.assert_none()


@pytest.fixture
def browser_page(new_browser_page: Callable[[], Page]) -> Page:
    """A page in a fresh browser context (no cookies), locale zh-CN, time zone Asia/Shanghai."""
    return new_browser_page()


@pytest.fixture(scope="session")
def assert_accessible(pytestconfig: pytest.Config) -> AccessibilityCheck:
    """``assert_accessible(page)``: axe-core finds no serious or critical violation in the page
    (the lesser ones it found are listed at the end of the run's report)."""
    check = AccessibilityCheck(found_or_fail(require_axe_script))
    pytestconfig.stash[_AXE] = check
    return check


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    """The run's screenshot folder, named at the end of the run's report."""
    folder = tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(exist_ok=True)
    pytestconfig.stash[_SCREENSHOTS] = folder
    return folder


@pytest.fixture
def screenshot(screenshot_dir: Path, request: pytest.FixtureRequest) -> Screenshots:
    """``screenshot(page, name)``: a full-page PNG in this test's folder of the run's screenshots."""
    return Screenshots(screenshot_dir / file_name(request.node.name))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Where the screenshots are, and the accessibility findings that did not fail a page."""
    folder = config.stash.get(_SCREENSHOTS, None)
    if folder is not None:
        terminalreporter.write_line(f"browser tests' screenshots: {folder}")
    check = config.stash.get(_AXE, None)
    for rule, paths in sorted(check.tolerated.items() if check else ()):
        terminalreporter.write_line(f"axe-core, not failed on: {rule} on {', '.join(sorted(paths))}")
