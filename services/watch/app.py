"""The watch service's composition root: early warning (预警) on the petition stream.

Two faust agents and four tables, every table with its changelog topic (compacted; created
with the platform's other topics), so the state survives a restart and moves with its
partition when instances are added:

1. **join** (``petition.submitted`` + ``petition.routed``, keyed by petition id): a petition's
   text becomes its MinHash signature (the text itself is kept nowhere), its first routing
   decision says its category, place, department and risk flags; once both are in (table
   ``pending``), one *observation* per level of its place (district, city, province) goes to
   ``petition-watch-observations`` keyed by that area, the signature only on the lowest.
2. **watch** (the observations, keyed by area: each area's windows live on one partition):
   counts each petition into its hourly and daily windows (table ``surges``: the baseline, the
   window's count and petitions, the open alert), places it into an incident of near-duplicates
   (table ``members``: each recent petition's signature; ``incidents``: each incident's state),
   and publishes what changed on ``petition.alerts``: alerts (``watch.alert``) and links
   (``incident.linked``, for the router's 并案). Ticks, sent by every instance to every
   partition of the observations topic, fold finished windows in and close what subsided
   (a table may only be written while processing one of its partition's records).

Processing is at least once: faust flushes the producer (changelogs, observations, alerts)
before it commits offsets, and a record processed twice changes nothing the second time (a
window counts a petition once, an incident places it once, alerts carry deterministic ids).
The decisions are :mod:`services.watch.domain.watcher`'s, pure.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import yaml

from services.watch import metrics
from services.watch.config import load_policies
from services.watch.domain.incidents import Clusters, from_hashvalues, signature
from services.watch.domain.watcher import (
    ClusterChange,
    Flags,
    IncidentState,
    Link,
    Member,
    SurgeChange,
    SurgeState,
    close_incident,
    join,
    observe,
    risk,
    tick,
)
from shared import topics
from shared.events import (
    IncidentLinked,
    PetitionRouted,
    PetitionSubmitted,
    WatchAlert,
    encode_event,
    key_for,
    key_for_alert,
    parse_event,
)
from shared.kafka_client import KafkaAccess
from shared.metrics import DEAD_LETTERS
from shared.records import dead_letter_message
from shared.reference.files import GAZETTEER
from shared.reference.places import Area, Gazetteer
from shared.settings import Settings
from shared.worker import add_ops_pages, make_app, raw_of

log = logging.getLogger(__name__)

SERVICE = "watch"
#: how long a petition waits in ``pending`` for its other half, and a joined one is remembered
PENDING_SECONDS = 2 * 86400.0
#: the watch's namespace for its alerts' deterministic event ids
_IDS = uuid.UUID("5b3c4f0e-6a1d-4d7e-9a57-0c2f1e9d8b21")
_NONE = "-"  # a key's part for "no area" / "no category"


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _load(table: Any, key: bytes) -> dict[str, Any] | None:
    raw = table.get(key)
    return json.loads(raw) if raw else None


def _store(table: Any, key: bytes, data: dict[str, Any] | None) -> None:
    if data is None:
        if key in table:
            del table[key]
    else:
        table[key] = json.dumps(data, separators=(",", ":")).encode()


class Watch:
    """The agents' logic: one per process, holding the policies and the incident indexes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kafka = KafkaAccess.from_settings(settings)
        self.policies, self.cluster_policy = load_policies(settings.watch_policy_path)
        self.gazetteer = Gazetteer.from_data(yaml.safe_load((settings.gazetteer_path or GAZETTEER).read_bytes()))
        self.indexes: dict[int, Clusters] = {}  # per partition of the observations, rebuilt from ``members``
        self.active: dict[int, Counter[tuple[str, int]]] = {}  # per partition: open alerts by kind and level
        self.tables: dict[str, Any] = {}
        self.topics: dict[str, Any] = {}
        self._swept: dict[int, float] = {}

    # --- join: a petition's signature and its first routing decision -----------------------

    async def on_input(self, event: Any) -> None:
        try:
            await self._on_input(event)
        except Exception as exc:
            log.exception("watch: a record of the input failed")
            await self._dead_letter(raw_of(event), "processing_error", repr(exc))

    async def _on_input(self, event: Any) -> None:
        raw = raw_of(event)
        try:
            if raw.defect is not None:
                raise ValueError(raw.defect[1])
            decoded = parse_event(raw.value or b"")
        except Exception as exc:  # noqa: BLE001 - whatever cannot be read is a dead letter
            await self._dead_letter(raw, "invalid_event", str(exc))
            return
        if isinstance(decoded, PetitionSubmitted):
            m = signature(f"{decoded.title} {decoded.content}", self.cluster_policy)
            half: dict[str, Any] = {"h": [int(v) for v in m.hashvalues] if m is not None else None}
            at = _ts(decoded.received_at)
        elif isinstance(decoded, PetitionRouted) and decoded.assignment_no == 1:
            half = {"r": self._routed(decoded)}
            at = _ts(decoded.received_at)
        else:
            return  # another event type, or a reassignment: the watch reads first decisions only
        pending = self.tables["pending"]
        key = key_for(decoded.petition_id)
        entry = _load(pending, key) or {"at": at, "part": raw.partition}
        if entry.get("done"):
            return
        entry.update(half)
        if "h" in entry and "r" in entry:
            await self._emit(decoded.petition_id, entry)
            entry = {"at": entry["at"], "part": raw.partition, "done": True}
        _store(pending, key, entry)
        await self._sweep_pending(raw.partition)

    def _routed(self, e: PetitionRouted) -> dict[str, Any]:
        area = self.gazetteer.by_code(e.jurisdiction.code) if e.jurisdiction else None
        chain: list[Area] = self.gazetteer.chain(area) if area is not None else [self.gazetteer.root]
        flags = Flags(int(e.group_petition), int(e.repeat_of is not None), int(bool(e.accused_departments)))
        return {
            "areas": [[a.code, a.name, a.level] for a in chain],
            "placed": area is not None,
            "cat": e.category,
            "dept": e.department_code,
            "triage": bool(e.triage),
            "no": e.assignment_no,
            "f": flags.to_data(),
        }

    async def _emit(self, petition_id: str, entry: dict[str, Any]) -> None:
        routed = entry["r"]
        for i, (code, name, level) in enumerate(routed["areas"]):
            record: dict[str, Any] = {"t": "obs", "pid": petition_id, "at": entry["at"], "area": code,
                                      "name": name, "level": level, "cat": routed["cat"], "f": routed["f"]}
            if i == 0 and entry["h"] is not None:
                record["cluster"] = {"h": entry["h"], "placed": routed["placed"], "dept": routed["dept"],
                                     "triage": routed["triage"], "no": routed["no"]}
            await self.topics["observations"].send(key=code.encode(), value=json.dumps(record).encode())

    async def _sweep_pending(self, partition: int) -> None:
        now = time.time()
        if now - self._swept.get(partition, 0.0) < 60.0:
            return
        self._swept[partition] = now
        pending = self.tables["pending"]
        old = [k for k, v in list(pending.items())
               if v and (d := json.loads(v)).get("part") == partition and now - d["at"] > PENDING_SECONDS]
        for key in old:
            del pending[key]

    # --- watch: windows, incidents, alerts ----------------------------------------------------

    async def on_observation(self, event: Any) -> None:
        try:
            await self._on_observation(event)
        except Exception as exc:
            log.exception("watch: an observation failed")
            await self._dead_letter(raw_of(event), "processing_error", repr(exc))

    async def _on_observation(self, event: Any) -> None:
        raw = raw_of(event)
        try:
            record = json.loads(raw.value or b"")
            kind = record["t"]
        except Exception as exc:  # noqa: BLE001 - a record the join did not write
            await self._dead_letter(raw, "invalid_observation", str(exc))
            return
        partition = raw.partition
        origin = self._origin(partition, float(record.get("now") or record.get("at") or time.time()))
        if kind == "tick":
            await self._tick(partition, float(record["now"]), origin)
        elif kind == "obs":
            await self._observe(partition, record, origin)

    def _origin(self, partition: int, at: float) -> float:
        """When the watch began observing this partition (warm-up counts from there)."""
        surges = self.tables["surges"]
        key = f"origin|{partition}".encode()
        data = _load(surges, key)
        if data is None:
            _store(surges, key, {"at": at, "P": partition, "origin": True})
            return at
        return float(data["at"])

    async def _observe(self, partition: int, rec: dict[str, Any], origin: float) -> None:
        surges = self.tables["surges"]
        flags = Flags.from_data(rec.get("f"))
        area, category, at, pid = rec["area"], rec["cat"], float(rec["at"]), rec["pid"]
        for name, policy in self.policies.items():
            key = f"{name}|{area}|{category or _NONE}"
            data = _load(surges, key.encode())
            state = SurgeState.from_data(data) if data else SurgeState()
            state, changes = observe(state, pid, at, policy, key=key, flags=flags, origin=origin)
            _store(surges, key.encode(), {**state.to_data(), "P": partition, "K": [name, area, rec["name"],
                                                                                   rec["level"], category]})
            for change in changes:
                await self._publish_surge(partition, change, name, area, rec["name"], rec["level"], category)
        cluster = rec.get("cluster")
        if cluster is not None:
            metrics.OBSERVED.inc()
            await self._place(partition, rec, cluster, flags)

    def _index(self, partition: int) -> Clusters:
        """The incident index of `partition`, rebuilt from ``members`` the first time."""
        index = self.indexes.get(partition)
        if index is None:
            index = Clusters(self.cluster_policy)
            rows = [json.loads(v) for v in self.tables["members"].values() if v]
            for m in sorted((r for r in rows if r["P"] == partition), key=lambda r: r["at"]):
                index.restore(m["pid"], m["h"], m["at"], m["area"], m["incident"])
            self.indexes[partition] = index
        return index

    async def _place(self, partition: int, rec: dict[str, Any], cluster: dict[str, Any], flags: Flags) -> None:
        index = self._index(partition)
        at, pid = float(rec["at"]), rec["pid"]
        await self._expire(partition, index, at)
        area = rec["area"] if cluster["placed"] else None
        m = from_hashvalues(cluster["h"], self.cluster_policy)
        placed = index.place_signature(pid, m, at, area)
        if placed is None:
            return
        members = self.tables["members"]
        _store(members, pid.encode(), {"pid": pid, "P": partition, "at": at, "area": area,
                                       "incident": placed.incident, "h": cluster["h"]})
        for moved in placed.moved:  # petitions of incidents this one joined together
            row = _load(members, moved.encode())
            if row is not None:
                _store(members, moved.encode(), {**row, "incident": placed.incident})
        incidents = self.tables["incidents"]
        absorbed = []
        for other in placed.merged:
            other_data = _load(incidents, other.encode())
            _store(incidents, other.encode(), None)
            if other_data is not None:
                absorbed.append(IncidentState.from_data(other_data))
        data = _load(incidents, placed.incident.encode())
        member = Member(pid, at, cluster["dept"], cluster["triage"], int(cluster["no"]), rec["cat"], flags)
        state, changes, links = join(
            IncidentState.from_data(data) if data else None, member, incident_id=placed.incident,
            similarity=placed.similarity, area=area, alert_size=self.cluster_policy.alert_size,
            absorbed=tuple(absorbed),
        )
        _store(incidents, placed.incident.encode(), {**state.to_data(), "P": partition,
                                                      "K": [rec["name"], rec["level"]]})
        for change in changes:
            await self._publish_cluster(partition, change, rec["name"] if area else None,
                                        rec["level"] if area else None)
        for link in links:
            await self._publish_link(link, at)

    async def _expire(self, partition: int, index: Clusters, now: float) -> None:
        closed = index.expire(now)
        members = self.tables["members"]
        for pid in index.dropped:
            _store(members, pid.encode(), None)
        index.dropped.clear()
        incidents = self.tables["incidents"]
        for incident_id in closed:
            data = _load(incidents, incident_id.encode())
            _store(incidents, incident_id.encode(), None)
            if data is None:
                continue
            change = close_incident(IncidentState.from_data(data), now)
            if change is not None:
                name, level = data.get("K", [None, None])
                await self._publish_cluster(partition, change, name if change.incident.area else None,
                                            level if change.incident.area else None)

    async def _tick(self, partition: int, now: float, origin: float) -> None:
        surges = self.tables["surges"]
        for key, value in list(surges.items()):
            data = json.loads(value) if value else None
            if not data or data.get("P") != partition or data.get("origin"):
                continue
            name, area, area_name, level, category = data["K"]
            policy = self.policies.get(name)
            if policy is None:  # a window length no longer configured
                _store(surges, key, None)
                continue
            state, change = tick(SurgeState.from_data(data), now, policy, origin=origin)
            _store(surges, key, None if state is None else {**state.to_data(), "P": partition, "K": data["K"]})
            if change is not None:
                await self._publish_surge(partition, change, name, area, area_name, level, category)
        await self._expire(partition, self._index(partition), now)
        self._recount(partition)

    # --- publishing -----------------------------------------------------------------------------

    async def _publish_surge(self, partition: int, change: SurgeChange, window: str, area: str, area_name: str,
                             level: str, category: str | None) -> None:
        a = change.alert
        event = WatchAlert(
            event_id=uuid.uuid5(_IDS, f"{a.alert_id}:{a.version}"), occurred_at=datetime.now(UTC),
            alert_id=a.alert_id, version=a.version, state="closed" if change.what == "closed" else "active",
            kind="surge", area=area, area_name=area_name, area_level=level, category=category, window=window,
            window_start=_dt(change.window_start), count=a.count, expected=round(a.expected, 3), z=round(a.z, 2),
            petition_ids=a.petition_ids, opened_at=_dt(a.opened_at) or datetime.now(UTC),
            closed_at=_dt(change.closed_at), level=change.level, risk_reasons=change.risk_reasons,
        )
        await self._send_alert(partition, event, change.what)

    async def _publish_cluster(self, partition: int, change: ClusterChange, area_name: str | None,
                               area_level: str | None) -> None:
        i = change.incident
        event = WatchAlert(
            event_id=uuid.uuid5(_IDS, f"{i.alert_id}:{i.version}"), occurred_at=datetime.now(UTC),
            alert_id=i.alert_id, version=i.version, state="closed" if change.what == "closed" else "active",
            kind="cluster", area=i.area, area_name=area_name, area_level=area_level, category=i.category,
            count=i.count, petition_ids=i.petition_ids, opened_at=_dt(i.opened_at) or datetime.now(UTC),
            closed_at=_dt(change.closed_at), level=change.level, risk_reasons=change.risk_reasons,
            department_code=i.department,
        )
        await self._send_alert(partition, event, change.what)

    async def _send_alert(self, partition: int, event: WatchAlert, what: str) -> None:
        await self.topics["alerts"].send(key=key_for_alert(event.alert_id), value=encode_event(event))
        if what == "opened":
            metrics.ALERTS_OPENED.labels(event.kind).inc()
            log.warning("early warning: %s alert %s opened (%s, %s, %d petitions)", event.kind, event.alert_id,
                        event.area_name or event.area, event.category, event.count)
        elif what == "closed":
            metrics.ALERTS_CLOSED.labels(event.kind).inc()
            log.info("early warning: %s alert %s closed", event.kind, event.alert_id)
        self._recount(partition)

    async def _publish_link(self, link: Link, at: float) -> None:
        event = IncidentLinked(
            event_id=uuid.uuid5(_IDS, f"link:{link.petition_id}:{link.incident_id}"), occurred_at=datetime.now(UTC),
            petition_id=link.petition_id, incident_id=link.incident_id, alert_id=link.alert_id,
            department_code=link.department, assignment_no=link.assignment_no,
            similarity=min(max(link.similarity, 0.0), 1.0),
        )
        await self.topics["alerts"].send(key=key_for(link.petition_id), value=encode_event(event))
        metrics.LINKED.inc()

    async def _dead_letter(self, raw: Any, reason: str, error: str) -> None:
        log.warning("dead-lettering %s[%s]@%s: %s", raw.topic, raw.partition, raw.offset, reason)
        dead = dead_letter_message(service=SERVICE, dead_letter_topic=topics.DEAD_LETTER_WATCH, message=raw,
                                   reason=reason, error=error)
        await self.topics["dead_letters"].send(key=dead.key, value=dead.value)
        DEAD_LETTERS.labels(SERVICE, raw.topic, reason).inc()

    def _recount(self, partition: int) -> None:
        """The active-alerts gauge, from the tables of `partition` (the instance's share)."""
        counts: Counter[tuple[str, int]] = Counter()
        for value in self.tables["surges"].values():
            data = json.loads(value) if value else None
            if data and data.get("P") == partition and data.get("a"):
                alert = SurgeState.from_data(data).alert
                if alert is not None:
                    counts["surge", risk(alert.count, alert.flags)[0]] += 1
        for value in self.tables["incidents"].values():
            data = json.loads(value) if value else None
            if data and data.get("P") == partition and data.get("v", 0) > 0:
                incident = IncidentState.from_data(data)
                counts["cluster", risk(incident.count, incident.flags)[0]] += 1
        self.active[partition] = counts
        self._set_gauge()

    def _set_gauge(self) -> None:
        total: Counter[tuple[str, int]] = Counter()
        for counts in self.active.values():
            total.update(counts)
        for kind in ("surge", "cluster"):
            for level in (1, 2, 3):
                metrics.ALERTS_ACTIVE.labels(kind, str(level)).set(total.get((kind, level), 0))

    def describe(self, area: str, owned: set[int]) -> dict[str, Any]:
        """The state held about `area` in the partitions this instance owns (`owned`), for the
        ops page ``/watch/keys``. Faust's in-memory store keeps the keys written here of a
        partition a rebalance moved away (its new owner reads them back from the changelog), so
        the page shows only what this instance is counting now."""
        windows = []
        for value in self.tables["surges"].values():
            data = json.loads(value) if value else None
            if not data or data.get("origin") or data["K"][1] != area or data.get("P") not in owned:
                continue
            state = SurgeState.from_data(data)
            name, _, area_name, level, category = data["K"]
            windows.append({"window": name, "area_name": area_name, "area_level": level, "category": category,
                            "window_index": state.window, "count": state.count, "petition_ids": list(state.petitions),
                            "baseline_mean": round(state.base.mean, 4), "baseline_windows": state.base.seen,
                            "alert_id": state.alert.alert_id if state.alert else None})
        incidents = [
            {"incident_id": i.incident_id, "count": i.count, "department_code": i.department,
             "petition_ids": list(i.petition_ids), "alert_version": i.version}
            for i, p in ((IncidentState.from_data(d), d.get("P"))
                         for d in (json.loads(v) for v in self.tables["incidents"].values() if v))
            if i.area == area and p in owned
        ]
        return {"area": area, "windows": sorted(windows, key=lambda w: (w["window"], w["category"] or "")),
                "incidents": incidents}

    def forget(self, partitions: set[int]) -> None:
        """Partitions taken away by a rebalance: their indexes are rebuilt if they come back."""
        for p in partitions:
            self.indexes.pop(p, None)
            self.active.pop(p, None)
        self._set_gauge()


