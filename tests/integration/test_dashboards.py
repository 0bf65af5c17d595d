"""Dashboards and alerts against a real Prometheus scraping the real services.

A private Prometheus (Debian's package, on a free port) scrapes the services every second and
evaluates the real rule files every second; deploy.demo puts a short load through the HTTP
API. Then every Grafana panel query must return a series, and a provoked dead letter must show
up as a firing PetitionDeadLetters alert.

The module runs its own Kafka, PostgreSQL and services rather than the session `stack`: the
demo's petitions, zero reports and undecodable messages would otherwise land in the topics,
department queues and supervision lists other tests read from the beginning.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from deploy.grafana import check_panels
from deploy.stack import PrometheusNode, free_ports, pid_alive, tail, wait_http_ready
from deploy.stack.testinfra import start_test_infra
from shared import topics
from tests.integration.conftest import REPO, WITH_WATCH, Stack, new_stack, running, wait_for

pytestmark = pytest.mark.integration

DEMO_SECONDS = 35


def _get(url: str, timeout: float = 10) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as resp:
        return json.load(resp)


def _config(stack: Stack) -> str:
    jobs = {"intake": stack.ports["PETITION_HTTP_PORT"], "router": stack.ports["PETITION_ROUTER_PORT"],
            "watch": stack.ports["PETITION_WATCH_PORT"],
            "escalation": stack.ports["PETITION_ESCALATION_PORT"]}
    scrape = "\n".join(
        f"  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']"
        for job, port in jobs.items())
    rules = REPO / "deploy" / "prometheus" / "rules"
    return (f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - '{rules}/*.yml'\nscrape_configs:\n{scrape}\n")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Kafka, PostgreSQL and the three services of this module alone (see the docstring)."""
    infra = start_test_infra(tmp_path_factory.mktemp("ops-infra"))
    try:
        with running(new_stack(infra, tmp_path_factory.mktemp("ops-run"), own_table=False), WITH_WATCH) as s:
            yield s
    finally:
        infra.stop()


@pytest.fixture(scope="module")
def prometheus(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("prometheus")
    config = folder / "prometheus.yml"
    config.write_text(_config(stack))
    (port,) = free_ports(1)
    node = PrometheusNode(port, folder, config)
    node.start()
    pid = node.pid
    try:
        # readiness by HTTP only: PrometheusNode.wait_ready also trusts the PID file, which
        # another pytest session's tmp-dir cleanup can remove under us
        if not wait_http_ready(f"{node.url}/-/ready", 60):
            raise RuntimeError(f"Prometheus not ready:\n{tail(node.log_file)}")
        yield node.url
    finally:
        if not node.stop() and pid is not None and pid_alive(pid):
            os.killpg(pid, signal.SIGTERM)  # the PID file is gone, the process is ours


@pytest.fixture(scope="module")
def demo_load(stack: Stack, prometheus: str) -> str:
    """A short demo through the HTTP API (two poison messages included); returns its tally."""
    done = subprocess.run(
        [sys.executable, "-m", "deploy.demo", "--base-url", stack.base_url,
         "--duration", str(DEMO_SECONDS), "--rate", "4", "--backdated-share", "0.3", "--seed", "7",
         "--poison", "2", "--kafka-bootstrap", stack.infra.bootstrap],
        capture_output=True, text=True, timeout=DEMO_SECONDS + 60, env=stack.env, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_every_dashboard_panel_returns_data_after_a_demo(prometheus: str, demo_load: str) -> None:
    assert "action:accept" in demo_load and "action:return" in demo_load
    assert "submit:http_422" in demo_load  # the blank forms the rejections panel needs
    loaded = _get(f"{prometheus}/api/v1/rules")["data"]["groups"]
    assert {g["name"] for g in loaded} >= {"petition-platform"}
    empty = check_panels.wait_for_data(prometheus, wait=60)
    assert not empty, "panels without data:\n" + "\n".join(f"{b} / {p}: {e}" for b, p, e in empty)


def _firing(prometheus: str, **labels: str) -> list[dict[str, Any]]:
    alerts = _get(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["state"] == "firing"
            and all(a["labels"].get(k) == v for k, v in labels.items())]


def _series(prometheus: str, expr: str) -> list[dict[str, Any]]:
    return _get(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")["data"]["result"]


def test_a_dead_letter_fires_its_alert(stack: Stack, prometheus: str, demo_load: str) -> None:
    from kafka import KafkaProducer

    wanted = {"alertname": "PetitionDeadLetters", "service": "escalation", "topic": topics.PETITION_ROUTED}
    selector = 'petition_dead_letters_total{service="escalation",topic="petition.routed"}'
    if not _series(prometheus, selector):
        # nothing dead-lettered there yet: the alert must be quiet before we provoke it
        assert not _firing(prometheus, **wanted)
    producer = KafkaProducer(**stack.infra.admin.options())
    producer.send(topics.PETITION_ROUTED, key=b"ops-poison", value=b"not an event " + str(time.time()).encode())
    producer.flush()
    producer.close()
    alert = wait_for(lambda: _firing(prometheus, **wanted), timeout=60, interval=1.0)[0]
    assert alert["labels"]["severity"] == "ticket"
    assert alert["labels"]["reason"] == "undecodable"
    assert "deadletter.escalation" in alert["annotations"]["description"]

