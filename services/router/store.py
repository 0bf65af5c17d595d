"""The router's store: every statement the router runs on its schema, by name.

:class:`RouterStore` is what the handlers use (a :class:`shared.store.Transaction`, so the
consumer core's ledger, outbox and savepoints come with it); :class:`PgRouterStore` is its
PostgreSQL class, and ``tests/fakes/router.py`` its in-memory fake. The new-petition path
is set-based and was measured against a bare passthrough (``python -m bench router``): one
query for the batch's petitions already routed, one for its petitioners' earlier originals,
COPY for the assignments, the repeat index and the decision log. Keep it at that many round
trips, and keep per-row work out of it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from services.router.domain.assignment import Assignment
from services.router.domain.repeats import Earlier, from_bigrams
from shared.events import Channel, Kind, Location, Priority
from shared.relay_process import notify
from shared.store import PgTransaction, Transaction

if TYPE_CHECKING:
    from services.router.planning import Encoded, Routing, TriageRecord
    from shared.events import PetitionSubmitted

__all__ = ["IndexEntry", "PgRouterStore", "RouterStore"]

#: A repeat-index row: petition id, petitioner key, received at, packed signature
#: (:func:`services.router.domain.repeats.pack`).
IndexEntry = tuple[str, str, datetime, bytes]

ASSIGNMENT_COLUMNS = (
    "petition_id", "tracking_code", "assignment_no", "department_code", "category",
    "confidence", "jurisdiction_code", "rule", "kind", "channel", "priority",
    "petitioner_key", "persons", "title", "content", "location", "received_at",
    "accused", "repeat_of", "group_petition",
)
DECISION_LOG_COLUMNS = (
    "petition_id", "assignment_no", "department_code", "rule", "category",
    "confidence", "jurisdiction_code", "table_version",
)


class RouterStore(Transaction, Protocol):
    """The router's state, in one transaction."""

    async def routed_already(self, petition_ids: Sequence[str]) -> set[str]:
        """Which of `petition_ids` have an assignment (were routed before)."""
        ...

    async def lock_routing(self, partitions: Collection[str], petitioner_keys: Collection[str]) -> None:
        """Hold, until the transaction ends, the lock of each of `partitions` (``<topic>:<n>``,
        where the petitions were read) and of each petitioner: whoever routes petitions of the
        same partition meanwhile (an instance still routing a partition a rebalance took from
        it) or of the same person (another instance, on another partition) waits, then sees
        this one's petitions routed and among the originals. One call takes its locks in one
        order (the partitions', then the petitioners')."""
        ...

    async def earlier_originals(
        self, petitioner_keys: Collection[str], received_from: datetime, received_until: datetime
    ) -> dict[str, list[Earlier]]:
        """The petitions of `petitioner_keys` routed so far, repeats of none, received within
        the repeat window before `received_from` or after `received_until` (or between), by
        petitioner (a new dict)."""
        ...

    async def add_assignments(self, routed: Sequence[tuple[PetitionSubmitted, Routing]]) -> None:
        """The first assignment of each new petition (none may have one yet)."""
        ...

    async def add_to_index(self, entries: Sequence[IndexEntry]) -> None:
        """Repeat-index rows of new petitions of known petitioners."""
        ...

    async def lock_assignment(self, petition_id: str) -> Assignment | None:
        """The petition's assignment in force, locked until the transaction ends; None for a
        petition the router never routed."""
        ...

    async def record_triage_decision(self, record: TriageRecord) -> None:
        """Keep the triage desk's decision (once per assignment: a second is ignored)."""
        ...

    async def reassign(
        self, petition_id: str, *, assignment_no: int, department_code: str, rule: str,
        returned_by: Sequence[str], category: str | None,
    ) -> None:
        """Replace the petition's assignment with the next one."""
        ...

    async def write_decisions(self, encoded: Sequence[Encoded]) -> None:
        """The decisions' events to the outbox (waking the relay process at commit) and
        their rows to the decision log."""
        ...


