"""Host preparation: the one place that changes the machine (``make prepare``).

The local stack needs three things a fresh Debian machine of ours lacks: the Apache Kafka
jars (fetched once with Maven into a cache outside the repository), Debian's ``postgresql``
package and Debian's ``prometheus`` package. Installing a package also starts what the
package ships (PostgreSQL's ``main`` cluster and the ``prometheus`` daemon, on our default
ports 5432 and 9090), so right after installing one we stop those and keep them from
starting at boot; a machine that already had the package is left as it is.

The browser tests (tests/browser, deploy/stack/browser.py) need three more: Debian's
``chromium`` package, a font with Chinese glyphs (Debian's ``fonts-noto-cjk`` when
``fc-list :lang=zh`` finds none) and axe-core's script, fetched once from npm into the same
cache as the Kafka jars. Playwright's own browser download (``playwright install``) is never
used: only the package registries are reachable.

What must hold:

* only ``python -m deploy.stack prepare`` (``make prepare``, a prerequisite of ``make up``,
  ``make test`` and ``make bench``) imports this module. Starting a stack or a test fixture
  never runs apt, writes under /etc, stops a system daemon or calls Maven: it finds what is
  installed and fails naming ``make prepare`` otherwise;
* when everything is present ``prepare`` is a glob, a few PATH lookups, two marker files and
  one ``fc-list``, so running it before every ``make up`` and ``make test`` costs nothing;
* installing needs root; without it the error names the ``apt-get`` command to run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import shutil
import signal
import tarfile
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from deploy.stack.browser import (
    AXE_CORE_VERSION,
    CHROMIUM,
    CJK_FONT_PACKAGE,
    axe_cache_dir,
    axe_script_ready,
    chinese_fonts,
    find_chromium,
)
from deploy.stack.kafka import KAFKA_DEPLOY_DIR, KAFKA_VERSION, kafka_cache_dir, kafka_jars_ready
from deploy.stack.postgres import debian_clusters, find_postgres_bindir
from deploy.stack.process import StackError, is_root, log, proc_cmdline, run_command
from deploy.stack.prometheus import find_prometheus

_apt_updated = False


def apt_install(*packages: str) -> None:
    """Install Debian packages non-interactively (needs root). Runs `apt-get update` once.

    --no-install-recommends keeps extras out (e.g. prometheus would pull in
    prometheus-node-exporter, another daemon listening on a port).
    """
    global _apt_updated
    if not is_root():
        raise StackError(f"need root to install {' '.join(packages)}; "
                         f"run: sudo apt-get install -y {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        log("apt-get update")
        run_command(["apt-get", "update"], env=env, timeout=900)
        _apt_updated = True
    log(f"apt-get install -y {' '.join(packages)}")
    run_command(["apt-get", "install", "-y", "--no-install-recommends",
                 "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
                 *packages], env=env, timeout=1800)


def ensure_kafka_jars() -> Path:
    """Return the folder with the broker's runtime jars, fetching them once with Maven.

    A marker file written after a successful copy means "complete": from then on Maven
    is never called again, so later runs start offline. Copies go to a temporary folder
    renamed into place, and a file lock serialises concurrent callers (two `make prepare` at once).
    """
    base = kafka_cache_dir()
    libs = base / "libs"
    marker = base / ".complete"
    if kafka_jars_ready():
        return libs
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if kafka_jars_ready():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError("Maven (mvn) is needed once to fetch the Kafka jars: "
                             "apt-get install -y maven")
        tmp = base / f"libs.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"fetching Kafka {KAFKA_VERSION} jars with Maven into {libs} (once)")
        started = time.monotonic()
        run_command([mvn, "-q", "-B", "-f", str(KAFKA_DEPLOY_DIR / "pom.xml"),
                     "dependency:copy-dependencies", "-DincludeScope=runtime",
                     f"-DoutputDirectory={tmp}"], timeout=1800)
        jars = sorted(p.name for p in tmp.glob("*.jar"))
        if not any(j.startswith(f"kafka_2.13-{KAFKA_VERSION}") for j in jars):
            raise StackError(f"Maven finished but {tmp} has no kafka_2.13-{KAFKA_VERSION} jar; "
                             f"does deploy/kafka/pom.xml pin {KAFKA_VERSION}?")
        shutil.rmtree(libs, ignore_errors=True)
        tmp.rename(libs)
        marker.write_text("\n".join(jars) + "\n")
        log(f"Kafka jars ready ({len(jars)} jars, {time.monotonic() - started:.1f}s)")
    return libs


def _disable_debian_clusters() -> None:
    """Stop the clusters the Debian package created and keep them from autostarting.

    The package's own `main` cluster listens on 5432, our default port. We never use
    it: we run our own data folder with initdb/pg_ctl. start.conf=manual keeps it from
    coming back on the next boot.
    """
    for c in debian_clusters():
        if c["status"].startswith("online"):
            log(f"stopping Debian's own PostgreSQL cluster {c['version']}/{c['name']} "
                f"on port {c['port']} (we run our own)")
            run_command(["pg_ctlcluster", c["version"], c["name"], "stop"], check=False)
        start_conf = Path(f"/etc/postgresql/{c['version']}/{c['name']}/start.conf")
        if start_conf.exists() and start_conf.read_text().strip().splitlines()[-1:] != ["manual"]:
            start_conf.write_text("# set by petition deploy/stack/host.py: not used by the "
                                  "platform\nmanual\n")


def ensure_postgres_installed() -> Path:
    """Return the PostgreSQL server bin folder, installing the Debian package if needed."""
    bindir = find_postgres_bindir()
    if bindir is None:
        apt_install("postgresql")
        _disable_debian_clusters()
        bindir = find_postgres_bindir()
        if bindir is None:
            raise StackError("postgresql installed but no /usr/lib/postgresql/*/bin/initdb")
    return bindir


def _stop_package_daemons(names: Iterable[str]) -> None:
    """Stop daemons that a Debian package started on install, and disable autostart.

    The prometheus package's postinst starts its own daemon on :9090 (our default port)
    when service starts are allowed (no policy-rc.d). We run our own instance instead.
    """
    for name in names:
        init = Path(f"/etc/init.d/{name}")
        if shutil.which("systemctl") and Path("/run/systemd/system").exists():
            run_command(["systemctl", "disable", "--now", name], check=False)
        elif init.exists():
            run_command([str(init), "stop"], check=False)
            if shutil.which("update-rc.d"):
                run_command(["update-rc.d", name, "disable"], check=False)
    # Last resort: package daemons run as the package's system user (e.g. `prometheus`);
    # ours run as the calling user, so matching on that user never hits our instance.
    for name in names:
        try:
            uid = pwd.getpwnam(name.split("-")[0]).pw_uid
        except KeyError:
            continue
        for pid_dir in Path("/proc").glob("[0-9]*"):
            cmd = proc_cmdline(int(pid_dir.name))
            try:
                owner = pid_dir.stat().st_uid
            except OSError:
                continue
            if cmd and owner == uid and Path(cmd[0]).name == name:
                log(f"stopping package daemon {name} (pid {pid_dir.name})")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid_dir.name), signal.SIGTERM)


def ensure_prometheus_installed() -> str:
    """Return the prometheus binary path, installing the Debian package if missing."""
    binary = find_prometheus()
    if binary is None:
        apt_install("prometheus")
        _stop_package_daemons(["prometheus", "prometheus-node-exporter"])
        binary = find_prometheus()
        if binary is None:
            raise StackError("prometheus package installed but no `prometheus` binary found")
    return binary


def ensure_chromium() -> Path:
    """Return Debian's Chromium, installing the ``chromium`` package if it is missing."""
    found = find_chromium()
    if found is None:
        apt_install("chromium")
        found = find_chromium()
        if found is None:
            raise StackError(f"the chromium package is installed but {CHROMIUM} is missing")
    return found


