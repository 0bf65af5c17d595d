"""The Grafana dashboards of the petition platform, as data; writes dashboards/*.json.

Grafana loads the JSON files (deploy/grafana/provisioning/dashboards/petition.yml points at
them); this script is their source, so a panel is one line here and the JSON never drifts
by hand. ``tests/ops/test_grafana.py`` fails when the JSON on disk differs from what this
script writes, and ``tests/integration/test_dashboards.py`` runs every panel's queries
against a live Prometheus after a demo load and fails on a query that returns no series.

Adding a panel for a metric that does not exist yet: put it in ``PENDING`` with the metric
it waits for. Pending panels are not rendered; ``tests/ops/test_grafana.py`` fails as soon
as the metric is declared in a ``metrics.py``, which is the reminder to move the panel up.

    .venv/bin/python -m deploy.grafana.build_dashboards          # rewrite the JSON
    .venv/bin/python -m deploy.grafana.build_dashboards --check  # exit 1 when out of date
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
DEPT = 'department=~"$department"'


@dataclass(frozen=True)
class Panel:
    title: str
    targets: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"  # timeseries | stat | table | bargauge
    description: str = ""
    width: int = 12


@dataclass(frozen=True)
class Pending:
    """A panel that waits for a metric another issue adds.

    `rate` is set when the metric exists but the series the panel needs does not: the
    ``rate`` label value of ``petition_department_rate_ratio`` nothing computes yet.
    """

    title: str
    metric: str
    expr: str
    waits_for: str
    rate: str = ""


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel]
    department_variable: bool = False
    pending: list[Pending] = field(default_factory=list)


def p(title: str, expr: str, legend: str = "", **kw: Any) -> Panel:
    return Panel(title, ((expr, legend),), **kw)


OPS = Dashboard(
    uid="petition-ops",
    title="Petitions / Ops overview",
    description="Flow through intake, router and escalation; latency, lag, dead letters and errors.",
    panels=[
        p("Services up", 'up{job=~"intake|router|escalation|watch"}', "{{job}}", kind="stat", width=6,
          description="1 when Prometheus scrapes the service. PetitionServiceDown after 2 minutes at 0"
                      " (PetitionWatchDown after 5 for the watch)."),
        p("Petitions submitted (last hour)", "sum(increase(petition_submitted_total[1h]))", "submitted",
          kind="stat", width=6),
        p("Routed (last hour)", "sum(increase(petition_routed_total[1h]))", "routed", kind="stat", width=6),
        p("Submit → routed p95",
          "histogram_quantile(0.95, sum by (le) (rate(petition_submit_to_routed_seconds_bucket[5m])))",
          "p95", unit="s", kind="stat", width=6),
        p("Submitted by channel", f"sum by (channel) (rate(petition_submitted_total[{RATE}]))", "{{channel}}",
          unit="reqps", description="Petitions accepted (202) per second, by channel."),
        p("Submitted by kind", f"sum by (kind) (rate(petition_submitted_total[{RATE}]))", "{{kind}}", unit="reqps"),
        p("Routed by category", f"sum by (category) (rate(petition_routed_total[{RATE}]))", "{{category}}",
          unit="reqps"),
        p("Events consumed by service and topic",
          f"sum by (service, topic) (rate(petition_events_consumed_total[{RATE}]))", "{{service}} ← {{topic}}",
          unit="reqps"),
        Panel("Submit → routed latency", (
            (f"histogram_quantile(0.5, sum by (le) (rate(petition_submit_to_routed_seconds_bucket[{RATE}])))", "p50"),
            (f"histogram_quantile(0.95, sum by (le) (rate(petition_submit_to_routed_seconds_bucket[{RATE}])))", "p95"),
            (f"histogram_quantile(0.99, sum by (le) (rate(petition_submit_to_routed_seconds_bucket[{RATE}])))", "p99"),
        ), unit="s", description="From intake's commit of the petition to the router's decision."),
        p("Consumer batch duration p95",
          "histogram_quantile(0.95, sum by (service, le)"
          f" (rate(petition_consumer_batch_duration_seconds_bucket[{RATE}])))",
          "{{service}}", unit="s", description="Applying one batch of events, database commit included."),
        p("Consumer lag (service groups)",
          'sum by (group, topic) (max without (instance, job) (petition_consumer_lag_messages{group=~"petition-.*"}))',
          "{{group}} / {{topic}}", description="Unread messages per group and topic (PetitionConsumerLagGrowing)."),
        p("Outbox backlog", "max by (service) (petition_outbox_backlog_messages)", "{{service}}",
          description="Committed events not yet on Kafka (PetitionOutboxNotDraining)."),
        p("Outbox published", f"sum by (service) (rate(petition_outbox_published_total[{RATE}]))", "{{service}}",
          unit="reqps"),
        p("Oldest unpublished outbox row", "max by (service) (petition_outbox_oldest_pending_age_seconds)",
          "{{service}}", unit="s",
          description="Age of the oldest committed event not yet on Kafka; grows while a relay is stuck"
                      " (PetitionOutboxStale at 2 minutes)."),
        p("Background loops up", "min by (service, task) (petition_background_task_up)", "{{service}} / {{task}}",
          description="1 while the loop runs and is healthy; restarted automatically when it crashes"
                      " (PetitionBackgroundLoopDown)."),
        p("Dead letters since start", "sum by (service, topic, reason) (petition_dead_letters_total)",
          "{{service}} ← {{topic}}: {{reason}}", kind="bargauge",
          description="Messages moved to deadletter.<service> since each service started (PetitionDeadLetters)."),
        p("Errors by source", " or ".join(
            f'label_replace(sum(rate({metric}[{RATE}])), "source", "{source}", "", "")'
            for metric, source in (
                ("petition_http_rejected_total", "http rejected (4xx)"),
                ("petition_dead_letters_total", "dead letters"),
                ("petition_outbox_publish_errors_total", "outbox publish errors"),
                ("petition_consumer_retries_total", "consumer retries"),
                ("petition_consumer_lag_collection_errors_total", "lag collection errors"),
            )), "{{source}}", unit="reqps",
          description="One line per kind of error that has happened since the services started."),
        p("HTTP requests rejected by reason", f"sum by (reason) (rate(petition_http_rejected_total[{RATE}]))",
          "{{reason}}", unit="reqps"),
    ],
)

DEPARTMENTS = Dashboard(
    uid="petition-departments",
    title="Petitions / Departments",
    description="What each department receives, has not read, returns, and (once measured) its overdue work.",
    department_variable=True,
    panels=[
        p("Assigned (last hour)", f"topk(15, sum by (department) (increase(petition_routed_total{{{DEPT}}}[1h])))",
          "{{department}}", kind="bargauge", description="Routing decisions per department, reassignments included."),
        p("Unread assignments (queue backlog)",
          'sum by (department) (label_replace(max without (instance, job) '
          '(petition_consumer_lag_messages{group=~"dept-($department)"}), "department", "$1", "group", "dept-(.*)"))',
          "{{department}}", description="Assignments in dept.<code>.assignments its group dept-<code> has not read."),
        p("Returns (退单) by department", f"sum by (department) (increase(petition_returns_total{{{DEPT}}}[1h]))",
          "{{department}}", description="Returns in the last hour, by the department that returned."),
        p("Sent to the triage desk by reason", "sum by (reason) (increase(petition_triaged_total[1h]))", "{{reason}}",
          description="Petitions the router could not place with confidence, or returned too often."),
        p("Department actions", f"sum by (action) (rate(petition_actions_total[{RATE}]))", "{{action}}",
          unit="reqps", description="accept (签收), resolve (办结), return (退单) and the rest, all departments."),
        p("Routed by department and category",
          f"sum by (department, category) (petition_routed_total{{{DEPT}}})", "{{department}} {{category}}",
          kind="table"),
        p("Open deadlines by department",
          f"sum by (department, state) (max without (instance, job) (petition_sla_open_clocks{{{DEPT}}}))",
          "{{department}} {{state}}",
          description="Open clocks (签收, 首次联系, 受理, 办结) per department and state: running, warned "
                      "(past the first warning), breached, paused (PetitionDepartmentNearBreach)."),
        p("Overdue (breached, still open) by department",
          f'sum by (department) (max without (instance, job) (petition_sla_open_clocks{{state="breached",{DEPT}}}))',
          "{{department}}", kind="bargauge",
          description="Clocks past their deadline and not yet stopped: the department's overdue work (超期)."),
        p("三率: response rate (响应率)",
          f'max by (department) (petition_department_rate_ratio{{rate="response",{DEPT}}})', "{{department}}",
          unit="percentunit", kind="bargauge",
          description="Of the assignments whose sign-for (签收) deadline has passed or that were signed for, "
                      "the share signed for in time; clocks started in the last 30 days."),
        p("三率: resolution rate (解决率)",
          f'max by (department) (petition_department_rate_ratio{{rate="resolution",{DEPT}}})', "{{department}}",
          unit="percentunit", kind="bargauge",
          description="Of the petitions whose resolution (办结) deadline has passed or that were resolved, the "
                      "share resolved in time; clocks started in the last 30 days."),
        p("三率 this month: satisfaction rate (满意率)",
          f'max by (department) (petition_kpi_rate{{rate="satisfaction",{DEPT}}})', "{{department}}",
          unit="percentunit", kind="bargauge",
          description="(satisfied + 0.8 x basically satisfied) / follow-ups (回访) that reached the petitioner, "
                      "this month; from intake's 三率 projection (GET /v1/kpis, handbook/KPIS.md)."),
        p("三率 this month: score (综合得分)",
          f'max by (department) (petition_kpi_score{{{DEPT}}})', "{{department}}", kind="bargauge",
          description="The weighted score of the three rates (0-100) this month; each department is ranked "
                      "within its area by it (GET /v1/kpis?area=)."),
    ],
)

SLA = Dashboard(
    uid="petition-sla",
    title="Petitions / SLA and escalations",
    description="Clocks armed and stopped, warnings, breaches, timer health and the holiday calendar.",
    panels=[
        p("Breaches (last hour)", "sum(increase(petition_sla_breaches_total[1h]))", "breaches", kind="stat", width=6),
        p("Warnings (last hour)", "sum(increase(petition_sla_warnings_total[1h]))", "warnings", kind="stat", width=6),
        p("Timer lateness p95",
          "histogram_quantile(0.95, sum by (le) (rate(petition_timer_lateness_seconds_bucket[5m])))",
          "p95", unit="s", kind="stat", width=6,
          description="How late timers fire after falling due; downtime (and back-dated petitions) show here."),
        p("Deadlines computed without calendar (last hour)", "sum(increase(petition_calendar_missing_total[1h]))",
          "Mon-Fri fallback", kind="stat", width=6,
          description="Deadlines falling in a year the holiday calendar does not know"
                      " (PetitionDeadlinesWithoutCalendar)."),
        p("Clocks armed by clock", f"sum by (clock) (rate(petition_sla_clocks_armed_total[{RATE}]))", "{{clock}}",
          unit="reqps"),
        p("Clocks stopped by clock and reason",
          f"sum by (clock, reason) (rate(petition_sla_clocks_stopped_total[{RATE}]))", "{{clock}}: {{reason}}",
          unit="reqps"),
        p("Warnings by clock", "sum by (clock) (increase(petition_sla_warnings_total[1h]))", "{{clock}}",
          description="Warnings issued in the last hour (at 50, 75 and 90 % of the time allowed)."),
        p("Breaches by clock", "sum by (clock) (increase(petition_sla_breaches_total[1h]))", "{{clock}}",
          description="Deadlines missed in the last hour (PetitionSlaBreachesRising)."),
        p("Timers fired by kind", f"sum by (kind) (rate(petition_timers_fired_total[{RATE}]))", "{{kind}}",
          unit="reqps"),
        Panel("Timer lateness", (
            (f"histogram_quantile(0.5, sum by (le) (rate(petition_timer_lateness_seconds_bucket[{RATE}])))", "p50"),
            (f"histogram_quantile(0.95, sum by (le) (rate(petition_timer_lateness_seconds_bucket[{RATE}])))", "p95"),
        ), unit="s"),
        p("Open deadlines by clock and state",
          "sum by (clock, state) (max without (instance, job) (petition_sla_open_clocks))", "{{clock}} {{state}}"),
        p("Days of holiday calendar left",
          "(min(petition_calendar_known_until_timestamp_seconds) - time()) / 86400", "days", unit="d",
          kind="stat", width=6,
          description="Until the end of the last year the statutory calendar knows (PetitionHolidayCalendarEnding "
                      "below 60)."),
        p("Open 督办 by level", "sum by (level) (max without (instance, job) (petition_supervisions_open))",
          "{{level}}", kind="stat", width=6),
        p("Escalations by level", "sum by (level) (increase(petition_escalations_total[1h]))", "{{level}}",
          description="Ladder steps in the last hour: handling unit, superior unit, district, city office."),
        p("Supervision orders (督办) by level", "sum by (level) (increase(petition_supervision_orders_total[1h]))",
          "{{level}}",
          description="督办 opened in the last hour: by ladder level, zero_report (a missing zero report), "
                      "overdue (an earlier 督办 lapsed and went one level up)."),
        p("督办 lapsed by level", "sum by (level) (increase(petition_supervisions_overdue_total[1h]))", "{{level}}",
          description="督办 whose own deadline passed while open, in the last hour, by the lapsed order's level."),
    ],
)

ZERO_REPORTS = Dashboard(
    uid="petition-zero-reports",
    title="Petitions / Zero-report compliance",
    description="零报告: reports received on time and late, units missing their report, per period.",
    panels=[
        p("Zero-report topics: unread messages",
          'sum by (group, topic) (max without (instance, job)'
          ' (petition_consumer_lag_messages{topic=~"zero_report\\\\..*"}))',
          "{{group}} / {{topic}}",
          description="Consumers of zero_report.submitted and zero_report.status keep up (0 is healthy)."),
        p("Units missing their report (漏报)", "max without (instance, job) (petition_zero_reports_missing_units)",
          "missing", kind="stat", width=6,
          description="Reporting units whose latest due period has no report (PetitionZeroReportsMissing)."),
        p("Late share (迟报率)",
          'sum(increase(petition_zero_reports_received_total{timeliness="late"}[1d])) '
          "/ sum(increase(petition_zero_reports_received_total[1d]))", "late", unit="percentunit",
          kind="stat", width=6, description="Reports received after the cut-off, of all received, last 24 hours."),
        p("Zero reports received by timeliness",
          "sum by (timeliness) (increase(petition_zero_reports_received_total[1h]))", "{{timeliness}}"),
    ],
)

EARLY_WARNING = Dashboard(
    uid="petition-early-warning",
    title="Petitions / Early warning",
    description="预警: surges per area and category, incidents reported by many (clusters), their risk level, "
                "and petitions linked to an incident held by another department (并案).",
    panels=[
        p("Active early warnings", "sum(petition_watch_alerts_active)", "active", kind="stat", width=6,
          description="Alerts the watch holds open, all kinds and levels (PetitionEarlyWarning); "
                      "the alerts themselves: GET /v1/alerts?state=active."),
        p("High-risk (level 3) active", 'sum(petition_watch_alerts_active{level="3"})', "level 3", kind="stat",
          width=6, description="Alerts whose petitions include group petitions, repeat petitioners or accusations"
                               " (矛盾纠纷; PetitionEarlyWarningHighRisk)."),
        p("Alerts opened (last hour)", "sum(increase(petition_watch_alerts_opened_total[1h]))", "opened",
          kind="stat", width=6),
        p("Petitions linked, 并案 (last hour)", "sum(increase(petition_watch_linked_total[1h]))", "linked",
          kind="stat", width=6,
          description="Petitions that joined an open incident held by another department and were sent there."),
        p("Active early warnings by kind and level", "sum by (kind, level) (petition_watch_alerts_active)",
          "{{kind}} level {{level}}",
          description="surge: more petitions about one category in one area than its history leads to expect; "
                      "cluster: one incident reported by many. Level 1 low, 2 raised, 3 high risk."),
        Panel("Alerts opened and closed by kind (per hour)", (
            ("sum by (kind) (increase(petition_watch_alerts_opened_total[1h]))", "opened {{kind}}"),
            ("sum by (kind) (increase(petition_watch_alerts_closed_total[1h]))", "closed {{kind}}"),
        ), description="Alerts opened and closed in the last hour: a surge closes when a later window of its "
                       "key is no longer a surge, a cluster when its incident goes quiet."),
        p("Petitions linked to an incident (并案)", f"sum(rate(petition_watch_linked_total[{RATE}]))", "linked",
          unit="reqps", description="Petitions sent to the department holding their incident (并案), per second."),
        p("Petitions observed by the watch", f"sum(rate(petition_watch_observed_total[{RATE}]))", "observed",
          unit="reqps", description="Routed petitions the watch takes in; it should follow the routed rate."),
    ],
)

DASHBOARDS = {"ops-overview": OPS, "departments": DEPARTMENTS, "sla-escalations": SLA, "zero-reports": ZERO_REPORTS,
              "early-warning": EARLY_WARNING}


def _panel_json(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    height = 4 if panel.kind == "stat" else 8
    out: dict[str, Any] = {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend,
             "range": panel.kind != "table", "instant": panel.kind == "table"}
            for i, (expr, legend) in enumerate(panel.targets)
        ],
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {},
    }
    if panel.kind == "timeseries":
        out["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    elif panel.kind in ("stat", "bargauge"):
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    return out


def render(board: Dashboard) -> dict[str, Any]:
    panels, x, y, row_height = [], 0, 0, 0
    for pid, panel in enumerate(board.panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        panels.append(_panel_json(panel, pid, x, y))
        row_height = max(row_height, panels[-1]["gridPos"]["h"])
        x += panel.width
    variables: list[dict[str, Any]] = [{
        "name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
        "current": {}, "hide": 0, "refresh": 1,
    }]
    if board.department_variable:
        variables.append({
            "name": "department", "label": "Department", "type": "query", "datasource": DATASOURCE,
            "query": {"query": "label_values(petition_routed_total, department)", "refId": "department"},
            "definition": "label_values(petition_routed_total, department)",
            "multi": True, "includeAll": True, "allValue": ".*", "current": {}, "refresh": 2, "sort": 1, "hide": 0,
        })
    return {
        "uid": board.uid,
        "title": board.title,
        "description": board.description,
        "tags": ["petition"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "panels": panels,
    }


def rendered() -> dict[str, str]:
    """File name → JSON text of every dashboard."""
    return {f"{name}.json": json.dumps(render(board), ensure_ascii=False, indent=2) + "\n"
            for name, board in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    files = rendered()
    if "--check" in argv:
        stale = [n for n, text in files.items() if not (OUT / n).is_file() or (OUT / n).read_text("utf-8") != text]
        if stale:
            print(f"out of date: {', '.join(stale)}; run python -m deploy.grafana.build_dashboards", file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
