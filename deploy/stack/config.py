"""Configuration of one local stack: its ports and folders, the services' environment.

Everything comes from ``PETITION_*`` environment variables with the defaults below (the
ports ``make up`` uses, the ``.run/`` folder), so ``make up``, ``make status`` and
``make down`` agree on where a stack lives as long as they see the same environment, and
the integration tests build a second, private stack from the same helpers on other ports.
The services' HMAC key is generated once into the run folder (mode 600), never committed; so
are the broker principals' passwords (``<run folder>/secrets/kafka``, shared/kafka_credentials.py):
each service runs as its own principal (:func:`service_process`), the stack's commands
(``petitionctl topics ensure``) as the admin.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deploy.stack.process import ServiceProcess
from shared.kafka_credentials import password_path, secrets_dir_of

#: The checkout this package runs from (an editable install): the services, the venv and
#: the data folders under deploy/ (the broker's pom.xml, Prometheus's template) are found here.
REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"


def cache_root() -> Path:
    """Where ``make prepare`` keeps what it fetches (the Kafka jars, axe-core): outside the
    repository, shared by every checkout; ``$PETITION_CACHE_DIR`` or ``~/.cache/petition-platform``."""
    return Path(os.environ.get("PETITION_CACHE_DIR") or Path.home() / ".cache" / "petition-platform")

#: The long-running application services, in start order: (name, port env var).
SERVICES: tuple[tuple[str, str], ...] = (
    ("intake", "PETITION_HTTP_PORT"),
    ("router", "PETITION_ROUTER_PORT"),
    ("escalation", "PETITION_ESCALATION_PORT"),
    ("watch", "PETITION_WATCH_PORT"),
)

#: how many instances of a service run, by the variable that says so: the consumers' group
#: members, and intake's workers (processes serving the HTTP API on its one port)
INSTANCE_COUNTS: dict[str, str] = {
    "intake": "PETITION_INTAKE_WORKERS",
    "router": "PETITION_ROUTERS",
    "escalation": "PETITION_ESCALATIONS",
    "watch": "PETITION_WATCHERS",
}
#: where the first of several instances listens, each next one INSTANCE_PORT_STEP above the
#: last: the service's own port, but for intake's workers, which all serve the API on
#: PETITION_HTTP_PORT together (SO_REUSEPORT) and each listen alone on a private port (its
#: /readyz and /metrics) from PETITION_INTAKE_WORKER_PORT up. With the default ports every
#: service has its own column (8081, 8181, ... 8881 the routers', 8083 ... 8883 intake's
#: workers'), so no two instances of any services can collide.
INSTANCE_BASES: dict[str, str] = {**dict(SERVICES), "intake": "PETITION_INTAKE_WORKER_PORT"}
INSTANCE_PORT_STEP = 100
MAX_INSTANCES = 9

#: Environment variables understood by the CLI, with their defaults.
DEFAULTS: dict[str, str] = {
    "PETITION_RUN_DIR": ".run",
    "PETITION_KAFKA_PORT": "9092",
    "PETITION_KAFKA_CONTROLLER_PORT": "9093",
    # brokers of the KRaft cluster (each broker and controller in one JVM): 1, or 3 for a
    # cluster that survives any one broker's death (kafka_ports says which ports they take)
    "PETITION_KAFKA_BROKERS": "1",
    "PETITION_PG_PORT": "5432",
    "PETITION_PROMETHEUS_PORT": "9090",
    "PETITION_HTTP_PORT": "8080",
    "PETITION_ROUTER_PORT": "8081",
    "PETITION_ESCALATION_PORT": "8082",
    # the private port of intake's first worker when it runs several (PETITION_INTAKE_WORKERS)
    "PETITION_INTAKE_WORKER_PORT": "8083",
    "PETITION_WATCH_PORT": "8084",
    # intake's SMTP listener (the e-mail channel), for the centre's mail relay
    "PETITION_MAIL_PORT": "2525",
    **dict.fromkeys(INSTANCE_COUNTS.values(), "1"),
}


@dataclass(frozen=True)
class Instance:
    """One process of a service: `name` is the service's when it runs alone, ``<part>-<n>``
    when it runs several; `port` its own (health, metrics, faust's web server; an intake
    worker's private port, beside the API's port it shares with the other workers)."""

    part: str
    n: int
    name: str
    port: int

    @property
    def alone(self) -> bool:
        """Whether this is the one process of its service (named as the service)."""
        return self.name == self.part


def instance_ports(service: str, ports: Mapping[str, str | int], count: int) -> list[int]:
    """The ports of `count` instances of `service`, given the PETITION_*_PORT numbers: one runs
    on the service's port; several from their base (:data:`INSTANCE_BASES`) up, each
    INSTANCE_PORT_STEP above the last."""
    if count == 1:
        return [int(ports[dict(SERVICES)[service]])]
    base = int(ports[INSTANCE_BASES[service]])
    return [base + i * INSTANCE_PORT_STEP for i in range(count)]


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
    mail_port: int = 2525
    watch_port: int = 8084
    #: instances per service (INSTANCE_COUNTS); a service not named runs one
    counts: tuple[tuple[str, int], ...] = ()
    kafka_brokers: int = 1

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
                   intake_worker_port=int(get("PETITION_INTAKE_WORKER_PORT")),
                   mail_port=int(get("PETITION_MAIL_PORT")),
                   watch_port=int(get("PETITION_WATCH_PORT")),
                   counts=tuple((part, _count(get(variable), variable)) for part, variable in INSTANCE_COUNTS.items()),
                   kafka_brokers=_positive(get("PETITION_KAFKA_BROKERS"), "PETITION_KAFKA_BROKERS"))

    def port_env(self) -> dict[str, str]:
        return {
            "PETITION_KAFKA_PORT": str(self.kafka_port),
            "PETITION_KAFKA_CONTROLLER_PORT": str(self.kafka_controller_port),
            "PETITION_KAFKA_BROKERS": str(self.kafka_brokers),
            "PETITION_PG_PORT": str(self.pg_port),
            "PETITION_PROMETHEUS_PORT": str(self.prometheus_port),
            "PETITION_HTTP_PORT": str(self.http_port),
            "PETITION_ROUTER_PORT": str(self.router_port),
            "PETITION_ESCALATION_PORT": str(self.escalation_port),
            "PETITION_INTAKE_WORKER_PORT": str(self.intake_worker_port),
            "PETITION_MAIL_PORT": str(self.mail_port),
            "PETITION_WATCH_PORT": str(self.watch_port),
        }

    def count(self, service: str) -> int:
        """How many instances of `service` run."""
        return dict(self.counts).get(service, 1)

    def instances(self, service: str) -> list[Instance]:
        """The processes of `service`, each with its name and port (:func:`instance_ports`)."""
        count = self.count(service)
        return [Instance(service, n, service if count == 1 else f"{service}-{n}", port)
                for n, port in enumerate(instance_ports(service, self.port_env(), count), start=1)]

    def instance_base(self, service: str) -> int:
        """The port of the first of several instances of `service` (:data:`INSTANCE_BASES`)."""
        return int(self.port_env()[INSTANCE_BASES[service]])

    def clashing_ports(self) -> list[str]:
        """Ports two parts of this stack would both listen on (the brokers', PostgreSQL's,
        Prometheus's, the mailbox's and every instance's), each said once; none is fine."""
        taken: dict[int, str] = {}
        clashes = []
        parts = [(f"kafka-{i}", p) for i, p in enumerate(self.kafka_broker_ports, 1)]
        parts += [(f"kafka-{i} (controller)", p) for i, p in enumerate(self.kafka_controller_ports, 1)]
        parts += [("postgres", self.pg_port), ("prometheus", self.prometheus_port)]
        parts += [("mail", self.mail_port)] if self.mail_port else []
        if self.count("intake") > 1:
            parts.append(("intake (the workers' API)", self.http_port))
        parts += [(i.name, i.port) for service, _ in SERVICES for i in self.instances(service)]
        for name, port in parts:
            if port in taken:
                clashes.append(f"{taken[port]} and {name} on port {port}")
            else:
                taken[port] = name
        return clashes

    def count_env(self) -> dict[str, str]:
        return {INSTANCE_COUNTS[part]: str(n) for part, n in self.counts}

    def service_port(self, service: str) -> int:
        return {"intake": self.http_port, "router": self.router_port,
                "escalation": self.escalation_port, "watch": self.watch_port}[service]

    @property
    def kafka_broker_ports(self) -> list[int]:
        """The brokers' client (SASL) ports, node 1 first (:func:`kafka_ports`)."""
        return kafka_ports(self.kafka_port, self.kafka_controller_port, self.kafka_brokers)[0]

    @property
    def kafka_controller_ports(self) -> list[int]:
        """The brokers' controller ports, node 1 first (:func:`kafka_ports`)."""
        return kafka_ports(self.kafka_port, self.kafka_controller_port, self.kafka_brokers)[1]

    @property
    def bootstrap(self) -> str:
        """Every broker, so a client reaches the cluster while any one of them is down."""
        return bootstrap_of(self.kafka_broker_ports)

    @property
    def dsn(self) -> str:
        return f"postgresql://petition@127.0.0.1:{self.pg_port}/petition"

    @property
    def kafka_secrets_dir(self) -> Path:
        """The broker principals' password files of this stack."""
        return secrets_dir_of(self.run_dir)


def _count(value: str, variable: str) -> int:
    try:
        count = int(value)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_INSTANCES:
        raise ValueError(f"{variable}={value!r}: a number of instances from 1 to {MAX_INSTANCES}")
    return count


def _positive(value: str, name: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"{name} must be at least 1, not {value!r}")
    return number


def kafka_ports(port: int, controller_port: int, brokers: int) -> tuple[list[int], list[int]]:
    """The client (SASL) ports and the controller ports of `brokers` KRaft nodes, node 1 first.

    Node i (0-based) takes ``port + i`` for its clients and ``controller_port + i`` for the
    quorum, unless the controllers' block would overlap the clients' one (the defaults
    9092/9093 are adjacent: a second broker would take 9093): then the controllers' block
    starts right after the clients', at ``port + brokers``. So one broker keeps its two ports
    as they always were, three on the defaults take 9092-9094 and 9095-9097, and three on
    19092/19192 take 19092-19094 and 19192-19194.
    """
    if brokers < 1:
        raise ValueError(f"a Kafka cluster has at least one broker, not {brokers}")
    clients = [port + i for i in range(brokers)]
    first = controller_port
    if first < port + brokers and port < first + brokers:
        first = port + brokers
    return clients, [first + i for i in range(brokers)]


def bootstrap_of(ports: list[int]) -> str:
    """The bootstrap address of brokers on loopback: ``127.0.0.1:<port>`` each, comma-separated."""
    return ",".join(f"127.0.0.1:{p}" for p in ports)


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


#: the credentials a process authenticates with; the stack sets them, never inherits them
KAFKA_CREDENTIAL_VARIABLES = ("PETITION_KAFKA_USERNAME", "PETITION_KAFKA_PASSWORD", "PETITION_KAFKA_PASSWORD_FILE")


def service_env(kafka_bootstrap: str, pg_dsn: str, hmac_key: str,
                ports: Mapping[str, str | int] | None = None,
                run_dir: Path | str | None = None,
                base: Mapping[str, str] | None = None,
                kafka_secrets_dir: Path | str | None = None) -> dict[str, str]:
    """Environment for the services and petitionctl (also used by the integration tests).

    Every service gets every port variable and picks its own; PYTHONPATH includes the
    repo so ``python -m services.<name>`` works from the run folder (the cwd, so that
    faust's ``./<app-id>-data`` folders land there and not in the repo).

    Broker credentials: ``PETITION_KAFKA_SECRETS_DIR`` names the principals' password files
    (`kafka_secrets_dir`, default ``<run_dir>/secrets/kafka``); no principal is set here, so
    petitionctl authenticates as the admin with its file there, and :func:`service_process`
    gives each service its own principal. Credentials of the calling shell are dropped.
    """
    env = dict(os.environ if base is None else base)
    for name in KAFKA_CREDENTIAL_VARIABLES:
        env.pop(name, None)
    # every port but the mailbox's, which only a stack that asks for one gets (`make up` and
    # the tests' stacks do; a benchmark's intake listens for no mail)
    # and the broker count (the replication of the topics the platform creates) of the stack
    # given, never the calling shell's
    env.update({k: v for k, v in DEFAULTS.items()
                if (k.endswith("_PORT") and k != "PETITION_MAIL_PORT") or k == "PETITION_KAFKA_BROKERS"})
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
    if kafka_secrets_dir is not None or run_dir is not None:
        env["PETITION_KAFKA_SECRETS_DIR"] = str(kafka_secrets_dir or secrets_dir_of(run_dir or "."))
    return env


def service_credentials(name: str, env: Mapping[str, str]) -> dict[str, str]:
    """Service `name`'s own broker principal (named as the service) and its password file in
    the env's ``PETITION_KAFKA_SECRETS_DIR``; nothing when the env names no secrets folder."""
    folder = env.get("PETITION_KAFKA_SECRETS_DIR")
    if not folder:
        return {}
    return {"PETITION_KAFKA_USERNAME": name, "PETITION_KAFKA_PASSWORD": "",
            "PETITION_KAFKA_PASSWORD_FILE": str(password_path(folder, name))}


def venv_bin(name: str) -> Path:
    return REPO_ROOT / ".venv" / "bin" / name


def service_process(name: str, env: Mapping[str, str], run_dir: Path,
                    instance: Instance | None = None) -> ServiceProcess:
    """The ServiceProcess for services/<name> (python -m services.<name>), authenticating to
    the broker as its own principal (:func:`service_credentials`). An `instance` of several
    has its own name (its PID and log files) and its own port: an intake worker keeps the API's
    port (PETITION_HTTP_PORT, shared) and is told its number (PETITION_INTAKE_WORKER) and its
    private port (PETITION_INTAKE_WORKER_PORT)."""
    # intake alone says so, whatever the calling shell exported
    extra: dict[str, str] = {"PETITION_INTAKE_WORKER": "0"} if name == "intake" else {}
    label = name
    if instance is not None and not instance.alone:
        label = instance.name
        if name == "intake":
            extra = {"PETITION_INTAKE_WORKER": str(instance.n), "PETITION_INTAKE_WORKER_PORT": str(instance.port)}
        else:
            extra = {dict(SERVICES)[name]: str(instance.port)}
    return ServiceProcess(label, [str(venv_bin("python")), "-m", f"services.{name}"],
                          env={**env, **service_credentials(name, env), **extra}, run_dir=run_dir, cwd=run_dir)


def service_exists(name: str) -> bool:
    return (REPO_ROOT / "services" / name / "__main__.py").exists()
