"""What the browser tests need from the machine: Debian's Chromium, a Chinese font, axe-core.

The console's pages are tested in a real browser (tests/browser): Debian's ``chromium``
package, driven by Playwright for Python, never a browser build Playwright would download.
The pages are in Simplified Chinese, so a font with Chinese glyphs must be installed or the
screenshots show empty boxes. Accessibility is checked with axe-core, a script from npm that
``make prepare`` fetches once (the pinned version below) into the same cache as the Kafka
jars; the tests inject it into the page under test.

What must hold: nothing here installs or fetches anything (that is deploy/stack/host.py's,
run by ``make prepare`` alone); what is missing is reported with a message naming
``make prepare``. Only the standard library is imported.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from deploy.stack.config import cache_root
from deploy.stack.process import StackError

#: Debian's chromium package installs the browser here.
CHROMIUM = Path("/usr/bin/chromium")
#: The arguments the browser tests launch it with: no sandbox (the tests run as root, which
#: Chromium's sandbox refuses) and no GPU (there is none; software rendering only).
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu")
#: The Debian package of the Chinese font ``make prepare`` installs when no font covers Chinese
#: (the console's stylesheet names "Noto Sans CJK SC" first).
CJK_FONT_PACKAGE = "fonts-noto-cjk"
#: The axe-core release ``make prepare`` fetches from npm; it names the cache folder, so
#: changing it fetches the new release once and keeps the old one.
AXE_CORE_VERSION = "4.14.1"


def axe_cache_dir() -> Path:
    """The folder of this axe-core release's script (outside the repository, shared by checkouts)."""
    return cache_root() / f"axe-core-{AXE_CORE_VERSION}"


def axe_script_ready() -> bool:
    """True when this release's ``axe.min.js`` was fetched completely (the marker is written last)."""
    base = axe_cache_dir()
    return (base / ".complete").exists() and (base / "axe.min.js").is_file()


def require_axe_script() -> Path:
    """The cached ``axe.min.js``; fails naming ``make prepare`` when it is missing."""
    if not axe_script_ready():
        raise StackError(f"axe-core {AXE_CORE_VERSION} is not in {axe_cache_dir()}: run `make prepare` "
                         "(it fetches axe-core once from npm)")
    return axe_cache_dir() / "axe.min.js"


def find_chromium() -> Path | None:
    """Debian's Chromium, or None when the package is not installed."""
    return CHROMIUM if CHROMIUM.is_file() else None


def require_chromium() -> Path:
    """Debian's Chromium; fails naming ``make prepare`` when it is missing."""
    found = find_chromium()
    if found is None:
        raise StackError(f"{CHROMIUM} is missing (Debian's chromium package): run `make prepare`")
    return found


def chinese_fonts() -> list[str]:
    """The installed font files that cover Chinese, as fontconfig sees them (`fc-list :lang=zh`).

    Empty when there is none, or when fontconfig itself is not installed (Chromium then has
    no font at all).
    """
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return []
    done = subprocess.run([fc_list, ":lang=zh", "file"], capture_output=True, text=True, timeout=60, check=False)
    return sorted({line.strip().rstrip(":") for line in done.stdout.splitlines() if line.strip()})


def require_chinese_font() -> list[str]:
    """The installed fonts covering Chinese; fails naming ``make prepare`` when there is none."""
    found = chinese_fonts()
    if not found:
        raise StackError(f"no font covers Chinese (`fc-list :lang=zh` is empty): run `make prepare` "
                         f"(it installs Debian's {CJK_FONT_PACKAGE})")
    return found
