"""The operator's commands: ``python -m deploy.stack prepare|up|down|status``.

``make prepare`` / ``make up`` / ``make up-infra`` / ``make down`` / ``make status`` run
these with the default ports (9092/9093, 5432, 9090, 8080-8084) and data under
``<repo>/.run``; every port and the folder come from ``PETITION_*`` variables
(deploy/stack/config.py). What must hold:

* ``prepare`` is the only command that changes the machine (it alone imports
  deploy/stack/host.py); ``up`` finds what is installed and fails naming ``make prepare``;
* ``up`` starts only what is not running and waits only for what it started, so running it
  twice is harmless and bringing one dead part back takes seconds;
* ``down`` stops exactly what ``up`` started (PID files, verified), services first;
* ``down`` and ``status`` need only the standard library (no venv yet, or a broken one).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from deploy.stack.config import (
    INSTANCE_PORT_STEP,
    MAX_INSTANCES,
    SERVICES,
    Instance,
    StackConfig,
    ensure_hmac_key,
    service_env,
    service_exists,
    service_process,
    venv_bin,
)
from deploy.stack.kafka import KafkaCluster, require_kafka_jars
from deploy.stack.postgres import PostgresNode, find_postgres_bindir, require_postgres_bindir
from deploy.stack.process import ServiceProcess, StackError, log, port_accepts, tail
from deploy.stack.prometheus import PrometheusNode, render_prometheus_config, require_prometheus
from deploy.stack.readiness import http_ok, wait_all_ready


def nodes(cfg: StackConfig) -> tuple[KafkaCluster, PostgresNode, PrometheusNode]:
    """The stack's three servers, each in its own folder of the run folder (Kafka: one node, or
    the PETITION_KAFKA_BROKERS nodes of a cluster)."""
    return (KafkaCluster(cfg.kafka_broker_ports, cfg.kafka_controller_ports, cfg.run_dir / "kafka",
                         cfg.kafka_secrets_dir),
            PostgresNode(cfg.pg_port, cfg.run_dir / "postgres"),
            PrometheusNode(cfg.prometheus_port, cfg.run_dir / "prometheus",
                           cfg.run_dir / "prometheus" / "prometheus.yml"))


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
    clashes = cfg.clashing_ports()
    if clashes:
        raise StackError("two parts of the stack on one port: " + "; ".join(clashes)
                         + " (see the PETITION_*_PORT variables)")
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # Found, never installed here: `make prepare` (run before `make up`) installs them.
    require_kafka_jars()
    require_postgres_bindir()
    require_prometheus()

    kafka, pg, prom = nodes(cfg)
    render_prometheus_config(prom.config_file, cfg.port_env(), dict(cfg.counts))

    kafka_started, pg_started = kafka.start(), pg.start()
    log(("Kafka: " if kafka.size == 1 else f"Kafka ({kafka.size} brokers): ")
        + ("starting" if kafka_started else "already running"))
    log("PostgreSQL: " + ("started" if pg_started else "already running"))
    log("Prometheus: " + ("starting" if prom.start() else "already running"))
    pg.wait_ready()
    pg.ensure_database()
    kafka.wait_ready()
    told = kafka.ensure_services()
    if told:
        log("Kafka: credentials written for " + ", ".join(told))
    prom.wait_ready()
    log(f"infrastructure ready in {time.monotonic() - started:.1f}s")
    # services that kept running through a broker or database restart need time to reconnect
    grace = START_TIMEOUT if kafka_started or pg_started else RUNNING_GRACE

    env = service_env(cfg.bootstrap, cfg.dsn, ensure_hmac_key(cfg.run_dir), cfg.port_env(),
                      cfg.run_dir)
    rows = [("kafka", f"{kafka.bootstrap} (SASL/SCRAM; passwords in {cfg.kafka_secrets_dir})"),
            ("postgres", cfg.dsn), ("prometheus", prom.url)]
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
            for instance in cfg.instances(name):
                proc = service_process(name, env, cfg.run_dir, instance)
                url = f"http://127.0.0.1:{instance.port}/readyz"
                if proc.is_running():
                    log(f"{instance.name}: already running")
                    waits[instance.name] = (url, grace, None)
                else:
                    log(f"{instance.name}: starting")
                    proc.start()
                    waits[instance.name] = (url, START_TIMEOUT, proc)
                procs[instance.name] = proc
        ready = wait_all_ready(waits)
        failed = False
        for name, ok in ready.items():
            if not ok:
                failed = True
                url, _, started_here = waits[name]
                how = "did not become ready" if started_here else "runs but is not ready (left as it is)"
                log(f"{name} {how} at {url}; last lines of {procs[name].log_file}:")
                print(tail(procs[name].log_file, 40), file=sys.stderr)
            rows.append((name, waits[name][0].removesuffix("/readyz")))
        if failed:
            return 1

    width = max(len(r[0]) for r in rows)
    print(f"\nlocal stack up ({time.monotonic() - started:.1f}s), run dir {cfg.run_dir}")
    for name, where in rows:
        print(f"  {name:<{width}}  {where}")
    if not infra_only:
        print(f"  a token for the API (intake): {token_command(cfg)}")
        print(f'    then: curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:{cfg.http_port}/...')
        if cfg.count("intake") > 1:
            print(f"  the API: http://127.0.0.1:{cfg.http_port} (served by every intake worker; each also on its"
                  " own port above, for its /readyz and /metrics)")
        print(f"  the console: http://127.0.0.1:{cfg.http_port}/console/ (people's accounts: .venv/bin/petitionctl"
              " users add --username <u> --role <role> --password-stdin; see the README), public page /track")
    print("  stop with: make down")
    return 0


def token_command(cfg: StackConfig) -> str:
    """The shell line that issues a token the running intake accepts (its key ring is in the
    run folder, created when intake first started)."""
    default = StackConfig.from_env({}).run_dir
    where = "" if cfg.run_dir == default else f"PETITION_RUN_DIR={cfg.run_dir} "
    return f"TOKEN=$({where}.venv/bin/petitionctl token issue --subject op-001 --role operator)"


def cmd_down(cfg: StackConfig) -> int:
    """Stop services first (they hold connections), then Prometheus, Kafka, PostgreSQL."""
    rc = 0
    env = service_env(cfg.bootstrap, cfg.dsn, "", cfg.port_env(), cfg.run_dir)
    for name, _ in reversed(SERVICES):
        # every instance that may run, however many the environment now asks for
        for instance in every_instance(cfg, name):
            proc = service_process(name, env, cfg.run_dir, instance)
            if proc.stop():
                log(f"{instance.name} stopped")
    kafka, pg, prom = nodes(cfg)
    for label, node in (("Prometheus", prom), ("Kafka", kafka), ("PostgreSQL", pg)):
        try:
            if node.stop():
                log(f"{label} stopped")
        except StackError as exc:
            log(str(exc))
            rc = 1
    return rc


def every_instance(cfg: StackConfig, name: str) -> list[Instance]:
    """Every instance of `name` a stack may run: alone, or ``<name>-1`` .. ``<name>-9`` (an
    intake worker with its private port)."""
    base = cfg.instance_base(name)
    return [Instance(name, 1, name, cfg.service_port(name))] + [
        Instance(name, n, f"{name}-{n}", base + (n - 1) * INSTANCE_PORT_STEP) for n in range(1, MAX_INSTANCES + 1)
    ]


def cmd_status(cfg: StackConfig) -> int:
    env = service_env(cfg.bootstrap, cfg.dsn, "", cfg.port_env(), cfg.run_dir)
    kafka, pg, prom = nodes(cfg)
    lines = []

    def line(name: str, pid: int | None, port: int, ready: bool) -> None:
        state = "running" if pid else "stopped"
        lines.append(f"{name:<13} {state:<8} pid={pid or '-':<8} port={port:<6} "
                     f"{'ready' if ready else 'not-ready'}")

    for broker in kafka.nodes:
        kpid = broker.pid
        line(broker.name, kpid, broker.port, bool(kpid) and port_accepts(broker.port))
    pg_pid = pg.pid if find_postgres_bindir() else None
    line("postgres", pg_pid, pg.port, bool(pg_pid) and port_accepts(pg.port))
    ppid = prom.pid
    line("prometheus", ppid, prom.port, bool(ppid) and prom.is_ready())
    for name, _ in SERVICES:
        wanted = {i.name for i in cfg.instances(name)}
        for instance in every_instance(cfg, name):
            proc = service_process(name, env, cfg.run_dir, instance)
            spid = proc.pid
            if instance.name not in wanted and not spid:
                continue  # an instance this environment does not ask for, and not running
            line(instance.name, spid, instance.port,
                 bool(spid) and http_ok(f"http://127.0.0.1:{instance.port}/readyz"))
    print("\n".join(lines))
    return 0


def cmd_prepare() -> int:
    """Install or fetch whatever the stack needs and the machine lacks; quick when nothing is."""
    from deploy.stack import host  # the one import of host: only `prepare` changes the machine

    started = time.monotonic()
    found = host.prepare()
    log(f"host prepared ({time.monotonic() - started:.1f}s): "
        + ", ".join(f"{part} {where}" for part, where in found.items()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local stack: Kafka, PostgreSQL, "
                                     "Prometheus and the petition services.")
    parser.add_argument("command", choices=["prepare", "up", "down", "status"],
                        help="prepare installs or fetches what the machine lacks (the only command "
                             "that changes it); up, down and status drive the stack")
    parser.add_argument("--infra-only", action="store_true",
                        help="up: start Kafka, PostgreSQL and Prometheus only")
    args = parser.parse_args(argv)
    cfg = StackConfig.from_env()
    try:
        if args.command == "prepare":
            return cmd_prepare()
        if args.command == "up":
            return cmd_up(cfg, infra_only=args.infra_only)
        if args.command == "down":
            return cmd_down(cfg)
        return cmd_status(cfg)
    except StackError as exc:
        log(f"ERROR: {exc}")
        return 1
