"""The router's store in memory (:class:`services.router.store.RouterStore`).

Its tables are kept as the PostgreSQL ones are (``router.assignment``, ``petition_index``,
``triage_decision``, ``decision_log``), with their primary keys: writing a second row under
one raises, as the database would, so a handler that writes twice fails here too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from services.router.domain.assignment import Assignment
from services.router.domain.repeats import WINDOW, Earlier
from services.router.planning import Encoded, Routing, TriageRecord
from services.router.store import IndexEntry
from shared.events import PetitionSubmitted
from tests.fakes import FakeDatabase, FakeTransaction


class UniqueViolation(Exception):
    """A row under a primary key that already has one."""


class RouterDb(FakeDatabase):
    def __init__(self) -> None:
        super().__init__()
        self.assignments: dict[str, Assignment] = {}
        self.petition_index: dict[str, IndexEntry] = {}
        self.triage_decisions: dict[tuple[str, int], TriageRecord] = {}
        self.decision_log: dict[tuple[str, int], tuple[Any, ...]] = {}
        self.notifications = 0  # relay wake-ups asked for
        self.locked_petitioners: list[tuple[str, ...]] = []  # each transaction's petitioner locks
        self.locked_partitions: list[tuple[str, ...]] = []  # and its partition locks
        self.lock_and_reads: list[str] = []  # "lock", "routed_already", "earlier_originals", in order


def _insert(table: dict[Any, Any], key: Any, row: Any) -> None:
    if key in table:
        raise UniqueViolation(f"duplicate key {key!r}")
    table[key] = row


class FakeRouterStore(FakeTransaction):
    db: RouterDb

    async def routed_already(self, petition_ids: Sequence[str]) -> set[str]:
        self.db.maybe_fail()
        self.db.lock_and_reads.append("routed_already")
        return {p for p in petition_ids if p in self.db.assignments}

    async def lock_routing(self, partitions: Collection[str], petitioner_keys: Collection[str]) -> None:
        self.db.maybe_fail()
        self.db.locked_partitions.append(tuple(sorted(set(partitions))))
        self.db.locked_petitioners.append(tuple(sorted(set(petitioner_keys))))
        self.db.lock_and_reads.append("lock")

    async def earlier_originals(
        self, petitioner_keys: Collection[str], received_from: datetime, received_until: datetime
    ) -> dict[str, list[Earlier]]:
        self.db.maybe_fail()
        self.db.lock_and_reads.append("earlier_originals")
        out: dict[str, list[Earlier]] = {}
        for petition_id, key, received_at, packed in self.db.petition_index.values():
            assignment = self.db.assignments.get(petition_id)
            if (assignment is None or assignment.repeat_of is not None or key not in petitioner_keys
                    or not received_from - WINDOW <= received_at <= received_until + WINDOW):
                continue
            out.setdefault(key, []).append(Earlier(petition_id, received_at, packed, assignment.department_code))
        return out

    async def add_assignments(self, routed: Sequence[tuple[PetitionSubmitted, Routing]]) -> None:
        self.db.maybe_fail()
        for e, r in routed:
            area = r.decision.jurisdiction
            _insert(self.db.assignments, e.petition_id, Assignment(
                petition_id=e.petition_id, tracking_code=e.tracking_code, assignment_no=1,
                department_code=r.decision.department.code, category=r.category, confidence=r.confidence,
                jurisdiction_code=area.code if area else None, rule=r.decision.rule, returned_by=(),
                kind=e.kind, channel=e.channel, priority=r.priority, petitioner_key=e.petitioner_key,
                persons=e.persons, title=e.title, content=e.content, location=e.location,
                received_at=e.received_at, accused=r.decision.accused, repeat_of=r.repeat_of,
                group_petition=r.group_petition,
            ))

    async def add_to_index(self, entries: Sequence[IndexEntry]) -> None:
        self.db.maybe_fail()
        for entry in entries:
            _insert(self.db.petition_index, entry[0], entry)

    async def lock_assignment(self, petition_id: str) -> Assignment | None:
        self.db.maybe_fail()
        return self.db.assignments.get(petition_id)

    async def record_triage_decision(self, record: TriageRecord) -> None:
        self.db.maybe_fail()
        self.db.triage_decisions.setdefault((record.petition_id, record.assignment_no), record)

    async def reassign(
        self, petition_id: str, *, assignment_no: int, department_code: str, rule: str,
        returned_by: Sequence[str], category: str | None,
    ) -> None:
        self.db.maybe_fail()
        current = self.db.assignments.get(petition_id)
        if current is not None:
            self.db.assignments[petition_id] = dataclasses.replace(
                current, assignment_no=assignment_no, department_code=department_code, rule=rule,
                returned_by=tuple(returned_by), category=category,
            )

    async def write_decisions(self, encoded: Sequence[Encoded]) -> None:
        await self.add_to_outbox([m for enc in encoded for m in enc.messages])
        self.db.notifications += 1
        for enc in encoded:
            _insert(self.db.decision_log, (enc.log_row[0], enc.log_row[1]), enc.log_row)
