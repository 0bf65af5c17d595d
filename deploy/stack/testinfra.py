"""Throw-away Kafka + PostgreSQL: what the integration tests and the benchmarks run against.

Each call to `start_test_infra` starts a private Kafka (one node, or a KRaft cluster of
`brokers` nodes for the tests that ask) and a private PostgreSQL on free ports, with all
their data under `tmp_root`. Nothing is shared with a stack started
by ``make up`` (default ports, ``.run/``), so both can run at once. PostgreSQL runs in its
fast, non-durable mode (fsync off): a crash loses a test's data, never a stack's.

The broker is secured as the local stack's is (deploy/stack/kafka.py): SASL/SCRAM-SHA-512
and ACLs, the admin and the services' principals with their ACLs, passwords under
``<tmp_root>/secrets/kafka``. So every integration test runs each service as its own
principal; test drivers read and write as the admin (``infra.admin``), or as whom they test
(``infra.access(principal)``).

What must hold: starting infra never installs or fetches anything (``make prepare`` does;
``make test`` runs it first), and a failed start stops whatever it had started. The pytest
plugin (deploy/stack/pytest_plugin.py) gives the test session one of these as ``infra``;
a test module that needs a broker of its own calls `start_test_infra` itself.

    from deploy.stack.testinfra import start_test_infra
    infra = start_test_infra(tmp_path_factory.mktemp("infra"))
    try:
        ... infra.admin.options(), infra.dsn, infra.fresh_database("t1") ...
    finally:
        infra.stop()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from deploy.stack.config import service_env
from deploy.stack.kafka import KafkaCluster
from deploy.stack.postgres import PostgresNode
from deploy.stack.process import free_ports
from shared.kafka_credentials import ADMIN, secrets_dir_of

if TYPE_CHECKING:
    from shared.kafka_client import KafkaAccess

#: 512 MB is plenty for tests if the log cleaner's dedupe buffer is shrunk from 128 MB
#: (otherwise the cleaner alone asks for more than the heap and the broker dies).
TEST_KAFKA_HEAP = "512m"
TEST_KAFKA_PROPERTIES = {"log.cleaner.dedupe.buffer.size": "33554432"}


@dataclass
class Infra:
    """Running test infrastructure: Kafka bootstrap address and PostgreSQL DSN.

    ``kafka.nodes`` are the brokers, one by one (each with ``pid``, ``start()``, ``stop()``,
    ``wait_ready()``), for tests that kill and restart one."""

    kafka: KafkaCluster
    postgres: PostgresNode
    root: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap

    @property
    def secrets_dir(self) -> Path:
        """The principals' password files (the admin's, the services', departments' added later)."""
        return self.kafka.secrets_dir

    def access(self, principal: str) -> KafkaAccess:
        """Access to the broker as `principal`, with its password file."""
        from shared.kafka_client import KafkaAccess  # deferred: importing the fixtures loads no third party

        return KafkaAccess.for_principal(self.bootstrap, principal, self.secrets_dir)

    @property
    def admin(self) -> KafkaAccess:
        """The super user: what test drivers read and write with."""
        return self.access(ADMIN)

    @property
    def dsn(self) -> str:
        """DSN of the `petition` database (owned by role `petition`)."""
        return self.postgres.dsn

    def fresh_database(self, name: str) -> str:
        """Create (or re-create) an empty database owned by `petition`; returns its DSN."""
        return self.postgres.create_database(name)

    def service_env(self, hmac_key: str = "00" * 32, **ports: int) -> dict[str, str]:
        """Environment for starting a service against this infra (see deploy.stack.service_env).

        Service HTTP ports not given as keyword arguments (PETITION_HTTP_PORT=..., etc.)
        are picked free, so a test never collides with `make up` on 8080-8083; read them
        back from the returned dict.
        """
        wanted = ["PETITION_HTTP_PORT", "PETITION_ROUTER_PORT", "PETITION_ESCALATION_PORT",
                  "PETITION_INTAKE_WORKER_PORT", "PETITION_MAIL_PORT"]
        missing = [name for name in wanted if name not in ports]
        all_ports: dict[str, int] = dict(zip(missing, free_ports(len(missing)), strict=False))
        all_ports.update(ports)
        all_ports["PETITION_KAFKA_PORT"] = self.kafka.port
        all_ports["PETITION_KAFKA_CONTROLLER_PORT"] = self.kafka.controller_port
        all_ports["PETITION_KAFKA_BROKERS"] = self.kafka.size
        all_ports["PETITION_PG_PORT"] = self.postgres.port
        return service_env(self.bootstrap, self.dsn, hmac_key, all_ports, self.root,
                           kafka_secrets_dir=self.secrets_dir)

    def stop(self) -> None:
        """Stop both servers; safe to call twice. Leaves the data folders for post-mortems."""
        if self._stopped:
            return
        errors = []
        for node in (self.kafka, self.postgres):
            try:
                node.stop()
            except Exception as exc:  # noqa: BLE001 - stop the other one regardless
                errors.append(exc)
        self._stopped = True
        if errors:
            raise errors[0]

    def __enter__(self) -> Infra:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_test_infra(tmp_root: Path | str, kafka_timeout: float | None = None, *, brokers: int = 1,
                     durable: bool = False) -> Infra:
    """Start Kafka (secured, the services' principals and ACLs in place; `brokers` KRaft
    nodes) and PostgreSQL (fast, non-durable mode, unless `durable`) under `tmp_root`; wait ready.

    A test that SIGKILLs PostgreSQL and counts what survived needs `durable`: without it a
    commit is acknowledged before its WAL is written (``synchronous_commit=off``), and the
    last ones die with the server, as they would not in a deployment (``make up``).

    Kafka is launched first and left booting in the background while PostgreSQL starts,
    so the two startups overlap. On any failure, whatever started is stopped again.
    """
    root = Path(tmp_root).resolve()
    pg_port, *kafka_ports = free_ports(1 + 2 * brokers)
    kafka = KafkaCluster(kafka_ports[:brokers], kafka_ports[brokers:], root / "kafka", secrets_dir_of(root),
                         heap=TEST_KAFKA_HEAP, extra_properties=TEST_KAFKA_PROPERTIES)
    postgres = PostgresNode(pg_port, root / "postgres", fast=not durable)
    infra = Infra(kafka=kafka, postgres=postgres, root=root)
    try:
        kafka.start()
        postgres.start()
        postgres.wait_ready()
        postgres.ensure_database()
        kafka.wait_ready(timeout=kafka_timeout)
        kafka.ensure_services()
    except BaseException:
        infra.stop()
        raise
    return infra
