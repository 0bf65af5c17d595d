"""What a browser test checks a page with: axe-core's accessibility rules, and screenshots.

The fixtures of tests/browser/conftest.py hand these to the tests as ``assert_accessible`` and
``screenshot``. What must hold: a page with a serious or critical axe-core violation fails the
test that checked it, naming each rule, its impact, what it asks for and the elements that
break it; a screenshot is a full-page PNG under the test run's folder, never an empty file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page

from deploy.stack.process import StackError

#: The impacts that fail a test. axe-core also reports "moderate" and "minor" ones (a landmark
#: missing, a heading level skipped): worth reading, not worth failing a page over.
FAILING_IMPACTS = frozenset({"serious", "critical"})

#: Runs every rule axe-core enables by default (WCAG 2.x A and AA, and its best practices) on
#: the whole document and returns only what a report needs.
_RUN_AXE = """async () => {
  const result = await window.axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact || "", help: v.help,
    targets: v.nodes.map((n) => n.target.map(String).join(" ")),
  }));
}"""

T = TypeVar("T")

#: The PNG signature: a screenshot file starts with it.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Violation:
    """One axe-core rule a page breaks, with the elements (CSS selectors) that break it."""

    id: str
    impact: str
    help: str
    targets: tuple[str, ...]

    @classmethod
    def of(cls, found: dict[str, Any]) -> Violation:
        return cls(id=str(found["id"]), impact=str(found["impact"]), help=str(found["help"]),
                   targets=tuple(str(t) for t in found["targets"]))

    def describe(self) -> str:
        return f"{self.id} ({self.impact}): {self.help}; on {', '.join(self.targets)}"


class AccessibilityCheck:
    """Runs axe-core in a page: ``check(page)`` fails on serious or critical violations.

    The script is run in the page being checked, as the page is at that moment (after the
    test's clicks, with what its own script changed), and only when the page does not have it
    yet; nothing is added to pages that are not checked. It is evaluated through Playwright
    (the browser's debugging protocol), not added as a ``<script>`` element: the console's
    Content-Security-Policy (``script-src 'self'``) rightly refuses an inline script, and
    switching the policy off for the tests (``bypass_csp``) would hide a page that its own
    policy breaks.
    """

    def __init__(self, axe_script: Path) -> None:
        self.source = axe_script.read_text(encoding="utf-8") + "\n;undefined"  # nothing to send back
        #: the violations that did not fail a check ("moderate", "minor"), by rule, with the pages'
        #: paths: the end of the run's report lists them
        self.tolerated: dict[str, set[str]] = {}

    def violations(self, page: Page) -> list[Violation]:
        """Every violation axe-core finds in `page`, whatever its impact."""
        if not page.evaluate("() => typeof window.axe === 'object'"):
            page.evaluate(self.source)
        return [Violation.of(found) for found in page.evaluate(_RUN_AXE)]

    def __call__(self, page: Page) -> None:
        found = self.violations(page)
        for v in found:
            if v.impact not in FAILING_IMPACTS:
                self.tolerated.setdefault(f"{v.id} ({v.impact}): {v.help}", set()).add(urlsplit(page.url).path)
        failing = [v for v in found if v.impact in FAILING_IMPACTS]
        assert not failing, (f"axe-core: {len(failing)} serious or critical violation(s) on {page.url}:\n  "
                             + "\n  ".join(v.describe() for v in failing))


class PageErrors:
    """The uncaught script errors of the pages it watches, each with the URL of its page."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.seen.append(f"{page.url}: {error}"))

    def assert_none(self) -> None:
        assert not self.seen, "uncaught script errors:\n  " + "\n  ".join(self.seen)


class Screenshots:
    """Saves full-page screenshots of one test into its own folder: ``screenshot(page, name)``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, page: Page, name: str) -> Path:
        """Save `page` as ``<folder>/<name>.png`` and return the file (a PNG, never empty)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{file_name(name)}.png"
        page.screenshot(path=path, full_page=True)
        assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
        return path


def found_or_fail(find: Callable[[], T]) -> T:
    """What `find` finds on the machine, or a failure (never a skip) with its message, which
    names ``make prepare``: a machine that cannot run the browser tests must not pass them."""
    try:
        return find()
    except StackError as missing:
        message = str(missing)
    pytest.fail(message, pytrace=False)  # outside the except block: one message, not two


def file_name(text: str) -> str:
    """`text` as a file name: letters, digits, '-', '_' and '.' kept, anything else a '-'."""
    return re.sub(r"[^\w.-]+", "-", text).strip("-.") or "page"
