"""Kafka of the local stack: one KRaft node (broker and controller in one JVM) on loopback.

There is no Docker here: the broker runs from Apache Kafka's jars, which ``make prepare``
fetches once from Maven Central (deploy/kafka/pom.xml pins the version) into a cache outside
the repository (``$PETITION_CACHE_DIR``, default ``~/.cache/petition-platform``), shared by
every checkout. What must hold: nothing here fetches or installs anything. Starting a broker
(``make up``, a test fixture) only finds the jars, and fails naming ``make prepare`` when
they are missing, so later starts work offline and never change the machine.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from deploy.stack.config import DEPLOY_DIR
from deploy.stack.process import ServiceProcess, StackError, port_accepts, port_is_free, run_command, tail

KAFKA_DEPLOY_DIR = DEPLOY_DIR / "kafka"

#: Must match <kafka.version> in deploy/kafka/pom.xml; it names the jar cache folder.
KAFKA_VERSION = "4.1.2"


def kafka_cache_dir() -> Path:
    """Folder holding this Kafka version's jars (outside the repo, shared by checkouts)."""
    base = os.environ.get("PETITION_CACHE_DIR") or str(Path.home() / ".cache" / "petition-platform")
    return Path(base) / f"kafka-{KAFKA_VERSION}"


def kafka_jars_ready() -> bool:
    """True when this version's jars were fetched completely (the marker is written last)."""
    base = kafka_cache_dir()
    return (base / ".complete").exists() and (base / "libs").is_dir()


def require_kafka_jars() -> Path:
    """The folder with the broker's runtime jars; fails naming `make prepare` when missing."""
    libs = kafka_cache_dir() / "libs"
    if not kafka_jars_ready():
        raise StackError(f"the Kafka {KAFKA_VERSION} jars are not in {libs}: run `make prepare` "
                         "(python -m deploy.stack prepare fetches them once with Maven)")
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
        lines = ["# Generated by deploy/stack/kafka.py; rewritten on every start."]
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
        run_command(self._java_argv("kafka.tools.StorageTool", "format", "--ignore-formatted",
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
        require_kafka_jars()
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
