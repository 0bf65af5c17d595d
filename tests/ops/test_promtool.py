"""`promtool check` and `promtool test rules` over the alert and recording rules."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from deploy.stack import render_prometheus_config
from tests.ops.conftest import REPO

RULES = sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((REPO / "deploy" / "prometheus" / "tests").glob("*.yml"))


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False)


def test_rule_files_pass_promtool_check(promtool: str) -> None:
    assert RULES, "no rule files in deploy/prometheus/rules"
    done = _run(promtool, "check", "rules", *map(str, RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_rule_unit_tests_pass(promtool: str) -> None:
    assert RULE_TESTS, "no promtool tests in deploy/prometheus/tests"
    done = _run(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_unit_test() -> None:
    alerts = {
        rule["alert"]
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    tested = {
        case["alertname"]
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if any(case.get("exp_alerts") or [])
    }
    assert alerts - tested == set(), "alerts without a test that shows them firing"


def test_rendered_prometheus_config_is_valid(promtool: str, tmp_path: Path) -> None:
    config = render_prometheus_config(tmp_path / "prometheus.yml", {})
    done = _run(promtool, "check", "config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout and "rule files found" in done.stdout + done.stderr


def test_every_job_the_down_alerts_watch_is_scraped(tmp_path: Path) -> None:
    """A Down alert on `up{job=...}` of a job the config does not scrape can never fire."""
    config = yaml.safe_load(render_prometheus_config(tmp_path / "prometheus.yml", {}).read_text())
    scraped = {job["job_name"] for job in config["scrape_configs"]}
    watched = {
        job
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        for jobs in re.findall(r'\bup\{job=~?"([^"]+)"', rule["expr"])
        for job in jobs.split("|")
    }
    assert {"intake", "router", "escalation", "watch"} <= watched
    assert watched - scraped == set(), "alerts on jobs Prometheus does not scrape"
