"""The Grafana dashboards and provisioning files, checked without a Grafana."""

from __future__ import annotations

import json
import re

import yaml

from deploy.grafana import build_dashboards, check_panels
from tests.ops.conftest import REPO

GRAFANA = REPO / "deploy" / "grafana"

METRIC = re.compile(r"\b(petition_[a-z0-9_]+|up)\b")
SUFFIXES = ("_bucket", "_count", "_sum")


def declared_metrics() -> set[str]:
    """Metric names declared in the services' and shared metrics modules (and the lag collector)."""
    sources = [*REPO.glob("services/*/metrics.py"), REPO / "shared" / "metrics.py", REPO / "shared" / "lag.py"]
    names: set[str] = {"up"}
    for path in sources:
        names |= set(re.findall(r'"(petition_[a-z0-9_]+)"', path.read_text("utf-8")))
    return names


def test_dashboard_json_is_what_the_builder_writes() -> None:
    for name, text in build_dashboards.rendered().items():
        on_disk = (GRAFANA / "dashboards" / name).read_text("utf-8")
        assert on_disk == text, f"{name} is stale: run python -m deploy.grafana.build_dashboards"
    assert {p.name for p in (GRAFANA / "dashboards").glob("*.json")} == set(build_dashboards.rendered())


def test_every_panel_queries_a_declared_metric_through_the_datasource_variable() -> None:
    declared = declared_metrics()
    for path in (GRAFANA / "dashboards").glob("*.json"):
        board = json.loads(path.read_text("utf-8"))
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), path.name
        assert board["uid"] and board["panels"], path.name
        for panel in board["panels"]:
            assert panel["targets"], (path.name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"
                used = set(METRIC.findall(target["expr"]))
                undeclared = {m for m in used if m not in declared and not m.endswith(SUFFIXES)}
                undeclared |= {m for m in used if m.endswith(SUFFIXES) and not any(
                    m.removesuffix(s) in declared for s in SUFFIXES if m.endswith(s))}
                assert not undeclared, f"{path.name} / {panel['title']}: {undeclared} not declared anywhere"


def test_pending_panels_still_wait_for_their_metric() -> None:
    """When a pending panel's metric (or 三率 rate) lands, move the panel into the dashboard."""
    from services.escalation.domain.rates import RATE_CLOCKS

    declared = declared_metrics()
    for board in build_dashboards.DASHBOARDS.values():
        for pending in board.pending:
            assert pending.metric in pending.expr
            if pending.rate:
                assert f'rate="{pending.rate}"' in pending.expr
                assert pending.rate not in RATE_CLOCKS, (
                    f"rate {pending.rate} is computed now: render the panel '{pending.title}' of {board.title}")
            else:
                assert pending.metric not in declared, (
                    f"{pending.metric} is declared now: render the panel '{pending.title}' of {board.title}")


def test_rendered_rate_panels_match_the_computed_rates() -> None:
    from services.escalation.domain.rates import RATE_CLOCKS

    exprs = [e for b in build_dashboards.DASHBOARDS.values() for panel in b.panels for e, _ in panel.targets]
    rates = {r for e in exprs for r in re.findall(r'petition_department_rate_ratio\{rate="([a-z_]+)"', e)}
    assert rates == set(RATE_CLOCKS)


def test_check_panels_substitutes_grafana_variables() -> None:
    queries = list(check_panels.panel_queries())
    assert len(queries) == sum(len(p.targets) for b in build_dashboards.DASHBOARDS.values() for p in b.panels)
    assert all("$__" not in expr and "$department" not in expr for _, _, expr in queries)


def test_provisioning_points_at_the_dashboards_and_the_local_prometheus() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "petition.yml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    assert ds["datasources"][0]["url"] == "http://127.0.0.1:9090"
    boards = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "petition.yml").read_text())
    assert boards["providers"][0]["options"]["path"] == "${PETITION_REPO}/deploy/grafana/dashboards"
