#!/usr/bin/env python3
"""Local stack for the petition routing platform: Kafka, PostgreSQL, Prometheus, services.

Two users share this module:

* ``make up`` / ``make down`` / ``make status`` run it as a script with the default
  ports (9092/9093, 5432, 9090, 8080-8083) and data under ``<repo>/.run``.
* The integration tests import it (``sys.path.insert(0, "deploy"); import localstack``)
  and start their own Kafka and PostgreSQL on free ports in their own folders, so a
  test run never touches a stack started by ``make up``.

Design choices, and why:

* There is no Docker here. Kafka comes from Maven Central jars (see deploy/kafka/pom.xml),
  cached outside the repo once, so later starts work offline. PostgreSQL and Prometheus
  come from Debian packages, installed on demand.
* Every process is started detached in its own session and recorded in a PID file, so
  ``down`` stops exactly what ``up`` started, also from another shell. Before signalling a
  PID we check /proc/<pid>/cmdline, so a stale PID file never kills a stranger.
* Only the standard library is used at import time; kafka-python (in the project venv) is
  imported lazily for the Kafka readiness check.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY_DIR = REPO_ROOT / "deploy"
KAFKA_DEPLOY_DIR = DEPLOY_DIR / "kafka"
PROMETHEUS_DEPLOY_DIR = DEPLOY_DIR / "prometheus"

#: Must match <kafka.version> in deploy/kafka/pom.xml; it names the jar cache folder.
KAFKA_VERSION = "4.1.2"

#: The long-running application services, in start order: (name, port env var).
SERVICES: tuple[tuple[str, str], ...] = (
    ("intake", "PETITION_HTTP_PORT"),
    ("router", "PETITION_ROUTER_PORT"),
    ("escalation", "PETITION_ESCALATION_PORT"),
)

#: Environment variables understood by the CLI, with their defaults.
DEFAULTS: dict[str, str] = {
    "PETITION_RUN_DIR": ".run",
    "PETITION_KAFKA_PORT": "9092",
    "PETITION_KAFKA_CONTROLLER_PORT": "9093",
    "PETITION_PG_PORT": "5432",
    "PETITION_PROMETHEUS_PORT": "9090",
    "PETITION_HTTP_PORT": "8080",
    "PETITION_ROUTER_PORT": "8081",
    "PETITION_ESCALATION_PORT": "8082",
    "PETITION_INTAKE_WORKER_PORT": "8083",
}


class StackError(RuntimeError):
    """A part of the local stack could not be installed, started or reached."""


# --------------------------------------------------------------------------- helpers


def log(msg: str) -> None:
    """Progress messages go to stderr so stdout stays clean for the summary table."""
    print(f"[localstack] {msg}", file=sys.stderr, flush=True)


def is_root() -> bool:
    return os.geteuid() == 0


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port (we can bind it ourselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_ports(count: int) -> list[int]:
    """Ask the kernel for `count` distinct free ports (bind to port 0).

    All sockets stay open until every port is chosen so the same port is never handed
    out twice; there is an unavoidable small race between closing and the server binding.
    """
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tail(path: Path, lines: int = 40) -> str:
    """Last lines of a log file, for error messages (empty string if missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def pid_alive(pid: int) -> bool:
    """True when `pid` exists and is not a zombie.

    A child we started in this Python process shows up as a zombie after it died until
    it is reaped; treating zombies as dead keeps is_running()/stop() honest in tests.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        state = stat.rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def proc_cmdline(pid: int) -> list[str] | None:
    """argv of a running process from /proc, or None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:
        return None
    return raw.rstrip(b"\0").decode("utf-8", "replace").split("\0")


def read_pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _run(argv: Sequence[str], *, check: bool = True, env: Mapping[str, str] | None = None,
         timeout: float | None = 600, log_file: Path | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a short-lived command, capturing output (or appending it to `log_file`).

    `log_file` matters for commands that leave a daemon behind (pg_ctl start): a daemon
    inheriting our capture pipe would make us wait forever for EOF.
    """
    proc: subprocess.CompletedProcess[Any]
    if log_file is not None:
        with open(log_file, "ab") as out:
            proc = subprocess.run(list(argv), check=False, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, env=dict(env) if env else None,
                                  timeout=timeout, cwd=cwd)
        output = tail(log_file, 30)
    else:
        proc = subprocess.run(list(argv), check=False, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, env=dict(env) if env else None, timeout=timeout,
                              cwd=cwd)
        output = (proc.stdout or "") + (proc.stderr or "")
    if check and proc.returncode != 0:
        raise StackError(f"command failed ({proc.returncode}): {' '.join(argv)}\n{output}")
    proc.output = output  # type: ignore[union-attr]  # callers read the combined output here
    return proc


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
        _run(["apt-get", "update"], env=env, timeout=900)
        _apt_updated = True
    log(f"apt-get install -y {' '.join(packages)}")
    _run(["apt-get", "install", "-y", "--no-install-recommends",
          "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
          *packages], env=env, timeout=1800)


# --------------------------------------------------------------------- process control


class ServiceProcess:
    """A long-running process started detached, tracked by a PID file.

    stdout+stderr are appended to ``<run_dir>/logs/<name>.log``, the PID is written to
    ``<run_dir>/pids/<name>.pid``. The process gets its own session (process group) so
    ``stop()`` can signal it together with any children, and so Ctrl-C in the shell that
    ran ``make up`` does not take it down.
    """

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
                 run_dir: Path | str = ".", cwd: Path | str | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.env = dict(env) if env is not None else None
        self.run_dir = Path(run_dir)
        self.cwd = Path(cwd) if cwd is not None else None
        self.log_file = self.run_dir / "logs" / f"{name}.log"
        self.pid_file = self.run_dir / "pids" / f"{name}.pid"
        self._popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        """PID from the PID file if that process is alive and is really ours."""
        pid = read_pid_file(self.pid_file)
        if pid is None or not pid_alive(pid):
            return None
        # A reused PID belongs to a stranger: its argv will differ from ours.
        if proc_cmdline(pid) != self.argv:
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid is not None

    def start(self) -> int:
        """Start the process unless it already runs; returns its PID."""
        existing = self.pid
        if existing is not None:
            return existing
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting "
                      f"{' '.join(self.argv)}\n".encode())
            out.flush()
            self._popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=self.env, cwd=self.cwd, start_new_session=True, close_fds=True)
        self.pid_file.write_text(f"{self._popen.pid}\n")
        return self._popen.pid

    def exited(self) -> bool:
        """True when a process started by this object has already died."""
        if self._popen is not None:
            return self._popen.poll() is not None
        return not self.is_running()

    def _reap(self) -> None:
        if self._popen is not None:
            self._popen.poll()

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM the process group, wait up to `timeout`, then SIGKILL.

        Returns True when something was stopped. The PID file is removed either way.
        """
        pid = self.pid
        stopped = False
        if pid is not None:
            stopped = True
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                self._reap()
                if not pid_alive(pid):
                    break
                time.sleep(0.1)
            else:
                log(f"{self.name} (pid {pid}) ignored SIGTERM for {timeout:.0f}s; SIGKILL")
                _signal_group(pid, signal.SIGKILL)
                for _ in range(50):
                    self._reap()
                    if not pid_alive(pid):
                        break
                    time.sleep(0.1)
            # Children left in the group (the leader is gone) get no second chance.
            _signal_group(pid, signal.SIGKILL)
        self._reap()
        self.pid_file.unlink(missing_ok=True)
        return stopped


def _signal_group(pgid: int, sig: int) -> None:
    """Signal a whole process group; a group that no longer exists is fine.

    Safe against PID reuse: Linux never hands out a PID that is still in use as a
    process group id, and callers only pass the PID of a verified leader.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# ------------------------------------------------------------------------------ Kafka


def kafka_cache_dir() -> Path:
    """Folder holding this Kafka version's jars (outside the repo, shared by checkouts)."""
    base = os.environ.get("PETITION_CACHE_DIR") or str(Path.home() / ".cache" / "petition-platform")
    return Path(base) / f"kafka-{KAFKA_VERSION}"


def ensure_kafka_jars() -> Path:
    """Return the folder with the broker's runtime jars, fetching them once with Maven.

    A marker file written after a successful copy means "complete": from then on Maven
    is never called again, so later runs start offline. Copies go to a temporary folder
    renamed into place, and a file lock serialises concurrent callers (parallel tests).
    """
    base = kafka_cache_dir()
    libs = base / "libs"
    marker = base / ".complete"
    if marker.exists() and libs.is_dir():
        return libs
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and libs.is_dir():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError("Maven (mvn) is needed once to fetch the Kafka jars: "
                             "apt-get install -y maven")
        tmp = base / f"libs.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"fetching Kafka {KAFKA_VERSION} jars with Maven into {libs} (once)")
        started = time.monotonic()
        _run([mvn, "-q", "-B", "-f", str(KAFKA_DEPLOY_DIR / "pom.xml"),
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


def _kafka_uuid() -> str:
    """A random Kafka Uuid (22 chars, URL-safe base64 of 16 bytes, no padding).

    Generated here rather than with `StorageTool random-uuid`, which would cost one more
    JVM start (~1-2 s) on every fresh node. Never starts with '-': StorageTool's argument
    parser would read such an id as an option.
    """
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):
            return value


class KafkaNode:
    """A single-node KRaft Kafka (broker + controller in one JVM) on 127.0.0.1.

    Everything lives in `data_dir`: server.properties, the cluster id, the log dirs,
    ``logs/server.log`` (log4j) and ``logs/kafka.log`` (console), ``pids/kafka.pid``.
    Starting again on an existing `data_dir` keeps the data (format is skipped).
    """

    def __init__(self, port: int, controller_port: int, data_dir: Path | str,
                 heap: str = "1g", extra_properties: Mapping[str, str] | None = None):
        self.port = int(port)
        self.controller_port = int(controller_port)
        self.data_dir = Path(data_dir).resolve()
        self.heap = heap
        self.extra_properties = dict(extra_properties or {})
        self.config_file = self.data_dir / "server.properties"
        self.log_dirs = self.data_dir / "data"
        self.cluster_id_file = self.data_dir / "cluster.id"
        self._process: ServiceProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def properties(self) -> dict[str, str]:
        """The broker configuration, tuned for one node and fast startup."""
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.log_dirs),
            "num.partitions": "6",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            # One node: every internal topic must live with a single replica.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "6",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": "6",
            # Consumers join at once instead of waiting 3 s for more members.
            "group.initial.rebalance.delay.ms": "0",
            # Topics are created on purpose (petitionctl topics ensure), never by a typo.
            "auto.create.topics.enable": "false",
            "delete.topic.enable": "true",
            "log.retention.hours": "168",
        }
        props.update(self.extra_properties)
        return props

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lines = ["# Generated by deploy/localstack.py; rewritten on every start."]
        lines += [f"{k}={v}" for k, v in self.properties().items()]
        self.config_file.write_text("\n".join(lines) + "\n")

    def _java_argv(self, main_class: str, *args: str) -> list[str]:
        # No fetch here: status/stop build this argv too and must never call Maven.
        libs = kafka_cache_dir() / "libs"
        java = shutil.which("java") or "java"
        return [
            java, f"-Xmx{self.heap}", f"-Xms{min(self.heap, '256m', key=_heap_bytes)}",
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
            f"-Dlog4j2.configurationFile={KAFKA_DEPLOY_DIR / 'log4j2.properties'}",
            "-cp", f"{libs}/*", main_class, *args,
        ]

    def format_storage(self) -> None:
        """Format the KRaft log dir once; the cluster id is kept in data_dir/cluster.id."""
        if (self.log_dirs / "meta.properties").exists():
            return
        if self.cluster_id_file.exists():
            cluster_id = self.cluster_id_file.read_text().strip()
        else:
            cluster_id = _kafka_uuid()
            self.cluster_id_file.write_text(cluster_id + "\n")
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        _run(self._java_argv("kafka.tools.StorageTool", "format", "--ignore-formatted",
                             "--cluster-id", cluster_id, "-c", str(self.config_file)),
             log_file=self.data_dir / "logs" / "format.log", timeout=120)

    def _service(self) -> ServiceProcess:
        if self._process is None:
            self._process = ServiceProcess(
                "kafka", self._java_argv("kafka.Kafka", str(self.config_file)),
                env=os.environ.copy(), run_dir=self.data_dir, cwd=self.data_dir)
        return self._process

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "kafka.log"

    @property
    def pid(self) -> int | None:
        return self._service().pid

    def is_running(self) -> bool:
        return self._service().is_running()

    def start(self) -> bool:
        """Start the broker detached. Returns False when it was already running."""
        if self.is_running():
            return False
        for p in (self.port, self.controller_port):
            if not port_is_free(p):
                raise StackError(f"Kafka: port {p} is already in use by another process")
        ensure_kafka_jars()
        self.write_config()
        self.format_storage()
        self._process = None  # rebuild argv from the (possibly new) config
        self._service().start()
        return True

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until a metadata round trip succeeds and the broker lists itself.

        An open port is not enough: the broker accepts connections before it is
        unfenced, and topic creation fails until then.
        """
        from kafka import KafkaAdminClient  # lazy: only the venv has kafka-python

        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not self.is_running():
                raise StackError(f"Kafka exited during startup; see {self.log_file} and "
                                 f"{self.data_dir / 'logs' / 'server.log'}\n"
                                 f"{tail(self.data_dir / 'logs' / 'server.log', 30)}\n"
                                 f"{tail(self.log_file, 20)}")
            if port_accepts(self.port):
                admin = None
                try:
                    admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                             client_id="localstack-ready",
                                             request_timeout_ms=5000)
                    admin.list_topics()
                    brokers = admin.describe_cluster().get("brokers") or []
                    if brokers:
                        return
                except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                    last_error = exc
                finally:
                    if admin is not None:
                        with contextlib.suppress(Exception):  # closing a half-open client: nothing to do
                            admin.close()
            time.sleep(0.3)
        raise StackError(f"Kafka on {self.bootstrap} not ready after {timeout:.0f}s "
                         f"(last error: {last_error!r}); see {self.data_dir / 'logs'}")

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM (controlled shutdown) and wait; SIGKILL after `timeout`."""
        return self._service().stop(timeout=timeout)


def _heap_bytes(size: str) -> int:
    """'512m' -> bytes, so heap sizes can be compared."""
    m = re.fullmatch(r"(\d+)([kKmMgG]?)", size.strip())
    if not m:
        raise ValueError(f"bad heap size {size!r}")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(m.group(1)) * mult


# ------------------------------------------------------------------------- PostgreSQL

_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _ident(name: str) -> str:
    """Validate a role/database name so it can go into SQL unquoted-safe."""
    if not _IDENT.fullmatch(name):
        raise ValueError(f"invalid PostgreSQL identifier {name!r} (use [a-z_][a-z0-9_]*)")
    return name


def find_postgres_bindir() -> Path | None:
    """Newest /usr/lib/postgresql/<ver>/bin holding initdb and pg_ctl, or None."""
    found = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bindir = Path(initdb).parent
        if (bindir / "pg_ctl").exists():
            try:
                found.append((float(bindir.parent.name), bindir))
            except ValueError:
                continue
    return max(found)[1] if found else None


def _debian_clusters() -> list[dict[str, str]]:
    """Clusters managed by postgresql-common (pg_lsclusters), empty if unavailable."""
    if shutil.which("pg_lsclusters") is None:
        return []
    proc = _run(["pg_lsclusters", "--no-header"], check=False)
    clusters = []
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            clusters.append({"version": parts[0], "name": parts[1], "port": parts[2],
                             "status": parts[3]})
    return clusters


def _disable_debian_clusters() -> None:
    """Stop the clusters the Debian package created and keep them from autostarting.

    The package's own `main` cluster listens on 5432, our default port. We never use
    it: we run our own data folder with initdb/pg_ctl. start.conf=manual keeps it from
    coming back on the next boot.
    """
    for c in _debian_clusters():
        if c["status"].startswith("online"):
            log(f"stopping Debian's own PostgreSQL cluster {c['version']}/{c['name']} "
                f"on port {c['port']} (we run our own)")
            _run(["pg_ctlcluster", c["version"], c["name"], "stop"], check=False)
        start_conf = Path(f"/etc/postgresql/{c['version']}/{c['name']}/start.conf")
        if start_conf.exists() and start_conf.read_text().strip().splitlines()[-1:] != ["manual"]:
            start_conf.write_text("# set by petition deploy/localstack.py: not used by the "
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


def _ensure_traversable(path: Path) -> None:
    """Let the `postgres` user reach `path`: add o+x (traverse only) on ancestors lacking it.

    pytest's tmp folders live under /tmp/pytest-of-root (mode 0700), and the server runs
    as `postgres`, which could not even reach its data folder there. Execute-only for
    others lists nothing and reads nothing; it only allows walking through.
    """
    for parent in reversed(path.resolve().parents):
        st = parent.stat()
        if not st.st_mode & 0o001:
            os.chmod(parent, st.st_mode | 0o001)


class PostgresNode:
    """A private PostgreSQL server: own data folder, 127.0.0.1 only, trust auth on loopback.

    Layout under `data_dir` (owned by `postgres` when we are root, because the server
    refuses to run as root): ``pgdata/`` (the cluster), ``postgres.log``, and the unix
    socket. `fast=True` trades crash safety for speed (tests only).
    """

    SUPERUSER = "postgres"

    def __init__(self, port: int, data_dir: Path | str, fast: bool = False):
        self.port = int(port)
        self.data_dir = Path(data_dir).resolve()
        self.fast = fast
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.data_dir / "postgres.log"
        self._bindir: Path | None = None

    # -- plumbing
    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = ensure_postgres_installed()
        return self._bindir

    def _as_server_user(self, argv: Sequence[str]) -> list[str]:
        """Prefix a command so it runs as `postgres` when we are root."""
        if is_root():
            return ["runuser", "-u", "postgres", "--", *argv]
        return list(argv)

    def _socket_dir(self) -> str:
        """Unix socket inside data_dir, unless that path is too long for a socket.

        sun_path holds 107 bytes; deep pytest folders can exceed it, and then we go
        TCP-only (every client here connects to 127.0.0.1 anyway).
        """
        if len(str(self.data_dir)) + len("/.s.PGSQL.65535") < 100:
            return str(self.data_dir)
        return ""

    def dsn_for(self, database: str = "petition", user: str = "petition") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    @property
    def dsn(self) -> str:
        """DSN of the application database."""
        return self.dsn_for()

    # -- lifecycle
    def _prepare_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if is_root():
            _ensure_traversable(self.data_dir)
            shutil.chown(self.data_dir, "postgres", "postgres")
        os.chmod(self.data_dir, 0o700)
        if not (self.pgdata / "PG_VERSION").exists():
            log(f"initdb {self.pgdata}")
            _run(self._as_server_user([
                str(self.bindir / "initdb"), "-D", str(self.pgdata), "--auth=trust",
                f"--username={self.SUPERUSER}", "-E", "UTF8", "--locale=C.UTF-8",
                *(["--no-sync"] if self.fast else [])]), timeout=300)
            with open(self.pgdata / "postgresql.conf", "a") as conf:
                conf.write("\n# petition platform: per-start settings\n"
                           "include_if_exists = 'petition.conf'\n")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self._socket_dir()}'",
            "max_connections": "200",
            "log_min_messages": "warning",
        }
        if self.fast:
            settings.update({"fsync": "off", "synchronous_commit": "off",
                             "full_page_writes": "off"})
        (self.pgdata / "petition.conf").write_text(
            "# Generated by deploy/localstack.py on every start.\n"
            + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        if is_root():
            shutil.chown(self.pgdata / "petition.conf", "postgres", "postgres")

    def is_running(self) -> bool:
        """True when our cluster's postmaster runs (pg_ctl status reads postmaster.pid)."""
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        proc = _run(self._as_server_user([str(self.bindir / "pg_ctl"), "status",
                                          "-D", str(self.pgdata)]), check=False)
        return proc.returncode == 0

    @property
    def pid(self) -> int | None:
        return read_pid_file(self.pgdata / "postmaster.pid") if self.is_running() else None

    def start(self) -> bool:
        """Start the server and wait until it accepts connections. False if already up."""
        if self.is_running():
            return False
        if not port_is_free(self.port):
            hint = ""
            if any(c["port"] == str(self.port) and c["status"].startswith("online")
                   for c in _debian_clusters()):
                hint = (" (Debian's own cluster is running there: "
                        "pg_ctlcluster <version> main stop)")
            raise StackError(f"PostgreSQL: port {self.port} is already in use{hint}")
        self._prepare_dir()
        if is_root():
            self.log_file.touch()
            shutil.chown(self.log_file, "postgres", "postgres")
        _run(self._as_server_user([str(self.bindir / "pg_ctl"), "start", "-D", str(self.pgdata),
                                   "-l", str(self.log_file), "-w", "-t", "60"]),
             log_file=self.data_dir / "pg_ctl.log", check=False)
        if not self.is_running():
            raise StackError(f"PostgreSQL failed to start; see {self.log_file}\n"
                             f"{tail(self.log_file, 30)}")
        return True

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until pg_isready says the server accepts connections on 127.0.0.1."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = _run([str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1",
                         "-p", str(self.port), "-t", "2"], check=False)
            if proc.returncode == 0:
                return
            if not self.is_running():
                raise StackError(f"PostgreSQL is not running; see {self.log_file}\n"
                                 f"{tail(self.log_file, 30)}")
            time.sleep(0.2)
        raise StackError(f"PostgreSQL on port {self.port} not ready after {timeout:.0f}s")

    def stop(self, timeout: float = 60.0) -> bool:
        """pg_ctl stop -m fast (rolls back open transactions, shuts down cleanly)."""
        if not self.is_running():
            return False
        _run(self._as_server_user([str(self.bindir / "pg_ctl"), "stop", "-D", str(self.pgdata),
                                   "-m", "fast", "-w", "-t", str(int(timeout))]),
             log_file=self.data_dir / "pg_ctl.log", check=False)
        if self.is_running():
            raise StackError(f"PostgreSQL in {self.pgdata} did not stop")
        return True

    # -- SQL
    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over TCP and return the unaligned output."""
        proc = _run([str(self.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA",
                     "-h", "127.0.0.1", "-p", str(self.port), "-U", self.SUPERUSER,
                     "-d", database, "-c", sql],
                    env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
        return proc.stdout.strip()

    def ensure_role(self, user: str = "petition") -> None:
        """Create a LOGIN role without password (trust auth on loopback), idempotently."""
        user = _ident(user)
        self.psql(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}') "
                  f"THEN CREATE ROLE {user} LOGIN; END IF; END $$;")

    def ensure_database(self, name: str = "petition", user: str = "petition") -> str:
        """Create role `user` and database `name` owned by it, if missing. Returns the DSN."""
        name, user = _ident(name), _ident(user)
        self.ensure_role(user)
        if not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
            self.psql(f"CREATE DATABASE {name} OWNER {user}")
        return self.dsn_for(name, user)

    def create_database(self, name: str, user: str = "petition") -> str:
        """Create a fresh, empty database (dropping an old one of that name). Returns the DSN."""
        name, user = _ident(name), _ident(user)
        self.ensure_role(user)
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.psql(f"CREATE DATABASE {name} OWNER {user}")
        return self.dsn_for(name, user)


# ------------------------------------------------------------------------- Prometheus


def find_prometheus() -> str | None:
    return shutil.which("prometheus")


def _stop_package_daemons(names: Iterable[str]) -> None:
    """Stop daemons that a Debian package started on install, and disable autostart.

    The prometheus package's postinst starts its own daemon on :9090 (our default port)
    when service starts are allowed (no policy-rc.d). We run our own instance instead.
    """
    for name in names:
        init = Path(f"/etc/init.d/{name}")
        if shutil.which("systemctl") and Path("/run/systemd/system").exists():
            _run(["systemctl", "disable", "--now", name], check=False)
        elif init.exists():
            _run([str(init), "stop"], check=False)
            if shutil.which("update-rc.d"):
                _run(["update-rc.d", name, "disable"], check=False)
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


def render_prometheus_config(dest: Path, ports: Mapping[str, str | int]) -> Path:
    """Write the effective Prometheus config from deploy/prometheus/prometheus.yml.

    `ports` maps PETITION_*_PORT names to numbers; missing ones take the defaults.
    Rule files are referenced by absolute path so the config works from the run folder.
    """
    values = {k: str(v) for k, v in DEFAULTS.items()}
    values.update({k: str(v) for k, v in ports.items()})
    values["RULES_DIR"] = str(PROMETHEUS_DEPLOY_DIR / "rules")
    text = string.Template((PROMETHEUS_DEPLOY_DIR / "prometheus.yml").read_text())
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("# Generated by deploy/localstack.py from deploy/prometheus/prometheus.yml\n"
                    + text.substitute(values))
    return dest


class PrometheusNode:
    """Our own Prometheus on 127.0.0.1:`port`, TSDB and logs under `data_dir`."""

    def __init__(self, port: int, data_dir: Path | str, config_file: Path | str):
        self.port = int(port)
        self.data_dir = Path(data_dir).resolve()
        self.config_file = Path(config_file).resolve()
        self._process: ServiceProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _service(self) -> ServiceProcess:
        if self._process is None:
            binary = find_prometheus() or "/usr/bin/prometheus"
            self._process = ServiceProcess("prometheus", [
                binary, f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=7d",
            ], env=os.environ.copy(), run_dir=self.data_dir, cwd=self.data_dir)
        return self._process

    @property
    def log_file(self) -> Path:
        return self._service().log_file

    @property
    def pid(self) -> int | None:
        return self._service().pid

    def is_running(self) -> bool:
        return self._service().is_running()

    def start(self) -> bool:
        if self.is_running():
            return False
        ensure_prometheus_installed()
        self._process = None
        if not port_is_free(self.port):
            raise StackError(f"Prometheus: port {self.port} is already in use")
        self._service().start()
        return True

    def is_ready(self) -> bool:
        return http_ok(f"{self.url}/-/ready")

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_ready():
                return
            if not self.is_running():
                raise StackError(f"Prometheus exited; see {self.log_file}\n{tail(self.log_file)}")
            time.sleep(0.3)
        raise StackError(f"Prometheus not ready after {timeout:.0f}s; see {self.log_file}")

    def stop(self, timeout: float = 20.0) -> bool:
        return self._service().stop(timeout=timeout)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when GET `url` answers 200 (no proxies: everything here is loopback)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


# ---------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class StackConfig:
    """Ports and folders of one stack, read from PETITION_* environment variables."""

    run_dir: Path
    kafka_port: int
    kafka_controller_port: int
    pg_port: int
    prometheus_port: int
    http_port: int
    router_port: int
    escalation_port: int
    intake_worker_port: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackConfig:
        env = os.environ if env is None else env

        def get(key: str) -> str:
            return env.get(key) or DEFAULTS[key]

        run_dir = Path(get("PETITION_RUN_DIR"))
        if not run_dir.is_absolute():
            run_dir = REPO_ROOT / run_dir
        return cls(run_dir=run_dir,
                   kafka_port=int(get("PETITION_KAFKA_PORT")),
                   kafka_controller_port=int(get("PETITION_KAFKA_CONTROLLER_PORT")),
                   pg_port=int(get("PETITION_PG_PORT")),
                   prometheus_port=int(get("PETITION_PROMETHEUS_PORT")),
                   http_port=int(get("PETITION_HTTP_PORT")),
                   router_port=int(get("PETITION_ROUTER_PORT")),
                   escalation_port=int(get("PETITION_ESCALATION_PORT")),
                   intake_worker_port=int(get("PETITION_INTAKE_WORKER_PORT")))

    def port_env(self) -> dict[str, str]:
        return {
            "PETITION_KAFKA_PORT": str(self.kafka_port),
            "PETITION_KAFKA_CONTROLLER_PORT": str(self.kafka_controller_port),
            "PETITION_PG_PORT": str(self.pg_port),
            "PETITION_PROMETHEUS_PORT": str(self.prometheus_port),
            "PETITION_HTTP_PORT": str(self.http_port),
            "PETITION_ROUTER_PORT": str(self.router_port),
            "PETITION_ESCALATION_PORT": str(self.escalation_port),
            "PETITION_INTAKE_WORKER_PORT": str(self.intake_worker_port),
        }

    def service_port(self, service: str) -> int:
        return {"intake": self.http_port, "router": self.router_port,
                "escalation": self.escalation_port}[service]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def dsn(self) -> str:
        return f"postgresql://petition@127.0.0.1:{self.pg_port}/petition"

    def kafka(self) -> KafkaNode:
        return KafkaNode(self.kafka_port, self.kafka_controller_port, self.run_dir / "kafka")

    def postgres(self) -> PostgresNode:
        return PostgresNode(self.pg_port, self.run_dir / "postgres")

    def prometheus(self) -> PrometheusNode:
        return PrometheusNode(self.prometheus_port, self.run_dir / "prometheus",
                              self.run_dir / "prometheus" / "prometheus.yml")


def ensure_hmac_key(run_dir: Path) -> str:
    """The HMAC key for the services: 32 random bytes (hex), created once, mode 600.

    Lives in <run_dir>/secrets/hmac.key, never in the repository.
    """
    path = run_dir / "secrets" / "hmac.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    os.chmod(path, 0o600)
    return path.read_text().strip()


def service_env(kafka_bootstrap: str, pg_dsn: str, hmac_key: str,
                ports: Mapping[str, str | int] | None = None,
                run_dir: Path | str | None = None,
                base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for the services and petitionctl (also used by the integration tests).

    Every service gets every port variable and picks its own; PYTHONPATH includes the
    repo so ``python -m services.<name>`` works from the run folder (the cwd, so that
    faust's ``./<app-id>-data`` folders land there and not in the repo).
    """
    env = dict(os.environ if base is None else base)
    env.update({k: v for k, v in DEFAULTS.items() if k.endswith("_PORT")})
    env.update({k: str(v) for k, v in (ports or {}).items()})
    env.update({
        "PETITION_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PETITION_PG_DSN": pg_dsn,
        "PETITION_HMAC_KEY": hmac_key,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(
            [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])),
    })
    if run_dir is not None:
        env["PETITION_RUN_DIR"] = str(run_dir)
    return env


