"""Kafka of the local stack: KRaft nodes (broker and controller in one JVM each) on loopback.

One node by default; ``PETITION_KAFKA_BROKERS=3`` makes a cluster (:class:`KafkaCluster`):
three nodes, each a broker and one of the three controllers of the quorum, formatted with the
same cluster id and the same initial credentials, every topic with three replicas and
``min.insync.replicas=2`` (shared.kafka_replication), so any one broker may die while writes go on.

There is no Docker here: the broker runs from Apache Kafka's jars, which ``make prepare``
fetches once from Maven Central (deploy/kafka/pom.xml pins the version) into a cache outside
the repository (``$PETITION_CACHE_DIR``, default ``~/.cache/petition-platform``), shared by
every checkout. What must hold: nothing here fetches or installs anything. Starting a broker
(``make up``, a test fixture) only finds the jars, and fails naming ``make prepare`` when
they are missing, so later starts work offline and never change the machine.

**Security.** Clients authenticate with SASL/SCRAM-SHA-512 on the one client listener and
the ACL authorizer (KRaft's ``StandardAuthorizer``) denies whatever no ACL allows; ``admin`` is
the super user. The first credentials (admin and the three services) are written into the
storage when it is formatted (KIP-900); later ones through the admin API
(petitionctl/kafka_admin.py). Passwords live in the secrets folder (one file per principal,
shared/kafka_credentials.py); the broker reads the admin's through Kafka's directory config
provider, so the generated server.properties holds no secret. The controller listener
(loopback) takes the admin over SASL/PLAIN: SCRAM credentials live in the metadata log, which
the controller must serve before it could check them, and an unauthenticated controller
listener would need ``User:ANONYMOUS`` among the super users.

**Storage from an older make up** (formatted PLAINTEXT, no credentials) is migrated on the
next start, keeping its topics and offsets: the broker runs once as it was (PLAINTEXT, no
authorizer, loopback only) while the credentials are written through the admin API, then
starts secured. The same repairs a storage whose admin password file was lost.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from deploy.stack.config import DEPLOY_DIR, bootstrap_of, cache_root
from deploy.stack.process import ServiceProcess, StackError, log, port_accepts, port_is_free, run_command, tail
from shared.kafka_credentials import (
    ADMIN,
    BOOTSTRAP_PRINCIPALS,
    MECHANISM,
    SERVICE_PRINCIPALS,
    ensure_password,
    password_path,
    read_password,
)
from shared.kafka_replication import min_insync_replicas, replication_factor

KAFKA_DEPLOY_DIR = DEPLOY_DIR / "kafka"

#: Must match <kafka.version> in deploy/kafka/pom.xml; it names the jar cache folder.
KAFKA_VERSION = "4.1.2"


def kafka_cache_dir() -> Path:
    """Folder holding this Kafka version's jars (outside the repo, shared by checkouts)."""
    return cache_root() / f"kafka-{KAFKA_VERSION}"


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


def replication_properties(brokers: int) -> dict[str, str]:
    """The broker defaults that depend on the cluster's size: every internal topic (offsets,
    transaction state, share coordinator) and every topic created without saying gets
    min(brokers, 3) replicas and, from 3, needs 2 of them in sync (shared.kafka_replication)."""
    rf, isr = str(replication_factor(brokers)), str(min_insync_replicas(replication_factor(brokers)))
    return {
        "default.replication.factor": rf,
        "min.insync.replicas": isr,
        "offsets.topic.replication.factor": rf,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": isr,
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": isr,
    }


