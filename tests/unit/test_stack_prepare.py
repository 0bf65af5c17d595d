"""The local stack's package: imported as installed, and only `make prepare` changes the machine.

Starting a stack (`make up`) or a test's broker and database must find what is installed and
fail naming `make prepare` when something is missing, never install it; `make down` and
`make status` run with the system Python, so the package imports only the standard library.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deploy.stack import KafkaNode, PostgresNode, PrometheusNode, StackError, browser, cli, free_ports, host, postgres

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_stack_imports_from_the_installed_package_anywhere(tmp_path: Path) -> None:
    code = ("import deploy.stack, deploy.stack.pytest_plugin, deploy.demo, deploy.grafana.check_panels\n"
            "print(deploy.stack.__file__)")
    assert Path(_python(code, tmp_path)) == REPO / "deploy" / "stack" / "__init__.py"


def test_only_prepare_reaches_the_code_that_changes_the_machine(tmp_path: Path) -> None:
    """`up`, `down`, `status` and the fixtures load neither deploy.stack.host nor a third-party module
    (of shared, only the standard-library module of the broker's password files)."""
    code = ("import sys\n"
            "before = set(sys.modules)\n"
            "import deploy.stack.cli, deploy.stack.testinfra\n"
            "loaded = {m.split('.')[0] for m in set(sys.modules) - before}\n"
            "shared = sorted(m for m in sys.modules if m.startswith('shared'))\n"
            "third = sorted(loaded - set(sys.stdlib_module_names) - {'deploy', 'shared'})\n"
            "print('deploy.stack.host' in sys.modules, third, shared)")
    assert _python(code, tmp_path) == "False [] ['shared', 'shared.kafka_credentials', 'shared.kafka_replication']"


def test_prepare_runs_nothing_when_everything_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    commands: list[list[str]] = []
    monkeypatch.setattr(host, "run_command", lambda argv, **_: commands.append(list(argv)))
    monkeypatch.setattr(host, "kafka_jars_ready", lambda: True)
    monkeypatch.setattr(host, "find_postgres_bindir", lambda: Path("/usr/lib/postgresql/15/bin"))
    monkeypatch.setattr(host, "find_prometheus", lambda: "/usr/bin/prometheus")
    monkeypatch.setattr(host, "find_chromium", lambda: Path("/usr/bin/chromium"))
    monkeypatch.setattr(host, "chinese_fonts", lambda: ["/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"])
    monkeypatch.setattr(host, "axe_script_ready", lambda: True)
    found = host.prepare()
    assert commands == []
    assert found["PostgreSQL"] == "/usr/lib/postgresql/15/bin" and found["Prometheus"] == "/usr/bin/prometheus"
    assert found["Chromium"] == "/usr/bin/chromium" and found["Chinese font"].endswith("NotoSansCJK-Regular.ttc")
    assert found["axe-core"].endswith(f"axe-core-{browser.AXE_CORE_VERSION}/axe.min.js")


def test_prepare_installs_chromium_and_a_chinese_font_only_where_missing(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    installed: list[tuple[str, ...]] = []
    chromium: list[Path] = []
    fonts: list[str] = []

    def apt_install(*packages: str) -> None:
        installed.append(packages)
        if "chromium" in packages:
            chromium.append(Path("/usr/bin/chromium"))
        if browser.CJK_FONT_PACKAGE in packages:
            fonts.append("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")

    monkeypatch.setattr(host, "apt_install", apt_install)
    monkeypatch.setattr(host, "find_chromium", lambda: chromium[0] if chromium else None)
    monkeypatch.setattr(host, "chinese_fonts", lambda: list(fonts))
    (tmp_path / "fc-list").write_text("#!/bin/sh\n")
    (tmp_path / "fc-list").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert host.ensure_chromium() == Path("/usr/bin/chromium")
    assert host.ensure_chinese_font().endswith(".ttc")
    assert installed == [("chromium",), (browser.CJK_FONT_PACKAGE,)]
    host.ensure_chromium()
    host.ensure_chinese_font()
    assert len(installed) == 2  # found the second time, not installed again


FAKE_NPM = """#!/bin/sh
# npm pack axe-core@<version> --pack-destination <folder>: the tarball of $FAKE_PACKAGE
echo "$@" >> "$FAKE_NPM_CALLS"
tar -czf "$4/axe-core-$FAKE_VERSION.tgz" -C "$FAKE_PACKAGE" package
"""


@pytest.fixture
def fake_npm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An `npm` on PATH whose `pack` writes a tarball with the axe.min.js of ``package/`` under the
    returned folder; it logs its calls to ``<folder>/calls``."""
    bin_dir, package = tmp_path / "bin", tmp_path / "npm-package"
    bin_dir.mkdir()
    (package / "package").mkdir(parents=True)
    (bin_dir / "npm").write_text(FAKE_NPM)
    (bin_dir / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("PETITION_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FAKE_PACKAGE", str(package))
    monkeypatch.setenv("FAKE_VERSION", browser.AXE_CORE_VERSION)
    monkeypatch.setenv("FAKE_NPM_CALLS", str(tmp_path / "calls"))
    return tmp_path


def test_axe_core_is_fetched_once_with_npm_pack_and_only_its_script_is_kept(fake_npm: Path) -> None:
    script = f"/*! axe v{browser.AXE_CORE_VERSION}\n * Copyright (c) Deque Systems */\nwindow.axe = {{}};\n"
    (fake_npm / "npm-package" / "package" / "axe.min.js").write_text(script)
    (fake_npm / "npm-package" / "package" / "README.md").write_text("not kept")
    assert not browser.axe_script_ready()
    with pytest.raises(StackError, match="make prepare"):
        browser.require_axe_script()
    path = host.ensure_axe_core()
    assert path.read_text() == script and browser.require_axe_script() == path
    calls = (fake_npm / "calls").read_text().splitlines()
    assert [c.split()[:3] for c in calls] == [["pack", f"axe-core@{browser.AXE_CORE_VERSION}", "--pack-destination"]]
    assert sorted(p.name for p in path.parent.iterdir()) == [".complete", ".lock", "axe.min.js"]
    assert "sha256 " in (path.parent / ".complete").read_text()
    host.ensure_axe_core()
    assert len((fake_npm / "calls").read_text().splitlines()) == 1  # once: the marker says complete


def test_an_axe_core_tarball_of_another_release_is_refused_and_nothing_is_marked_complete(fake_npm: Path) -> None:
    (fake_npm / "npm-package" / "package" / "axe.min.js").write_text("/*! axe v3.0.0 */ window.axe = {};")
    with pytest.raises(StackError, match=f"does not name axe v{browser.AXE_CORE_VERSION}"):
        host.ensure_axe_core()
    assert not browser.axe_script_ready()
    assert sorted(p.name for p in browser.axe_cache_dir().iterdir()) == [".lock"]


@pytest.fixture
def bare_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No Kafka jars in the cache, no PostgreSQL server, nothing on PATH (so no apt, no mvn)."""
    monkeypatch.setenv("PETITION_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    monkeypatch.setattr(postgres, "find_postgres_bindir", lambda: None)
    return tmp_path


def test_starting_a_server_on_a_bare_machine_names_make_prepare(bare_machine: Path) -> None:
    kafka_port, controller_port, pg_port, prom_port = free_ports(4)
    nodes: list[KafkaNode | PostgresNode | PrometheusNode] = [
        KafkaNode(kafka_port, controller_port, bare_machine / "kafka", bare_machine / "secrets"),
        PostgresNode(pg_port, bare_machine / "postgres"),
        PrometheusNode(prom_port, bare_machine / "prometheus", bare_machine / "prometheus.yml"),
    ]
    for node in nodes:
        with pytest.raises(StackError, match="make prepare"):
            node.start()
    assert not (bare_machine / "cache").exists()  # nothing fetched


def test_the_browser_tests_on_a_bare_machine_find_nothing_and_name_make_prepare(
        bare_machine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", bare_machine / "no-chromium")
    for require in (browser.require_chromium, browser.require_axe_script, browser.require_chinese_font):
        with pytest.raises(StackError, match="make prepare"):
            require()
    assert not (bare_machine / "cache").exists()


def test_up_on_a_bare_machine_starts_nothing_and_names_make_prepare(
        bare_machine: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PETITION_RUN_DIR", str(bare_machine / "run"))
    assert cli.main(["up"]) == 1
    assert "make prepare" in capsys.readouterr().err
    assert list((bare_machine / "run").iterdir()) == []  # the run folder `up` made, left empty