def ensure_chinese_font() -> str:
    """Return an installed font file covering Chinese, installing Debian's fonts-noto-cjk if none does.

    Without one Chromium draws every Chinese character as an empty box: the pages still work,
    but their screenshots show nothing a person could read. ``fontconfig`` (``fc-list``) comes
    along when it is missing, since it is how we look.
    """
    found = chinese_fonts()
    if not found:
        apt_install(CJK_FONT_PACKAGE, *([] if shutil.which("fc-list") else ["fontconfig"]))
        found = chinese_fonts()
        if not found:
            raise StackError(f"{CJK_FONT_PACKAGE} is installed but `fc-list :lang=zh` still finds no font")
    return found[0]


def ensure_axe_core() -> Path:
    """Return the cached ``axe.min.js`` of the pinned axe-core release, fetching it once from npm.

    ``npm pack`` downloads the release's tarball (npm checks it against the registry's
    integrity hash) into a temporary folder; only ``package/axe.min.js`` is read out of it,
    never extracted as a whole. The script is renamed into place and the marker, with the
    script's SHA-256, is written last, so "complete" means complete; a file lock serialises
    concurrent callers, as for the Kafka jars.
    """
    base = axe_cache_dir()
    script = base / "axe.min.js"
    if axe_script_ready():
        return script
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if axe_script_ready():
            return script
        npm = shutil.which("npm")
        if npm is None:
            raise StackError("npm is needed once to fetch axe-core: apt-get install -y npm")
        log(f"fetching axe-core {AXE_CORE_VERSION} from npm into {base} (once)")
        with tempfile.TemporaryDirectory(dir=base, prefix="pack-") as tmp:
            folder = Path(tmp)
            run_command([npm, "pack", f"axe-core@{AXE_CORE_VERSION}", "--pack-destination", str(folder)],
                        env={**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false"},
                        cwd=folder, timeout=600)
            content = _read_axe_script(folder)
            partial = folder / "axe.min.js"
            partial.write_bytes(content)
            partial.replace(script)
        digest = hashlib.sha256(content).hexdigest()
        (base / ".complete").write_text(f"axe-core {AXE_CORE_VERSION} (npm)\nsha256 {digest}  axe.min.js\n")
        log(f"axe-core ready ({len(content)} bytes)")
    return script


def _read_axe_script(folder: Path) -> bytes:
    """``package/axe.min.js`` out of the one tarball `npm pack` left in `folder`, checked to be
    the pinned release (its banner names the version)."""
    tarballs = sorted(folder.glob("axe-core-*.tgz"))
    if len(tarballs) != 1:
        raise StackError(f"npm pack left {[t.name for t in tarballs]} in {folder}, not one axe-core tarball")
    with tarfile.open(tarballs[0], "r:gz") as archive:
        member = archive.extractfile("package/axe.min.js")
        if member is None:
            raise StackError(f"{tarballs[0].name} has no package/axe.min.js")
        content = member.read()
    if f"axe v{AXE_CORE_VERSION}".encode() not in content[:300]:
        raise StackError(f"{tarballs[0].name}'s axe.min.js does not name axe v{AXE_CORE_VERSION} in its banner")
    return content


def prepare() -> dict[str, str]:
    """Fetch the Kafka jars and axe-core, install PostgreSQL, Prometheus, Chromium and a Chinese
    font where missing.

    Returns where each part is (name -> folder or binary), for the one line ``prepare``
    prints; a part already there is found, not touched.
    """
    return {
        "Kafka jars": str(ensure_kafka_jars()),
        "PostgreSQL": str(ensure_postgres_installed()),
        "Prometheus": ensure_prometheus_installed(),
        "Chromium": str(ensure_chromium()),
        "Chinese font": ensure_chinese_font(),
        "axe-core": str(ensure_axe_core()),
    }
