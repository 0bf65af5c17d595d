"""Intake's stores in memory: the command/query store and the read model's, on one database
(they share intake's schema, as their PostgreSQL versions do)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.intake.domain.alerts import AREA_CODE_DIGITS, supersedes
from services.intake.readmodel.store import Routing, ZeroReportVerdict
from services.intake.store import (
    AlertRow,
    AreaOverview,
    AtRisk,
    AuditEntry,
    CallerPetition,
    Contact,
    Deadline,
    DepartmentFigures,
    IdempotentPetition,
    IncidentLinkRow,
    NewPetitionRow,
    PetitionLabel,
    PetitionRow,
    PublicCase,
    PublicRequest,
    QueueRow,
    SupervisionRow,
    TimelineEntry,
    ZeroReportRow,
    ZeroReportSubmission,
)
from shared.events import SupervisionOrder
from tests.fakes import FakeDatabase, FakeTransaction


class IntakeDb(FakeDatabase):
    def __init__(self) -> None:
        super().__init__()
        self.petitions: dict[str, dict[str, Any]] = {}
        self.contacts: dict[str, tuple[str | None, str | None, str | None, str | None]] = {}
        self.timeline: list[dict[str, Any]] = []
        self.idempotency: dict[str, tuple[str, str]] = {}
        self.deadlines: dict[tuple[str, str], dict[str, Any]] = {}
        self.supervisions: dict[uuid.UUID, dict[str, Any]] = {}
        self.zero_submissions: dict[tuple[str, str], dict[str, Any]] = {}
        self.zero_status: dict[tuple[str, str], dict[str, Any]] = {}
        self.assignments: dict[tuple[str, str], datetime] = {}
        self.audit_log: list[dict[str, Any]] = []
        self.kpi: dict[tuple[str, Any], dict[str, int]] = {}  # (department, day) -> counters
        self.kpi_facts: set[tuple[uuid.UUID, str]] = set()
        self.assignment_days: dict[tuple[str, str], Any] = {}
        self.alerts: dict[str, AlertRow] = {}
        self.incident_links: dict[tuple[str, str], IncidentLinkRow] = {}  # (petition, incident) -> link

    def routed(self, petition_id: str, department: str, *, status: str = "assigned", assignment_no: int = 1,
               jurisdiction: str = "430103", accused: tuple[str, ...] = ()) -> None:
        """What the read model records when a petition is routed (test set-up); the
        jurisdiction is the A3 district unless said otherwise."""
        self.petitions[petition_id].update(status=status, department_code=department,
                                           department_name=department, assignment_no=assignment_no,
                                           jurisdiction={"code": jurisdiction, "name": jurisdiction,
                                                         "level": "district"},
                                           accused_departments=accused)
        self.assignments.setdefault((petition_id, department), datetime(2026, 1, 1, tzinfo=UTC))

    def timeline_of(self, petition_id: str) -> list[str]:
        return [t["event"] for t in self.timeline if t["petition_id"] == petition_id]


def _petition_row(p: dict[str, Any], assigned: frozenset[str]) -> PetitionRow:
    fields: dict[str, Any] = {f.name: p.get(f.name) for f in dataclasses.fields(PetitionRow) if f.name != "assigned"}
    return PetitionRow(**fields, assigned=assigned)


class FakeIntakeStore(FakeTransaction):
    db: IntakeDb

    def _by_ref(self, ref: str) -> dict[str, Any] | None:
        self.db.maybe_fail()
        if ref in self.db.petitions:
            return self.db.petitions[ref]
        return next((p for p in self.db.petitions.values() if p["tracking_code"] == ref), None)

    async def insert_petition(self, row: NewPetitionRow) -> None:
        self.db.maybe_fail()
        if row.id in self.db.petitions:
            raise ValueError(f"duplicate petition {row.id}")
        self.db.petitions[row.id] = {
            **dataclasses.asdict(row), "status": "submitted", "category": None, "department_code": None,
            "department_name": None, "assignment_no": 0, "jurisdiction": None, "priority": None, "rule": None,
            "repeat_of": None, "group_petition": False, "accused_departments": (), "extension_state": None,
            "status_before_pause": None, "follow_up_attempts": 0, "reopen_count": 0, "resolved_by": None,
        }

    async def insert_contact(self, petition_id: str, name: str | None, phone: str | None,
                             id_number: str | None, email: str | None = None) -> None:
        self.db.contacts[petition_id] = (name, phone, id_number, email)

    async def add_timeline(self, petition_id: str, at: datetime, event: str, detail: dict[str, Any],
                           event_id: uuid.UUID) -> None:
        self.db.maybe_fail()
        if petition_id in self.db.petitions and all(t["event_id"] != event_id for t in self.db.timeline):
            self.db.timeline.append({"petition_id": petition_id, "at": at, "event": event, "detail": detail,
                                     "event_id": event_id})

    async def store_idempotency_key(self, key: str, request_hash: str, petition_id: str) -> bool:
        if key in self.db.idempotency:
            return False
        self.db.idempotency[key] = (request_hash, petition_id)
        return True

    async def idempotent_petition(self, key: str) -> IdempotentPetition | None:
        self.db.maybe_fail()
        found = self.db.idempotency.get(key)
        if found is None:
            return None
        p = self.db.petitions[found[1]]
        return IdempotentPetition(found[0], p["id"], p["tracking_code"], p["status"])

    async def petition(self, ref: str, *, for_update: bool = False) -> PetitionRow | None:
        p = self._by_ref(ref)
        if p is None:
            return None
        return _petition_row(p, frozenset(d for (pid, d) in self.db.assignments if pid == p["id"]))

    async def set_status(self, petition_id: str, status: str, extension_state: str | None) -> None:
        p = self.db.petitions[petition_id]
        if status == "paused":
            p["status_before_pause"] = p["status"]
        p["status"], p["extension_state"] = status, extension_state

    async def deadlines(self, petition_id: str) -> list[Deadline]:
        rows = [d for (pid, _), d in self.db.deadlines.items() if pid == petition_id]
        return [Deadline(d["clock"], d["due_at"], d["state"]) for d in sorted(rows, key=lambda d: d["due_at"])]

    async def timeline(self, petition_id: str) -> list[TimelineEntry]:
        return [TimelineEntry(t["at"], t["event"], t["detail"]) for t in self.db.timeline
                if t["petition_id"] == petition_id]

    def _supervision_row(self, s: dict[str, Any]) -> SupervisionRow:
        petition = self.db.petitions.get(s["petition_id"] or "")
        fields: dict[str, Any] = {f.name: s.get(f.name) for f in dataclasses.fields(SupervisionRow)}
        fields["tracking_code"] = petition["tracking_code"] if petition else None
        fields["accused"] = tuple(petition.get("accused_departments") or ()) if petition else ()
        return SupervisionRow(**fields)

    async def supervision(self, supervision_id: uuid.UUID, *, for_update: bool = False) -> SupervisionRow | None:
        self.db.maybe_fail()
        s = self.db.supervisions.get(supervision_id)
        return self._supervision_row(s) if s is not None else None

    async def supervisions_for(self, unit: str, state: str, limit: int) -> list[SupervisionRow]:
        rows = [s for s in self.db.supervisions.values()
                if s["target_unit"] == unit and state in ("all", s["state"])]
        rows.sort(key=lambda s: (s["opened_at"], s["id"]))
        return [self._supervision_row(s) for s in rows[:limit]]

    async def request_close(self, supervision_id: uuid.UUID, unit: str, at: datetime) -> None:
        self.db.supervisions[supervision_id].update(close_requested_by=unit, close_requested_at=at)

    async def insert_zero_report(self, unit: str, period: str, submission_id: uuid.UUID, incidents: list[str],
                                 request_hash: str, at: datetime) -> bool:
        self.db.maybe_fail()
        if (unit, period) in self.db.zero_submissions:
            return False
        self.db.zero_submissions[(unit, period)] = {"submission_id": submission_id, "incidents": list(incidents),
                                                    "request_hash": request_hash, "submitted_at": at}
        return True

    async def zero_report_submission(self, unit: str, period: str) -> ZeroReportSubmission | None:
        z = self.db.zero_submissions.get((unit, period))
        return ZeroReportSubmission(z["submission_id"], z["request_hash"]) if z else None

    async def zero_reports(self, unit: str, period: str | None) -> list[ZeroReportRow]:
        periods = {p for (u, p) in [*self.db.zero_status, *self.db.zero_submissions] if u == unit}
        out = []
        for p in sorted(periods):
            if period is not None and p != period:
                continue
            s, z = self.db.zero_status.get((unit, p), {}), self.db.zero_submissions.get((unit, p), {})
            out.append(ZeroReportRow(
                p, s.get("status"), s.get("rule"), s.get("due_at"), s.get("submitted_at") or z.get("submitted_at"),
                s["incidents"] if s else (len(z["incidents"]) if z else None), s.get("escalated_to"),
                z.get("submission_id"),
            ))
        return out


    async def contact(self, petition_id: str) -> Contact | None:
        found = self.db.contacts.get(petition_id)
        return Contact(*found) if found else None

    async def add_audit(self, at: datetime, subject: str, role: str, action: str, petition_id: str,
                        reason: str) -> int:
        self.db.maybe_fail()
        entry: dict[str, Any] = {"id": len(self.db.audit_log) + 1, "at": at, "subject": subject, "role": role,
                                 "action": action, "petition_id": petition_id, "reason": reason}
        self.db.audit_log.append(entry)
        return int(entry["id"])

    async def audit(self, petition_id: str | None, limit: int) -> list[AuditEntry]:
        rows = [e for e in reversed(self.db.audit_log) if petition_id is None or e["petition_id"] == petition_id]
        return [AuditEntry(**e) for e in rows[:limit]]

    async def area_overview(self, codes: Sequence[str] | None, tokens: Sequence[str] | None,
                            limit: int, *, figures: bool = True) -> AreaOverview:
        """Clocks at risk and the departments' figures (the fake keeps no zero-report verdicts here)."""
        self.db.maybe_fail()
        risky = []
        for (pid, clock), d in self.db.deadlines.items():
            p = self.db.petitions[pid]
            if d["state"] in ("warned", "breached") and (
                    codes is None or (p.get("jurisdiction") or {}).get("code") in codes):
                risky.append(AtRisk(pid, p["tracking_code"], p["title"], p.get("department_code"),
                                    p.get("department_name"), tuple(p.get("accused_departments") or ()), clock,
                                    d["due_at"], d["state"]))
        counted: dict[str, list[int]] = {}
        for p in self.db.petitions.values():
            code = p.get("department_code")
            if code is None or (tokens is not None and code.split("-", 1)[0] not in tokens):
                continue
            counts = counted.setdefault(code, [0] * 6)
            counts[1 if p["status"] in ("resolved", "closed") else 0] += 1
            for offset, clock in ((2, "sign_for"), (4, "resolution")):
                state = (self.db.deadlines.get((p["id"], clock)) or {}).get("state")
                if state == "stopped":
                    counts[offset] += 1
                elif state in ("breached", "breached_stopped"):
                    counts[offset + 1] += 1
        return AreaOverview(
            tuple(sorted(risky, key=lambda r: r.due_at)[:limit]),
            tuple(DepartmentFigures(code, code, *counts) for code, counts in sorted(counted.items()))
            if figures else (),
            (),
        )

    async def petitions_of_petitioner(self, petitioner_key: str, limit: int) -> list[CallerPetition]:
        self.db.maybe_fail()
        found = sorted((p for p in self.db.petitions.values() if p.get("petitioner_key") == petitioner_key),
                       key=lambda p: p["received_at"], reverse=True)
        return [CallerPetition(p["id"], p["tracking_code"], p["status"], p["title"], p["received_at"],
                               p.get("department_name")) for p in found[:limit]]

    async def open_supervision_in(self, tokens: Sequence[str] | None, limit: int) -> list[SupervisionRow]:
        rows = [await self.supervision(sid) for sid, s in self.db.supervisions.items()
                if s["state"] == "open" and (tokens is None or s["target_unit"].split("-", 1)[0] in tokens)]
        return sorted((r for r in rows if r is not None), key=lambda r: r.due_at)[:limit]

    async def record_resolution(self, petition_id: str, at: datetime, department: str, basis: str, public: bool,
                                follow_up_due: datetime, office: str) -> None:
        self.db.petitions[petition_id].update(resolved_at=at, resolved_by=department, basis=basis, public=public,
                                              follow_up_attempts=0)
        self.db.deadlines[(petition_id, "follow_up")] = {"clock": "follow_up", "due_at": follow_up_due,
                                                         "state": "running", "department_code": office}

    async def record_follow_up(self, petition_id: str, status: str, attempts: int, reopens: int, at: datetime, *,
                               stop_clock: bool) -> None:
        self.db.petitions[petition_id].update(status=status, follow_up_attempts=attempts, reopen_count=reopens)
        if stop_clock and (petition_id, "follow_up") in self.db.deadlines:
            self.db.deadlines[(petition_id, "follow_up")]["state"] = "stopped"

    async def public_cases(self, *, limit: int, before: datetime | None, start: datetime | None,
                           end: datetime | None, hidden: Sequence[str]) -> list[PublicCase]:
        out = []
        for p in self.db.petitions.values():
            at = p.get("resolved_at")
            if (at is None or p["status"] not in ("resolved", "closed", "unreachable") or not p.get("public", True)
                    or p.get("kind") == "accusation" or p.get("accused_departments")
                    or (p.get("category") or "") in hidden
                    or (before is not None and at >= before) or (start is not None and at < start)
                    or (end is not None and at >= end)):
                continue
            timeline = [t for t in self.db.timeline if t["petition_id"] == p["id"]]
            replies = [t for t in timeline if t["event"] == "resolve"]
            rated = [t for t in timeline if t["event"] == "follow_up" and t["detail"].get("reached")]
            due = self.db.deadlines.get((p["id"], "resolution"))
            contact = self.db.contacts.get(p["id"])
            out.append(PublicCase(
                p["id"], p.get("category"), (p.get("jurisdiction") or {}).get("name"), p.get("department_name"),
                p["status"], p["received_at"], at, due["due_at"] if due else None, p["title"], p["content"],
                replies[-1]["detail"].get("note") if replies else None, p.get("basis"),
                contact[0] if contact else None, rated[-1]["detail"].get("satisfaction") if rated else None,
                tuple((t["event"], t["at"]) for t in timeline),
            ))
        out.sort(key=lambda c: (-c.resolved_at.timestamp(), c.id))
        return out[:limit]

    async def kpi_counts(self, start: Any, end: Any, tokens: Sequence[str] | None) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (department, day), counters in self.db.kpi.items():
            if start <= day <= end and (tokens is None or department.split("-", 1)[0] in tokens):
                row = out.setdefault(department, {})
                for name, n in counters.items():
                    row[name] = row.get(name, 0) + n
        return out

    async def count_kpi(self, event_id: uuid.UUID, department: str, day: Any, fields: Sequence[str]) -> None:
        for name in fields:
            if (event_id, name) in self.db.kpi_facts:
                continue
            self.db.kpi_facts.add((event_id, name))
            row = self.db.kpi.setdefault((department, day), {})
            row[name] = row.get(name, 0) + 1

    async def public_requests(self, *, ids: Sequence[str] | None, categories: Sequence[str] | None,
                              codes: Sequence[str] | None, start: datetime | None, end: datetime | None,
                              closed: Sequence[str] | None, open_: bool | None, hidden: Sequence[str],
                              hidden_codes: Sequence[str], limit: int) -> list[PublicRequest]:
        self.db.maybe_fail()
        out = []
        for p in self.db.petitions.values():
            category, code = p.get("category"), p.get("service_code")
            if (p.get("kind") == "accusation" or p.get("accused_departments") or (category or "") in hidden
                    or (category is None and (code or "") in hidden_codes)):
                continue
            if ids is not None and p["id"] not in ids:
                continue
            if categories is not None and category not in categories and not (
                    category is None and code in (codes or ())):
                continue
            if (start is not None and p["received_at"] < start) or (end is not None and p["received_at"] > end):
                continue
            if open_ is not None and (p["status"] in (closed or ())) == open_:
                continue
            due = self.db.deadlines.get((p["id"], "resolution"))
            replies = [t for t in self.db.timeline if t["petition_id"] == p["id"] and t["event"] == "resolve"]
            out.append(PublicRequest(
                p["id"], p["tracking_code"], p["status"], category, code, p.get("department_name"), p["received_at"],
                p.get("updated_at") or p["submitted_at"], p.get("jurisdiction"), (p.get("location") or {}).get(
                    "admin_code"), p.get("lat"), p.get("long"), p.get("media_url"),
                due["due_at"] if due else None, replies[-1]["detail"].get("note") if replies else None,
            ))
        out.sort(key=lambda r: (-r.received_at.timestamp(), r.id))
        return out[:limit]

    async def queue(self, departments: Sequence[str], statuses: Sequence[str], limit: int) -> list[QueueRow]:
        self.db.maybe_fail()
        held = [p for p in self.db.petitions.values()
                if p.get("department_code") in departments and p["status"] in statuses]
        rows = []
        for p in held:
            deadlines = tuple(await self.deadlines(p["id"]))
            due = [d.due_at for d in deadlines if d.state in ("running", "warned", "breached")]
            rows.append((min(due) if due else None, p, deadlines))
        # the most urgent first (no running clock last), then the newest
        rows.sort(key=lambda r: (r[0] is None, r[0] or datetime.max.replace(tzinfo=UTC),
                                 -r[1]["received_at"].timestamp()))
        return [QueueRow(p["id"], p["tracking_code"], p["status"], p["title"], p.get("category"),
                         p["department_code"], p["received_at"], p.get("priority"),
                         tuple(p.get("accused_departments") or ()), deadlines, p.get("confidence"), p["content"])
                for _, p, deadlines in rows[:limit]]


    async def incident_links(self, petition_id: str) -> list[IncidentLinkRow]:
        self.db.maybe_fail()
        return sorted((k for (pid, _), k in self.db.incident_links.items() if pid == petition_id),
                      key=lambda k: (k.linked_at, k.incident_id))

    async def unlink(self, petition_id: str, at: datetime, by: str, unit: str) -> None:
        for key, k in self.db.incident_links.items():
            if key[0] == petition_id and k.unlinked_at is None:
                self.db.incident_links[key] = dataclasses.replace(k, unlinked_at=at, unlinked_by=by, unlinked_unit=unit)

    async def alerts(self, state: str, kind: str | None, codes: Sequence[str] | None, limit: int) -> list[AlertRow]:
        self.db.maybe_fail()
        unlinked: dict[str, list[str]] = {}
        for k in self.db.incident_links.values():
            if k.unlinked_at is not None:
                unlinked.setdefault(k.alert_id, []).append(k.petition_id)
        found = [
            dataclasses.replace(a, unlinked=tuple(unlinked.get(a.alert_id, ())))
            for a in self.db.alerts.values()
            if state in ("all", a.state) and (kind is None or a.kind == kind)
            and (codes is None or (a.area is not None and (a.area in codes or a.area[:AREA_CODE_DIGITS] in codes)))
        ]
        found.sort(key=lambda a: (a.state != "active", -a.level, -a.opened_at.timestamp(), a.alert_id))
        return found[:limit]

    async def petition_labels(self, ids: Sequence[str]) -> dict[str, PetitionLabel]:
        return {p["id"]: PetitionLabel(p["id"], p["tracking_code"], tuple(p.get("accused_departments") or ()))
                for i in ids if (p := self.db.petitions.get(i)) is not None}


