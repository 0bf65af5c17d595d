"""The escalation service's decisions over the facts its handlers loaded: pure, no I/O, no
metrics, time passed in. Each function returns frozen data: the changes to write
(:mod:`services.escalation.rows`) and the events to publish, with their deterministic ids.

* :mod:`.clocks`: arming and re-arming a routed petition's clocks; what an action does to
  each clock (stop, pause, resume, request or approve an extension); a closed 督办's event;
* :mod:`.firing`: a batch of due timers (:func:`plan_firing`);
* :mod:`.reports`: a zero report's verdict, the missing periods and the 督办 they open,
  lapsed 督办 and the ones opened above them.
"""

from services.escalation.planning.clocks import (
    CalendarGap,
    PetitionPlan,
    plan_action,
    plan_routed,
    supervision_closed,
    supervision_opened,
    timers_for,
)
from services.escalation.planning.firing import CappedStep, Firing, plan_firing
from services.escalation.planning.reports import (
    MissingReport,
    OverduePlan,
    ReportVerdict,
    judge_report,
    plan_missing_reports,
    plan_overdue_supervisions,
    received_report,
    report_status,
)

__all__ = [
    "CalendarGap",
    "CappedStep",
    "Firing",
    "MissingReport",
    "OverduePlan",
    "PetitionPlan",
    "ReportVerdict",
    "judge_report",
    "plan_action",
    "plan_firing",
    "plan_missing_reports",
    "plan_overdue_supervisions",
    "plan_routed",
    "received_report",
    "report_status",
    "supervision_closed",
    "supervision_opened",
    "timers_for",
]
