"""Several instances of a service in one stack (intake's workers included): names, ports,
environment, Prometheus targets, status lines (no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deploy.stack import cli
from deploy.stack.config import INSTANCE_COUNTS, StackConfig, service_env, service_process
from deploy.stack.process import StackError
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
    assert cfg.count_env() == {"PETITION_INTAKE_WORKERS": "1", "PETITION_ROUTERS": "2", "PETITION_ESCALATIONS": "3",
                               "PETITION_WATCHERS": "1"}


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


def test_intake_alone_keeps_the_api_port_and_says_it_runs_alone(tmp_path: Path) -> None:
    cfg = StackConfig.from_env({"PETITION_RUN_DIR": str(tmp_path)})
    assert cfg.count("intake") == 1
    [intake] = cfg.instances("intake")
    assert (intake.name, intake.port, intake.alone) == ("intake", 8080, True)
    env = service_env(cfg.bootstrap, cfg.dsn, "k" * 64, cfg.port_env(), cfg.run_dir,
                      base={"PETITION_INTAKE_WORKER": "4"})  # whatever the shell exported
    proc = service_process("intake", env, cfg.run_dir, intake)
    assert proc.name == "intake" and proc.env is not None
    assert (proc.env["PETITION_HTTP_PORT"], proc.env["PETITION_INTAKE_WORKER"]) == ("8080", "0")


def test_intake_workers_share_the_api_port_each_with_a_private_port(tmp_path: Path) -> None:
    cfg = StackConfig.from_env({"PETITION_INTAKE_WORKERS": "3", "PETITION_RUN_DIR": str(tmp_path)})
    workers = cfg.instances("intake")
    assert [(i.name, i.n, i.port) for i in workers] == [("intake-1", 1, 8083), ("intake-2", 2, 8183),
                                                        ("intake-3", 3, 8283)]
    assert cfg.count_env()["PETITION_INTAKE_WORKERS"] == "3"
    env = service_env(cfg.bootstrap, cfg.dsn, "k" * 64, cfg.port_env(), cfg.run_dir)
    for worker in workers:
        proc = service_process("intake", env, cfg.run_dir, worker)
        assert proc.name == worker.name and proc.env is not None
        assert proc.env["PETITION_HTTP_PORT"] == "8080"  # the API's port, the same for all
        assert proc.env["PETITION_INTAKE_WORKER"] == str(worker.n)
        assert proc.env["PETITION_INTAKE_WORKER_PORT"] == str(worker.port)
        assert proc.env["PETITION_KAFKA_USERNAME"] == "intake"


def test_intake_workers_private_ports_follow_their_own_variable() -> None:
    cfg = StackConfig.from_env({"PETITION_INTAKE_WORKERS": "2", "PETITION_HTTP_PORT": "18080",
                                "PETITION_INTAKE_WORKER_PORT": "18090"})
    assert [i.port for i in cfg.instances("intake")] == [18090, 18190]


@pytest.mark.parametrize("value", ["0", "10", "many"])
def test_an_intake_worker_count_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="PETITION_INTAKE_WORKERS"):
        StackConfig.from_env({"PETITION_INTAKE_WORKERS": value})


def test_prometheus_scrapes_every_intake_worker_on_its_private_port(tmp_path: Path) -> None:
    def intake_targets(counts: dict[str, int]) -> list[str]:
        config = yaml.safe_load(render_prometheus_config(tmp_path / "prometheus.yml", {}, counts).read_text())
        [job] = [job for job in config["scrape_configs"] if job["job_name"] == "intake"]
        targets: list[str] = job["static_configs"][0]["targets"]
        return targets

    assert intake_targets({}) == ["127.0.0.1:8080"]
    assert intake_targets({"intake": 3}) == ["127.0.0.1:8083", "127.0.0.1:8183", "127.0.0.1:8283"]


def test_no_two_parts_share_a_port_with_the_defaults_at_any_count() -> None:
    nine = dict.fromkeys(INSTANCE_COUNTS.values(), "9")
    assert StackConfig.from_env({**nine, "PETITION_KAFKA_BROKERS": "3"}).clashing_ports() == []
    assert StackConfig.from_env({}).clashing_ports() == []


def test_a_port_two_parts_would_take_is_named() -> None:
    cfg = StackConfig.from_env({"PETITION_INTAKE_WORKERS": "2", "PETITION_ROUTERS": "2",
                                "PETITION_INTAKE_WORKER_PORT": "8181"})
    assert cfg.clashing_ports() == ["intake-1 and router-2 on port 8181"]
    cfg = StackConfig.from_env({"PETITION_INTAKE_WORKERS": "2", "PETITION_INTAKE_WORKER_PORT": "7980"})
    assert cfg.clashing_ports() == ["intake (the workers' API) and intake-2 on port 8080"]


def test_up_refuses_a_stack_whose_parts_share_a_port(tmp_path: Path) -> None:
    cfg = StackConfig.from_env({"PETITION_RUN_DIR": str(tmp_path), "PETITION_WATCH_PORT": "8081"})
    with pytest.raises(StackError, match="router and watch on port 8081"):
        cli.cmd_up(cfg)


def test_status_and_down_know_every_intake_worker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = StackConfig.from_env({"PETITION_RUN_DIR": str(tmp_path), "PETITION_INTAKE_WORKERS": "2"})
    names = {(i.name, i.port) for i in cli.every_instance(cfg, "intake")}
    assert {("intake", 8080), ("intake-1", 8083), ("intake-2", 8183), ("intake-9", 8883)} <= names
    assert cli.cmd_status(cfg) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("intake")]
    assert [(w[0], w[1], w[2], w[3]) for w in lines] == [("intake-1", "stopped", "pid=-", "port=8083"),
                                                         ("intake-2", "stopped", "pid=-", "port=8183")]