class KafkaNode:
    """A KRaft node (broker + controller in one JVM) on 127.0.0.1: a single-node Kafka, or one
    node of a :class:`KafkaCluster` (`node_id`, the quorum's `voters`, the `cluster_size`
    its replication defaults are made for, the cluster id in `cluster_id_file`).

    Everything lives in `data_dir`: server.properties, the cluster id (alone), the log dirs,
    ``logs/server.log`` (log4j) and ``logs/<name>.log`` (console), ``pids/<name>.pid``; the
    principals' password files in `secrets_dir`. Starting again on an existing `data_dir`
    keeps the data (format is skipped).
    """

    def __init__(self, port: int, controller_port: int, data_dir: Path | str, secrets_dir: Path | str,
                 heap: str = "1g", extra_properties: Mapping[str, str] | None = None, *,
                 node_id: int = 1, voters: str | None = None, cluster_size: int = 1,
                 cluster_id_file: Path | str | None = None, name: str = "kafka"):
        self.port = int(port)
        self.controller_port = int(controller_port)
        self.node_id = int(node_id)
        #: controller.quorum.voters: ``<node.id>@127.0.0.1:<controller port>``, comma-separated
        self.voters = voters or f"{self.node_id}@127.0.0.1:{self.controller_port}"
        self.cluster_size = int(cluster_size)
        self.name = name
        self.data_dir = Path(data_dir).resolve()
        self.secrets_dir = Path(secrets_dir).resolve()
        if any(c in str(self.secrets_dir) for c in ':;"'):
            # the path goes into ${dir:<path>:<file>} inside a JAAS line
            raise StackError(f"Kafka's secrets folder {self.secrets_dir} must not contain ':', ';' or '\"'")
        #: written once the storage holds the credentials of BOOTSTRAP_PRINCIPALS
        self.credentials_marker = self.data_dir / "credentials.formatted"
        self.heap = heap
        self.extra_properties = dict(extra_properties or {})
        self.config_file = self.data_dir / "server.properties"
        self.log_dirs = self.data_dir / "data"
        self.cluster_id_file = Path(cluster_id_file).resolve() if cluster_id_file else self.data_dir / "cluster.id"
        self._process: ServiceProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def security_properties(self) -> dict[str, str]:
        """SASL listeners and the ACL authorizer; the admin's password comes from its file."""
        admin_password = f"${{dir:{self.secrets_dir}:{password_path(self.secrets_dir, ADMIN).name}}}"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        return {
            "listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config":
                f'{scram} required username="{ADMIN}" password="{admin_password}";',
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config":
                f'{plain} required username="{ADMIN}" password="{admin_password}" user_{ADMIN}="{admin_password}";',
            "config.providers": "dir",
            "config.providers.dir.class": "org.apache.kafka.common.config.provider.DirectoryConfigProvider",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def properties(self, *, secured: bool = True) -> dict[str, str]:
        """The broker configuration, tuned for fast startup; replication as the cluster's size asks.

        `secured` False is the configuration of an older make up (PLAINTEXT, no authorizer):
        only :meth:`start` uses it, to migrate such a storage."""
        listeners = self.security_properties() if secured else {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
        }
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            **listeners,
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.log_dirs),
            "num.partitions": "6",
            # One node: every internal topic lives with a single replica; three: with three.
            **replication_properties(self.cluster_size),
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.num.partitions": "6",
            "share.coordinator.state.topic.num.partitions": "6",
            # Consumers join at once instead of waiting 3 s for more members.
            "group.initial.rebalance.delay.ms": "0",
            # Topics are created on purpose (petitionctl topics ensure), never by a typo.
            "auto.create.topics.enable": "false",
            "delete.topic.enable": "true",
            "log.retention.hours": "168",
            # A node restarted after a crash checks the log of each of its partitions (a replica
            # of every department's queue among them) before it serves: one thread per core.
            "num.recovery.threads.per.data.dir": str(max(1, min(os.cpu_count() or 1, 4))),
        }
        props.update(self.extra_properties)
        return props

    def write_config(self, *, secured: bool = True) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lines = ["# Generated by deploy/stack/kafka.py; rewritten on every start."]
        lines += [f"{k}={v}" for k, v in self.properties(secured=secured).items()]
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

    @property
    def formatted(self) -> bool:
        return (self.log_dirs / "meta.properties").exists()

    def needs_credentials(self) -> bool:
        """A formatted storage whose credentials cannot be vouched for: made by an older make
        up (PLAINTEXT, none written), or its admin's password file is gone."""
        return self.formatted and not (self.credentials_marker.exists()
                                       and password_path(self.secrets_dir, ADMIN).exists())

    def format_storage(self) -> None:
        """Format the KRaft log dir once, with the SCRAM credentials of the admin and the
        services (KIP-900); the cluster id is kept in data_dir/cluster.id."""
        if self.formatted:
            return
        if self.cluster_id_file.exists():
            cluster_id = self.cluster_id_file.read_text().strip()
        else:
            cluster_id = _kafka_uuid()
            self.cluster_id_file.write_text(cluster_id + "\n")
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        scram: list[str] = []
        for principal in BOOTSTRAP_PRINCIPALS:
            path, _ = ensure_password(self.secrets_dir, principal)
            scram += ["--add-scram", f"{MECHANISM}=[name={principal},password={read_password(path)}]"]
        argv = self._java_argv("kafka.tools.StorageTool", "format", "--ignore-formatted",
                               "--cluster-id", cluster_id, "-c", str(self.config_file), *scram)
        done = run_command(argv, log_file=self.data_dir / "logs" / "format.log", timeout=120, check=False)
        if done.returncode != 0:  # the command line carries passwords: not in the message
            raise StackError(f"formatting Kafka's storage failed ({done.returncode}); "
                             f"see {self.data_dir / 'logs' / 'format.log'}")
        self.credentials_marker.write_text("SCRAM credentials of: " + ", ".join(BOOTSTRAP_PRINCIPALS) + "\n")

    def _add_credentials(self) -> None:
        """Write the credentials into a storage that has none (or lost its admin's): start
        the broker once unsecured on loopback, tell it every bootstrap principal's password
        through the admin API, stop it. Topics and offsets are kept."""
        from petitionctl.kafka_admin import admin_client, upsert_passwords
        from shared.kafka_client import KafkaAccess

        log(f"Kafka: the storage in {self.log_dirs} has no SASL credentials (an older make up): "
            "adding them, topics and offsets are kept")
        for principal in BOOTSTRAP_PRINCIPALS:
            ensure_password(self.secrets_dir, principal)
        self.write_config(secured=False)
        self._process = None
        self._service().start()
        try:
            anonymous = KafkaAccess(self.bootstrap)
            self.wait_ready(access=anonymous)
            with admin_client(anonymous, client_id="localstack-migrate") as admin:
                upsert_passwords(admin, self.secrets_dir, BOOTSTRAP_PRINCIPALS)
        finally:
            self.stop()
            self._process = None
        self.credentials_marker.write_text("SCRAM credentials of: " + ", ".join(BOOTSTRAP_PRINCIPALS) + "\n")

    def _service(self) -> ServiceProcess:
        if self._process is None:
            self._process = ServiceProcess(
                self.name, self._java_argv("kafka.Kafka", str(self.config_file)),
                env=os.environ.copy(), run_dir=self.data_dir, cwd=self.data_dir)
        return self._process

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self._service().pid

    def is_running(self) -> bool:
        return self._service().is_running()

    def start(self) -> bool:
        """Start the broker detached. Returns False when it was already running.

        A storage without credentials (an older make up) gets them first (see the module)."""
        if self.is_running():
            if self.needs_credentials():
                raise StackError(f"the running Kafka (data in {self.data_dir}) was started by an older make up "
                                 "(PLAINTEXT, no credentials): run `make down`, then `make up` adds the "
                                 "credentials and ACLs and keeps the topics")
            return False
        for p in (self.port, self.controller_port):
            if not port_is_free(p):
                raise StackError(f"Kafka: port {p} is already in use by another process")
        require_kafka_jars()
        if self.needs_credentials():
            self._add_credentials()
        self.write_config()
        self.format_storage()
        self._process = None  # rebuild argv from the (possibly new) config
        self._service().start()
        return True

    def admin_access(self) -> Any:
        """The super user's access (a shared.kafka_client.KafkaAccess)."""
        from shared.kafka_client import KafkaAccess  # lazy: only the venv has pydantic

        return KafkaAccess.for_principal(self.bootstrap, ADMIN, self.secrets_dir)

    def ensure_services(self) -> list[str]:
        """The services' principals: password files, credentials on the broker where it has
        none or the file is new, and their ACLs. Idempotent; returns the principals told."""
        return _ensure_services(self.admin_access(), self.secrets_dir)

    def wait_ready(self, timeout: float = 90.0, access: Any = None) -> None:
        """Wait until a metadata round trip succeeds and the cluster lists this broker,
        unfenced, as the admin (or `access`).

        An open port is not enough: the broker accepts connections before it is
        unfenced, and topic creation fails until then.
        """
        from kafka import KafkaAdminClient  # lazy: only the venv has kafka-python

        from shared.kafka_client import quiet_plaintext_sasl_warning

        quiet_plaintext_sasl_warning()
        options = (access or self.admin_access()).options()

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
                    admin = KafkaAdminClient(**options, client_id="localstack-ready",
                                             request_timeout_ms=5000)
                    admin.list_topics()
                    if self.node_id in unfenced_brokers(admin.describe_cluster()):
                        return
                except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                    last_error = exc
                finally:
                    if admin is not None:
                        with contextlib.suppress(Exception):  # closing a half-open client: nothing to do
                            admin.close()
            time.sleep(0.3)
        refusals = [line for line in tail(self.data_dir / "logs" / "server.log", 400).splitlines()
                    if "Failed authentication" in line][-1:]
        raise StackError(f"Kafka on {self.bootstrap} not ready after {timeout:.0f}s "
                         f"(last error: {last_error!r}); see {self.data_dir / 'logs'}"
                         + (f"\nthe broker refused the admin's password ({password_path(self.secrets_dir, ADMIN)}):"
                            f"\n{refusals[0]}" if refusals else ""))

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM (controlled shutdown) and wait; SIGKILL after `timeout`."""
        return self._service().stop(timeout=timeout)


def unfenced_brokers(cluster: Mapping[str, Any]) -> set[int]:
    """The ids of the brokers that take requests, from kafka-python's ``describe_cluster()``
    (which lists fenced brokers too: registered, not yet caught up with the metadata)."""
    return {int(b.get("broker_id", b.get("node_id", -1))) for b in cluster.get("brokers") or []
            if not b.get("is_fenced")}


def _ensure_services(access: Any, secrets_dir: Path) -> list[str]:
    """The services' principals (password files, credentials on the broker where missing)
    and their ACLs, as the admin `access`; returns the principals told."""
    from petitionctl.kafka_admin import admin_client, apply_service_grants, ensure_principals

    with admin_client(access, client_id="localstack") as admin:
        told = ensure_principals(admin, secrets_dir, SERVICE_PRINCIPALS)
        apply_service_grants(admin)
    return told


class KafkaCluster:
    """`len(ports)` KRaft nodes on loopback, each a broker and a controller of the quorum of all.

    Node i (0-based) has node.id i+1, clients on ``ports[i]``, the quorum on
    ``controller_ports[i]`` and its folder ``data_dir/node-<i+1>``; the cluster id is kept in
    ``data_dir/cluster.id`` and every node is formatted with it and with the same credentials
    (the secrets folder is shared). One node is exactly the :class:`KafkaNode` of a single
    broker, in `data_dir` itself, as the stack always ran it.

    The chaos tests kill and restart single brokers through :attr:`nodes` (each with ``pid``,
    ``start()``, ``stop()``, ``wait_ready()``); a restarted node keeps its data and catches up.
    """

    def __init__(self, ports: Sequence[int], controller_ports: Sequence[int], data_dir: Path | str,
                 secrets_dir: Path | str, heap: str = "1g", extra_properties: Mapping[str, str] | None = None):
        if not ports or len(ports) != len(controller_ports):
            raise StackError(f"a Kafka cluster needs a client and a controller port per node: {ports}, "
                             f"{controller_ports}")
        taken = [*ports, *controller_ports]
        if len(set(taken)) != len(taken):
            raise StackError(f"the Kafka nodes' ports collide: clients {list(ports)}, controllers "
                             f"{list(controller_ports)}")
        self.data_dir = Path(data_dir).resolve()
        self.size = len(ports)
        self.cluster_id_file = self.data_dir / "cluster.id"
        #: how many nodes the storage under data_dir was formatted for (a cluster's, written once)
        self.size_file = self.data_dir / "cluster.size"
        self.voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, c in enumerate(controller_ports))
        if self.size == 1:
            self.nodes = [KafkaNode(ports[0], controller_ports[0], self.data_dir, secrets_dir, heap,
                                    extra_properties)]
        else:
            self.nodes = [KafkaNode(p, c, self.data_dir / f"node-{i + 1}", secrets_dir, heap, extra_properties,
                                    node_id=i + 1, voters=self.voters, cluster_size=self.size,
                                    cluster_id_file=self.cluster_id_file, name=f"kafka-{i + 1}")
                          for i, (p, c) in enumerate(zip(ports, controller_ports, strict=True))]

    @property
    def port(self) -> int:
        """Node 1's client port."""
        return self.nodes[0].port

    @property
    def controller_port(self) -> int:
        """Node 1's controller port."""
        return self.nodes[0].controller_port

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    @property
    def secrets_dir(self) -> Path:
        return self.nodes[0].secrets_dir

    @property
    def bootstrap(self) -> str:
        """Every node's client listener: a client reaches the cluster while any one is down."""
        return bootstrap_of(self.ports)

    def is_running(self) -> bool:
        """True when every node runs."""
        return all(n.is_running() for n in self.nodes)

    def _check_storage_size(self) -> None:
        """Refuse a storage formatted for another number of nodes: its quorum and its topics'
        replicas are made for that number."""
        single = (self.data_dir / "data" / "meta.properties").exists()
        recorded = int(self.size_file.read_text()) if self.size_file.exists() else (1 if single else None)
        if recorded is not None and recorded != self.size:
            raise StackError(f"the Kafka storage in {self.data_dir} was made for {recorded} broker(s), not "
                             f"{self.size} (PETITION_KAFKA_BROKERS): use that many, or stop it (make down) and "
                             "move that folder away, or use another PETITION_RUN_DIR")

    def start(self) -> bool:
        """Start the nodes that are not running, detached; False when all were running.

        A cluster's nodes are formatted (once) and started side by side: none is ready until a
        majority of the controllers runs."""
        self._check_storage_size()
        if self.size == 1:
            return self.nodes[0].start()
        stopped = [n for n in self.nodes if not n.is_running()]
        if not stopped:
            return False
        require_kafka_jars()
        lost = [n for n in self.nodes if n.needs_credentials()]
        if lost:
            raise StackError(f"the Kafka cluster in {self.data_dir} has lost the admin's password "
                             f"({password_path(self.secrets_dir, ADMIN)}) or was formatted without credentials; "
                             "a cluster is not repaired in place: make down, move the folder away, make up")
        # before the nodes' threads: one cluster id and one password per principal for all
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.cluster_id_file.exists():
            self.cluster_id_file.write_text(_kafka_uuid() + "\n")
        for principal in BOOTSTRAP_PRINCIPALS:
            ensure_password(self.secrets_dir, principal)
        self.size_file.write_text(f"{self.size}\n")
        with ThreadPoolExecutor(max_workers=len(stopped)) as pool:
            list(pool.map(lambda node: node.start(), stopped))
        return True

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until every node is an unfenced broker of the cluster: 90 s for one node, twice
        that for a cluster (a node restarted after a crash first recovers the log of each of its
        partitions, a replica of every department's queue among them: over a minute and a half
        on a busy two-core machine)."""
        if timeout is None:
            timeout = 90.0 if self.size == 1 else 180.0
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.wait_ready(timeout=max(deadline - time.monotonic(), 1.0))

    def admin_access(self) -> Any:
        """The super user's access to the whole cluster (a shared.kafka_client.KafkaAccess)."""
        from shared.kafka_client import KafkaAccess  # lazy: only the venv has pydantic

        return KafkaAccess.for_principal(self.bootstrap, ADMIN, self.secrets_dir)

    def ensure_services(self) -> list[str]:
        """See :meth:`KafkaNode.ensure_services`; once for the cluster (the metadata is shared)."""
        return _ensure_services(self.admin_access(), self.secrets_dir)

    def _nodes_on_disk(self) -> list[KafkaNode]:
        """This cluster's nodes, and those of a cluster of another size that ran from the same
        folder (started with another PETITION_KAFKA_BROKERS): stopping needs only their PID
        files, so their ports do not matter."""
        found = list(self.nodes)
        mine = {n.data_dir for n in self.nodes}
        heap, extra = self.nodes[0].heap, self.nodes[0].extra_properties
        secrets = self.secrets_dir
        if self.data_dir not in mine and (self.data_dir / "pids" / "kafka.pid").exists():
            found.append(KafkaNode(0, 0, self.data_dir, secrets, heap, extra))
        for folder in sorted(self.data_dir.glob("node-*")):
            if folder.resolve() not in mine and folder.name[5:].isdigit():
                found.append(KafkaNode(0, 0, folder, secrets, heap, extra, node_id=int(folder.name[5:]),
                                       name=f"kafka-{folder.name[5:]}"))
        return found

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop every node, SIGTERM (a controlled shutdown) to all at once so that each broker
        leaves while the quorum still runs; True when one ran."""
        nodes = self._nodes_on_disk()
        if len(nodes) == 1:
            return nodes[0].stop(timeout=timeout)
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            return any(list(pool.map(lambda node: node.stop(timeout=timeout), nodes)))


def _heap_bytes(size: str) -> int:
    """'512m' -> bytes, so heap sizes can be compared."""
    m = re.fullmatch(r"(\d+)([kKmMgG]?)", size.strip())
    if not m:
        raise ValueError(f"bad heap size {size!r}")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(m.group(1)) * mult
