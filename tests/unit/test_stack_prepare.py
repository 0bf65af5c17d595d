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

from deploy.stack import KafkaNode, PostgresNode, PrometheusNode, StackError, cli, free_ports, host, postgres

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
    assert _python(code, tmp_path) == "False [] ['shared', 'shared.kafka_credentials']"


def test_prepare_runs_nothing_when_everything_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    commands: list[list[str]] = []
    monkeypatch.setattr(host, "run_command", lambda argv, **_: commands.append(list(argv)))
    monkeypatch.setattr(host, "kafka_jars_ready", lambda: True)
    monkeypatch.setattr(host, "find_postgres_bindir", lambda: Path("/usr/lib/postgresql/15/bin"))
    monkeypatch.setattr(host, "find_prometheus", lambda: "/usr/bin/prometheus")
    found = host.prepare()
    assert commands == []
    assert found["PostgreSQL"] == "/usr/lib/postgresql/15/bin" and found["Prometheus"] == "/usr/bin/prometheus"


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


def test_up_on_a_bare_machine_starts_nothing_and_names_make_prepare(
        bare_machine: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PETITION_RUN_DIR", str(bare_machine / "run"))
    assert cli.main(["up"]) == 1
    assert "make prepare" in capsys.readouterr().err
    assert list((bare_machine / "run").iterdir()) == []  # the run folder `up` made, left empty
