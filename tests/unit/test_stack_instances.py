"""Several instances of a service in one stack: names, ports, Prometheus targets (no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deploy.stack.config import StackConfig, service_env, service_process
from deploy.stack.prometheus import render_prometheus_config


def test_one_instance_keeps_the_services_name_and_port() -> None:
    cfg = StackConfig.from_env({})
    [router] = cfg.instances("router")
    assert (router.name, router.port) == ("router", 8081)
    assert cfg.count("intake") == 1


def test_several_instances_are_numbered_each_on_its_own_port() -> None:
    cfg = StackConfig.from_env({"PETITION_ROUTERS": "2", "PETITION_ESCALATIONS": "3", "PETITION_ROUTER_PORT": "9181"})
    assert [(i.name, i.port) for i in cfg.instances("router")] == [("router-1", 9181), ("router-2", 9281)]
    assert [i.name for i in cfg.instances("escalation")] == ["escalation-1", "escalation-2", "escalation-3"]
    assert [i.name for i in cfg.instances("watch")] == ["watch"]
    assert cfg.count_env() == {"PETITION_ROUTERS": "2", "PETITION_ESCALATIONS": "3", "PETITION_WATCHERS": "1"}


@pytest.mark.parametrize("value", ["0", "10", "two", "-1"])
def test_a_count_out_of_range_is_refused_with_its_variable(value: str) -> None:
    with pytest.raises(ValueError, match="PETITION_WATCHERS"):
        StackConfig.from_env({"PETITION_WATCHERS": value})


def test_each_instance_process_has_its_own_name_and_port(tmp_path: Path) -> None:
    cfg = StackConfig.from_env({"PETITION_ROUTERS": "2", "PETITION_RUN_DIR": str(tmp_path)})
    env = service_env(cfg.bootstrap, cfg.dsn, "k" * 64, cfg.port_env(), cfg.run_dir)
    second = cfg.instances("router")[1]
    proc = service_process("router", env, cfg.run_dir, second)
    assert proc.name == "router-2" and proc.env is not None
    assert proc.env["PETITION_ROUTER_PORT"] == "8181"
    assert proc.env["PETITION_KAFKA_USERNAME"] == "router"  # the service's principal, whichever instance
    alone = service_process("router", env, cfg.run_dir).env
    assert alone is not None and alone["PETITION_ROUTER_PORT"] == "8081"


def test_prometheus_scrapes_every_instance(tmp_path: Path) -> None:
    config = yaml.safe_load(render_prometheus_config(
        tmp_path / "prometheus.yml", {"PETITION_WATCH_PORT": "7000"}, {"router": 2, "watch": 3}).read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets["router"] == ["127.0.0.1:8081", "127.0.0.1:8181"]
    assert targets["watch"] == ["127.0.0.1:7000", "127.0.0.1:7100", "127.0.0.1:7200"]
    assert targets["escalation"] == ["127.0.0.1:8082"]
