"""The browser tests' own machinery, shown to work on pages made for it: Chromium opens a page
served over HTTP, axe-core fails a page that breaks its rules and passes one that keeps them,
screenshots are written, and Chinese is drawn with real glyphs (not empty boxes)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from deploy.stack.browser import require_chinese_font
from tests.browser.support import PNG_SIGNATURE, AccessibilityCheck, PageErrors, Screenshots, found_or_fail

pytestmark = pytest.mark.browser

#: a one-pixel GIF
PIXEL = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
PAGES = {
    # an image without a text alternative and an input without a label: both "critical" in axe-core
    "broken.html": f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>坏页面</title></head>
<body><main><h1>诉求查询</h1><img src="{PIXEL}" width="40" height="40">
<form><input name="code"><button type="submit">查询</button></form></main></body></html>""",
    "correct.html": f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>好页面</title></head>
<body><main><h1>诉求查询</h1><img src="{PIXEL}" width="40" height="40" alt="徽标">
<form><label for="code">查询码</label> <input id="code" name="code"><button type="submit">查询</button></form>
</main></body></html>""",
    # a heading level skipped: "moderate" in axe-core, reported but not failed on
    "skipped-heading.html": """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>跳级标题</title>
</head><body><main><h1>诉求查询</h1><h3>查询结果</h3><p>已办结</p></main></body></html>""",
}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No request log on the test's output."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The pages above, served over HTTP on a free loopback port; yields the base URL."""
    folder = tmp_path_factory.mktemp("site")
    for name, text in PAGES.items():
        (folder / name).write_text(text, encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_axe_fails_a_page_with_an_image_without_text_and_an_input_without_a_label(
    browser_page: Page, site: str, assert_accessible: AccessibilityCheck, screenshot: Screenshots
) -> None:
    browser_page.goto(f"{site}/broken.html")
    found = {v.id: v for v in assert_accessible.violations(browser_page)}
    assert found["image-alt"].impact == "critical" and found["image-alt"].targets == ("img",)
    assert found["label"].impact == "critical" and found["label"].targets == ("input",)
    with pytest.raises(AssertionError) as failed:
        assert_accessible(browser_page)
    report = str(failed.value)
    assert "image-alt (critical)" in report and "label (critical)" in report and "on input" in report
    assert screenshot(browser_page, "broken").stat().st_size > 0


def test_axe_passes_the_same_page_with_its_text_alternative_and_label(
    browser_page: Page, site: str, assert_accessible: AccessibilityCheck, screenshot: Screenshots
) -> None:
    browser_page.goto(f"{site}/correct.html")
    assert_accessible(browser_page)
    assert_accessible(browser_page)  # a second check of the same page reuses the script it added
    shot = screenshot(browser_page, "correct")
    assert shot.parent.parent.name == "screenshots" and shot.read_bytes().startswith(PNG_SIGNATURE)
    assert shot.stat().st_size > 1000


def test_a_lesser_violation_passes_the_check_and_is_listed_for_the_report(
    browser_page: Page, site: str, assert_accessible: AccessibilityCheck
) -> None:
    browser_page.goto(f"{site}/skipped-heading.html")
    assert [v.impact for v in assert_accessible.violations(browser_page) if v.id == "heading-order"] == ["moderate"]
    assert_accessible(browser_page)
    listed = {rule: paths for rule, paths in assert_accessible.tolerated.items() if rule.startswith("heading-order")}
    assert [(rule.split(":")[0], paths) for rule, paths in listed.items()] == [
        ("heading-order (moderate)", {"/skipped-heading.html"})]


def _text_shot(page: Page, text: str) -> bytes:
    page.set_content(f'<html lang="zh-CN"><body style="margin:0;font-size:48px"><span id="t">{text}</span>'
                     "</body></html>")
    return page.locator("#t").screenshot()


def test_chinese_is_drawn_with_glyphs_not_the_boxes_of_a_missing_font(browser_page: Page) -> None:
    assert found_or_fail(require_chinese_font)
    # Code points no font has (unassigned in Unicode) are drawn as the same empty boxes whatever
    # they are, and so would 办结 and 受理 be without a Chinese font: with one, all three differ.
    taken = {text: _text_shot(browser_page, text) for text in ("办结", "受理", "\u0378\u0379", "\u0380\u0381")}
    assert taken["\u0378\u0379"] == taken["\u0380\u0381"], "two pairs of missing glyphs are expected to look alike"
    assert taken["办结"] != taken["\u0378\u0379"], "办结 is drawn as empty boxes: no Chinese font (run `make prepare`)"
    assert taken["办结"] != taken["受理"]


def test_a_page_script_error_is_caught_against_the_page_that_threw_it(browser: Browser, site: str) -> None:
    """What ``new_browser_page`` does at the end of every test, on a browser context of this test's own
    (the fixture's pages would fail this test)."""
    context = browser.new_context()
    try:
        page = context.new_page()
        errors = PageErrors()
        errors.watch(page)
        page.goto(f"{site}/correct.html")
        errors.assert_none()
        page.evaluate("() => { setTimeout(() => { throw new Error('刻意的错误'); }, 0); }")
        page.wait_for_timeout(300)  # the error's event comes back from the browser meanwhile
        with pytest.raises(AssertionError, match=r"/correct\.html: .*刻意的错误"):
            errors.assert_none()
    finally:
        context.close()