class PgRouterStore(PgTransaction):
    """:class:`RouterStore` on PostgreSQL (the ``router`` schema)."""

    __slots__ = ()

    async def routed_already(self, petition_ids: Sequence[str]) -> set[str]:
        rows = await self.conn.fetch(
            "SELECT petition_id FROM router.assignment WHERE petition_id = ANY($1::text[])", petition_ids
        )
        return {r["petition_id"] for r in rows}

    async def lock_routing(self, partitions: Collection[str], petitioner_keys: Collection[str]) -> None:
        # transaction-scoped advisory locks in the router's own space: class 21 a partition,
        # class 20 a petitioner, taken in the order of (class, hash), the same in every call;
        # a key hashing like another only serialises the two more than needed. A transaction
        # that routes several runs (new petitions between other events) calls this once per
        # run, so two such can wait on each other in a circle: PostgreSQL breaks it (40P01)
        # and the consumer retries the batch (shared.outages: transient).
        classes = [21] * len(set(partitions)) + [20] * len(set(petitioner_keys))
        if not classes:
            return
        await self.conn.execute(
            """SELECT pg_advisory_xact_lock(c, h)
               FROM (SELECT DISTINCT c, hashtext(k) AS h FROM unnest($1::int[], $2::text[]) AS t(c, k)
                     ORDER BY c DESC, h) AS ordered""",
            classes, [*set(partitions), *set(petitioner_keys)],
        )

    async def earlier_originals(
        self, petitioner_keys: Collection[str], received_from: datetime, received_until: datetime
    ) -> dict[str, list[Earlier]]:
        rows = await self.conn.fetch(
            """SELECT i.petitioner_key, i.petition_id, i.received_at, i.bigrams, i.signature, a.department_code
               FROM router.petition_index i JOIN router.assignment a USING (petition_id)
               WHERE i.petitioner_key = ANY($1::text[]) AND a.repeat_of IS NULL
                 AND i.received_at >= $2::timestamptz - interval '90 days'
                 AND i.received_at <= $3::timestamptz + interval '90 days'""",
            list(petitioner_keys), received_from, received_until,
        )
        out: dict[str, list[Earlier]] = {}
        for r in rows:
            out.setdefault(r["petitioner_key"], []).append(
                Earlier(
                    r["petition_id"],
                    r["received_at"],
                    r["bigrams"] if r["bigrams"] is not None else from_bigrams(r["signature"]),
                    r["department_code"],
                )
            )
        return out

    async def add_assignments(self, routed: Sequence[tuple[PetitionSubmitted, Routing]]) -> None:
        # Bulk COPY: the caller found these petitions unrouted. (A location is flat: its
        # field dict is what model_dump gives, at a twentieth of the cost.)
        await self.conn.copy_records_to_table(
            "assignment",
            schema_name=self.schema,
            columns=ASSIGNMENT_COLUMNS,
            records=[
                (
                    e.petition_id, e.tracking_code, 1, r.decision.department.code, r.category,
                    r.confidence, area.code if (area := r.decision.jurisdiction) else None, r.decision.rule,
                    e.kind, e.channel, r.priority,  # str enums: text as they are (.value is slow)
                    e.petitioner_key, e.persons, e.title, e.content, dict(vars(e.location)),
                    e.received_at, list(r.decision.accused), r.repeat_of, r.group_petition,
                )
                for e, r in routed
            ],
        )

    async def add_to_index(self, entries: Sequence[IndexEntry]) -> None:
        await self.conn.copy_records_to_table(
            "petition_index", schema_name=self.schema,
            columns=("petition_id", "petitioner_key", "received_at", "bigrams"), records=entries,
        )

    async def lock_assignment(self, petition_id: str) -> Assignment | None:
        row = await self.conn.fetchrow(
            "SELECT * FROM router.assignment WHERE petition_id = $1 FOR UPDATE", petition_id
        )
        if row is None:
            return None
        return Assignment(
            petition_id=row["petition_id"], tracking_code=row["tracking_code"], assignment_no=row["assignment_no"],
            department_code=row["department_code"], category=row["category"], confidence=row["confidence"],
            jurisdiction_code=row["jurisdiction_code"], rule=row["rule"], returned_by=tuple(row["returned_by"]),
            kind=Kind(row["kind"]) if row["kind"] else None, channel=Channel(row["channel"]),
            priority=Priority(row["priority"]), petitioner_key=row["petitioner_key"], persons=row["persons"],
            title=row["title"], content=row["content"], location=Location(**(row["location"] or {})),
            received_at=row["received_at"], accused=tuple(row["accused"]), repeat_of=row["repeat_of"],
            group_petition=row["group_petition"],
        )

    async def record_triage_decision(self, record: TriageRecord) -> None:
        await self.conn.execute(
            """INSERT INTO router.triage_decision (petition_id, assignment_no, title, content,
                 predicted_category, predicted_confidence, decided_category, department_code,
                 decided_by, note, decided_at)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT DO NOTHING""",
            record.petition_id, record.assignment_no, record.title, record.content,
            record.predicted_category, record.predicted_confidence, record.decided_category,
            record.department_code, record.decided_by, record.note, record.decided_at,
        )

    async def reassign(
        self, petition_id: str, *, assignment_no: int, department_code: str, rule: str,
        returned_by: Sequence[str], category: str | None,
    ) -> None:
        await self.conn.execute(
            """UPDATE router.assignment SET assignment_no = $2, department_code = $3, rule = $4,
                 returned_by = $5, category = $6, updated_at = now() WHERE petition_id = $1""",
            petition_id, assignment_no, department_code, rule, list(returned_by), category,
        )

    async def write_decisions(self, encoded: Sequence[Encoded]) -> None:
        await self.add_to_outbox([m for enc in encoded for m in enc.messages])
        await notify(self.conn, self.schema)  # wakes the relay process at commit
        await self.conn.copy_records_to_table(
            "decision_log", schema_name=self.schema, columns=DECISION_LOG_COLUMNS,
            records=[enc.log_row for enc in encoded],
        )


if TYPE_CHECKING:

    def _is_a_router_store(store: PgRouterStore) -> RouterStore:
        return store  # mypy checks here that the PostgreSQL store has every operation of the protocol