def venv_bin(name: str) -> Path:
    return REPO_ROOT / ".venv" / "bin" / name


def service_process(name: str, env: Mapping[str, str], run_dir: Path) -> ServiceProcess:
    """The ServiceProcess for services/<name> (python -m services.<name>)."""
    return ServiceProcess(name, [str(venv_bin("python")), "-m", f"services.{name}"],
                          env=env, run_dir=run_dir, cwd=run_dir)


def service_exists(name: str) -> bool:
    return (REPO_ROOT / "services" / name / "__main__.py").exists()


def wait_http_ready(url: str, timeout: float, proc: ServiceProcess | None = None) -> bool:
    """Poll GET `url` until 200; gives up early when `proc` died.

    "Died" is judged by the process handle when we started it ourselves (exact), not by the
    PID file and /proc, which can briefly disagree while a sibling instance is being stopped.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_ok(url):
            return True
        if proc is not None and proc.exited():
            return False
        time.sleep(0.5)
    return False


# -------------------------------------------------------------------------------- CLI


def _run_steps(steps: Sequence[Sequence[str]], env: Mapping[str, str], cwd: Path) -> int:
    """Run short commands side by side (they touch different servers); 0 when all succeed."""
    procs = []
    for argv in steps:
        log(" ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv)))
        procs.append((argv, subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True, env=dict(env), cwd=cwd)))
    rc = 0
    for argv, proc in procs:
        try:
            output, _ = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        if proc.returncode != 0:
            print(output, file=sys.stderr)
            log(f"{' '.join(argv[1:])} failed ({proc.returncode})")
            rc = 1
    return rc


def wait_all_ready(waits: Mapping[str, tuple[str, float, ServiceProcess | None]],
                   interval: float = 0.1) -> dict[str, bool]:
    """Poll several ``/readyz`` URLs together until each answers 200, its own deadline
    passes or (for a process we started) it dies; name -> ready."""
    now = time.monotonic()
    pending = {name: (url, now + timeout, proc) for name, (url, timeout, proc) in waits.items()}
    ready: dict[str, bool] = {}
    while pending:
        for name, (url, deadline, proc) in list(pending.items()):
            if http_ok(url, timeout=1.0):
                ready[name] = True
            elif (proc is not None and proc.exited()) or time.monotonic() > deadline:
                ready[name] = False
            else:
                continue
            del pending[name]
        if pending:
            time.sleep(interval)
    return ready


#: how long `up` waits for a service it found running (started by an earlier `up`, maybe
#: still warming up) before calling it not ready; one it starts itself, or one that has to
#: reconnect to a broker or database `up` just restarted, gets `START_TIMEOUT`
RUNNING_GRACE = 5.0
START_TIMEOUT = 90.0


def cmd_up(cfg: StackConfig, infra_only: bool = False) -> int:
    """Start whatever part of the stack is not running; leave the running parts alone.

    Bringing one dead part back takes seconds: the infrastructure checks are single round
    trips when it runs, topic creation and migrations run side by side and do nothing when
    nothing is missing, and `up` waits only for the parts it started (a running part gets
    a short grace to answer ready, and is never restarted)."""
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    ensure_kafka_jars()
    ensure_postgres_installed()
    ensure_prometheus_installed()

    kafka, pg, prom = cfg.kafka(), cfg.postgres(), cfg.prometheus()
    render_prometheus_config(prom.config_file, cfg.port_env())

    kafka_started, pg_started = kafka.start(), pg.start()
    log("Kafka: " + ("starting" if kafka_started else "already running"))
    log("PostgreSQL: " + ("started" if pg_started else "already running"))
    log("Prometheus: " + ("starting" if prom.start() else "already running"))
    pg.wait_ready()
    pg.ensure_database()
    kafka.wait_ready()
    prom.wait_ready()
    log(f"infrastructure ready in {time.monotonic() - started:.1f}s")
    # services that kept running through a broker or database restart need time to reconnect
    grace = START_TIMEOUT if kafka_started or pg_started else RUNNING_GRACE

    env = service_env(cfg.bootstrap, cfg.dsn, ensure_hmac_key(cfg.run_dir), cfg.port_env(),
                      cfg.run_dir)
    rows = [("kafka", kafka.bootstrap), ("postgres", cfg.dsn), ("prometheus", prom.url)]
    if not infra_only:
        ctl = venv_bin("petitionctl")
        if ctl.exists():
            steps_started = time.monotonic()
            if _run_steps([[str(ctl), "topics", "ensure"], [str(ctl), "db", "migrate"]], env, cfg.run_dir):
                return 1
            log(f"topics and migrations checked in {time.monotonic() - steps_started:.1f}s")
        else:
            log(f"WARNING: {ctl} not found; skipping topic creation and migrations")

        waits: dict[str, tuple[str, float, ServiceProcess | None]] = {}
        procs: dict[str, ServiceProcess] = {}
        for name, _port_var in SERVICES:
            if not service_exists(name):
                log(f"WARNING: services/{name}/__main__.py missing; not starting {name}")
                continue
            proc = service_process(name, env, cfg.run_dir)
            url = f"http://127.0.0.1:{cfg.service_port(name)}/readyz"
            if proc.is_running():
                log(f"{name}: already running")
                waits[name] = (url, grace, None)
            else:
                log(f"{name}: starting")
                proc.start()
                waits[name] = (url, START_TIMEOUT, proc)
            procs[name] = proc
        ready = wait_all_ready(waits)
        failed = False
        for name, ok in ready.items():
            if not ok:
                failed = True
                url, _, started_here = waits[name]
                how = "did not become ready" if started_here else "runs but is not ready (left as it is)"
                log(f"{name} {how} at {url}; last lines of {procs[name].log_file}:")
                print(tail(procs[name].log_file, 40), file=sys.stderr)
            rows.append((name, f"http://127.0.0.1:{cfg.service_port(name)}"))
        if failed:
            return 1

    width = max(len(r[0]) for r in rows)
    print(f"\nlocal stack up ({time.monotonic() - started:.1f}s), run dir {cfg.run_dir}")
    for name, where in rows:
        print(f"  {name:<{width}}  {where}")
    print("  stop with: make down")
    return 0


def cmd_down(cfg: StackConfig) -> int:
    """Stop services first (they hold connections), then Prometheus, Kafka, PostgreSQL."""
    rc = 0
    env = service_env(cfg.bootstrap, cfg.dsn, "", cfg.port_env(), cfg.run_dir)
    for name, _ in reversed(SERVICES):
        proc = service_process(name, env, cfg.run_dir)
        if proc.stop():
            log(f"{name} stopped")
    for label, node in (("Prometheus", cfg.prometheus()), ("Kafka", cfg.kafka()),
                        ("PostgreSQL", cfg.postgres())):
        try:
            if node.stop():
                log(f"{label} stopped")
        except StackError as exc:
            log(str(exc))
            rc = 1
    return rc


def cmd_status(cfg: StackConfig) -> int:
    env = service_env(cfg.bootstrap, cfg.dsn, "", cfg.port_env(), cfg.run_dir)
    kafka, pg, prom = cfg.kafka(), cfg.postgres(), cfg.prometheus()
    lines = []

    def line(name: str, pid: int | None, port: int, ready: bool) -> None:
        state = "running" if pid else "stopped"
        lines.append(f"{name:<11} {state:<8} pid={pid or '-':<8} port={port:<6} "
                     f"{'ready' if ready else 'not-ready'}")

    kpid = kafka.pid
    line("kafka", kpid, kafka.port, bool(kpid) and port_accepts(kafka.port))
    pg_pid = pg.pid if find_postgres_bindir() else None
    line("postgres", pg_pid, pg.port, bool(pg_pid) and port_accepts(pg.port))
    ppid = prom.pid
    line("prometheus", ppid, prom.port, bool(ppid) and prom.is_ready())
    for name, _ in SERVICES:
        proc = service_process(name, env, cfg.run_dir)
        spid = proc.pid
        port = cfg.service_port(name)
        line(name, spid, port, bool(spid) and http_ok(f"http://127.0.0.1:{port}/readyz"))
    print("\n".join(lines))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local stack: Kafka, PostgreSQL, "
                                     "Prometheus and the petition services.")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--infra-only", action="store_true",
                        help="up: start Kafka, PostgreSQL and Prometheus only")
    args = parser.parse_args(argv)
    cfg = StackConfig.from_env()
    try:
        if args.command == "up":
            return cmd_up(cfg, infra_only=args.infra_only)
        if args.command == "down":
            return cmd_down(cfg)
        return cmd_status(cfg)
    except StackError as exc:
        log(f"ERROR: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