class FakeReadModelStore(FakeTransaction):
    db: IntakeDb

    async def count_kpi(self, event_id: uuid.UUID, department: str, day: Any, fields: Sequence[str]) -> None:
        await FakeIntakeStore.count_kpi(self, event_id, department, day, fields)  # type: ignore[arg-type]

    async def assigned_on(self, petition_id: str, department: str, day: Any) -> None:
        self.db.assignment_days[(petition_id, department)] = day

    async def assignment_day(self, petition_id: str, department: str) -> Any:
        return self.db.assignment_days.get((petition_id, department))

    async def petition_exists(self, petition_id: str) -> bool:
        self.db.maybe_fail()
        return petition_id in self.db.petitions

    async def add_timeline(self, petition_id: str, at: datetime, event: str, detail: dict[str, Any],
                           event_id: uuid.UUID) -> None:
        await FakeIntakeStore(self.db).add_timeline(petition_id, at, event, detail, event_id)

    async def record_routing(self, routing: Routing, at: datetime) -> None:
        self.db.assignments.setdefault((routing.petition_id, routing.department_code), at)
        p = self.db.petitions[routing.petition_id]
        if p["assignment_no"] < routing.assignment_no and p["status"] not in ("resolved", "closed", "unreachable"):
            p.update({k: v for k, v in dataclasses.asdict(routing).items() if k != "petition_id"})

    async def arm_deadline(self, petition_id: str, clock: str, due_at: datetime, department_code: str,
                           at: datetime) -> None:
        d = self.db.deadlines.get((petition_id, clock))
        if d is None or d["updated_at"] <= at:
            self.db.deadlines[(petition_id, clock)] = {"clock": clock, "due_at": due_at, "state": "running",
                                                       "department_code": department_code, "updated_at": at}

    async def set_deadline_state(self, petition_id: str, clock: str, due_at: datetime, state: str,
                                 at: datetime) -> None:
        d = self.db.deadlines.get((petition_id, clock))
        if d is not None and d["due_at"] == due_at:
            d.update(state=state, updated_at=max(d["updated_at"], at))

    async def stop_deadline(self, petition_id: str, clock: str, due_at: datetime, at: datetime) -> None:
        d = self.db.deadlines.get((petition_id, clock))
        if d is not None and d["due_at"] == due_at:
            d.update(state="breached_stopped" if d["state"] == "breached" else "stopped",
                     updated_at=max(d["updated_at"], at))

    async def move_deadline(self, petition_id: str, clock: str, due_at: datetime, state: str | None,
                            at: datetime) -> None:
        d = self.db.deadlines.get((petition_id, clock))
        if d is None or d["updated_at"] > at:
            return
        if state is None:
            state = "running" if d["state"] == "breached" and due_at > at else d["state"]
        d.update(due_at=due_at, state=state, updated_at=at)

    async def open_supervision(self, order: SupervisionOrder) -> None:
        if order.id not in self.db.supervisions:
            self.db.supervisions[order.id] = {**order.model_dump(), "state": "open", "overdue_at": None,
                                              "close_requested_by": None, "closed_by": None, "closed_at": None}

    async def close_supervisions(self, ids: list[uuid.UUID], closed_by: str, at: datetime, note: str) -> None:
        for i in ids:
            s = self.db.supervisions.get(i)
            if s is not None and s["state"] == "open":
                s.update(state="closed", closed_by=closed_by, closed_at=at, close_note=note)

    async def close_report_supervisions(self, unit: str, period: str, at: datetime) -> None:
        await self.close_supervisions(
            [i for i, s in self.db.supervisions.items()
             if s["subject"] == "zero_report" and s["report_unit"] == unit and s["report_period"] == period],
            unit, at, "report received",
        )

    async def mark_overdue(self, supervision_id: uuid.UUID, at: datetime) -> None:
        s = self.db.supervisions.get(supervision_id)
        if s is not None and s["overdue_at"] is None:
            s["overdue_at"] = at

    async def record_zero_report(self, verdict: ZeroReportVerdict) -> None:
        key = (verdict.unit, verdict.period)
        old = self.db.zero_status.get(key)
        if old is not None and old["at"] > verdict.at:
            return
        new = dataclasses.asdict(verdict)
        if old is not None:
            for name in ("due_at", "submitted_at", "escalated_to"):
                new[name] = new[name] if new[name] is not None else old[name]
        self.db.zero_status[key] = new

    async def record_alert(self, alert: AlertRow) -> None:
        self.db.maybe_fail()
        old = self.db.alerts.get(alert.alert_id)
        if supersedes(old.version if old is not None else None, alert.version):
            self.db.alerts[alert.alert_id] = alert

    async def link_incident(self, link: IncidentLinkRow) -> None:
        self.db.maybe_fail()
        self.db.incident_links.setdefault((link.petition_id, link.incident_id), link)