def build_app(settings: Settings) -> Any:
    """Wire the faust app: the tables, the two agents, the ticker and the ops pages."""
    watch = Watch(settings)
    app = make_app(SERVICE, settings, kafka=watch.kafka, web_port=settings.watch_port)
    for name in topics.WATCH_TABLES:
        watch.tables[name] = app.Table(name, default=None, key_type=bytes, value_type=bytes,
                                       partitions=topics.PARTITIONS)
    inputs = app.topic(topics.PETITION_SUBMITTED, topics.PETITION_ROUTED, key_type=bytes, value_type=bytes)
    observations = app.topic(topics.WATCH_OBSERVATIONS, key_type=bytes, value_type=bytes,
                             partitions=topics.PARTITIONS)
    watch.topics.update(
        observations=observations,
        alerts=app.topic(topics.PETITION_ALERTS, key_type=bytes, value_type=bytes),
        dead_letters=app.topic(topics.DEAD_LETTER_WATCH, key_type=bytes, value_type=bytes),
    )

    async def ready() -> dict[str, bool]:
        recovery = getattr(app.tables, "recovery", None)
        completed = getattr(recovery, "completed", None)
        return {"tables_recovered": bool(completed is not None and completed.is_set()),
                "consumer": bool(app.consumer.assignment())}

    add_ops_pages(app, ready)

    @app.page("/watch/keys")
    async def keys_page(web: Any, request: Any) -> Any:
        """What this instance holds about one area (``?area=<code>``): each window's count,
        its petitions and baseline, the open alerts, and the incidents placed there."""
        owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == topics.WATCH_OBSERVATIONS}
        return web.json(watch.describe(str(request.query.get("area", "")), owned))

    @app.agent(inputs, name="join")
    async def join_agent(stream: Any) -> None:
        async for event in stream.events():
            await watch.on_input(event)

    @app.agent(observations, name="watch")
    async def watch_agent(stream: Any) -> None:
        async for event in stream.events():
            await watch.on_observation(event)

    @app.timer(interval=max(settings.watch_tick_seconds, 0.5))
    async def _ticker() -> None:
        now = json.dumps({"t": "tick", "now": time.time()}).encode()
        for partition in range(topics.PARTITIONS):
            await observations.send(key=None, value=now, partition=partition)

    async def _revoked(app: Any, revoked: Any, **kwargs: Any) -> None:
        watch.forget({tp.partition for tp in revoked if tp.topic == topics.WATCH_OBSERVATIONS})

    app.on_partitions_revoked.connect(_revoked)  # type: ignore[arg-type]  # faust's signal receivers take **kwargs

    app.watch_service = watch  # type: ignore[attr-defined]  # kept on the faust app for tests and ops
    return app
