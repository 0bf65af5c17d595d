"""The local stack: Kafka, PostgreSQL, Prometheus and the three services on one machine.

Three users share this package:

* the operator, through ``make prepare`` / ``make up`` / ``make down`` / ``make status``
  (``python -m deploy.stack ...``, deploy/stack/cli.py), with the default ports and data
  under ``<repo>/.run``;
* the test suite, through its pytest plugin (deploy/stack/pytest_plugin.py, registered in
  pyproject.toml), which starts a private broker and database on free ports in pytest's
  temporary folders (deploy/stack/testinfra.py), so a test run never touches a stack
  started by ``make up``;
* the benchmarks, which start their own servers the same way.

The modules, by responsibility: ``process`` (commands, detached processes, PID files, ports,
signals), ``readiness`` (HTTP readiness waits), ``config`` (ports, folders, the services'
environment), ``kafka`` / ``postgres`` / ``prometheus`` (one server each), ``host`` (the only
code that changes the machine: packages, Debian's own daemons, the Kafka jars; run by
``make prepare`` alone), ``browser`` (where the browser tests find Chromium, a Chinese font and
axe-core: found, never installed), ``cli`` (the commands), ``testinfra`` (a throw-away broker and
database) and ``pytest_plugin``.

What must hold: importing this package needs only the standard library (``make down`` runs
with the system Python), and nothing it imports changes the machine: ``deploy.stack.host``
is imported by ``prepare`` only.
"""

from deploy.stack.config import (
    DEFAULTS,
    REPO_ROOT,
    SERVICES,
    StackConfig,
    ensure_hmac_key,
    service_env,
    service_process,
    venv_bin,
)
from deploy.stack.kafka import KafkaCluster, KafkaNode
from deploy.stack.postgres import PostgresNode
from deploy.stack.process import (
    ServiceProcess,
    StackError,
    free_ports,
    is_root,
    pid_alive,
    port_accepts,
    port_is_free,
    tail,
)
from deploy.stack.prometheus import PrometheusNode, render_prometheus_config
from deploy.stack.readiness import http_ok, wait_all_ready, wait_http_ready

__all__ = [
    "DEFAULTS",
    "REPO_ROOT",
    "SERVICES",
    "KafkaCluster",
    "KafkaNode",
    "PostgresNode",
    "PrometheusNode",
    "ServiceProcess",
    "StackConfig",
    "StackError",
    "ensure_hmac_key",
    "free_ports",
    "http_ok",
    "is_root",
    "pid_alive",
    "port_accepts",
    "port_is_free",
    "render_prometheus_config",
    "service_env",
    "service_process",
    "tail",
    "venv_bin",
    "wait_all_ready",
    "wait_http_ready",
]
