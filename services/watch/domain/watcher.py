"""What the watch service decides, petition by petition and tick by tick. Pure.

**Surges.** Each key (window length × area × category) has a :class:`SurgeState`: its
baseline (:mod:`.surges`), the window it is counting and the petitions counted in it. A petition
(:func:`observe`) is counted once into its window (a petition seen again is not counted again:
replays after a crash are harmless); when the window's count is a surge, an alert opens, and
while it is open each further petition updates it. A later petition or a tick (:func:`tick`)
folds a finished window into the baseline. The alert closes when a whole window has passed
without a surge after the last surging one ("the surge subsided"); a burst spanning a window
boundary stays one alert.

**Warm-up** is counted from the watch's origin (the first window it ever observed, per
partition), not from a key's first petition: a district that never wrote about gas is a key
with an empty history once the watch has watched long enough, and thirty petitions about gas
there are a surge, not a first sample.

**Risk** (矛盾纠纷): group petitions, repeat petitioners and accusations among an alert's
petitions raise its level (:func:`risk`).

Every state serialises to a small JSON-able dict (:meth:`SurgeState.to_data`), the value of
the service's faust table.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from services.watch.domain.surges import Baseline, SurgePolicy, judge_window, update

__all__ = [
    "MAX_PETITIONS",
    "ClusterChange",
    "Flags",
    "IncidentState",
    "Link",
    "Member",
    "OpenSurge",
    "RiskPolicy",
    "Routed",
    "SurgeChange",
    "SurgeState",
    "close_incident",
    "join",
    "observe",
    "risk",
    "tick",
]

#: petitions an alert lists (the alert event's limit)
MAX_PETITIONS = 200
#: petitions a window remembers for de-duplication (a window with more counts on; a replay of
#: one beyond them would count twice, far above any threshold)
MAX_WINDOW_PETITIONS = 2000


@dataclass(frozen=True, slots=True)
class Flags:
    """How many of a set of petitions are group petitions, repeats, accusations."""

    group: int = 0
    repeat: int = 0
    accusation: int = 0

    def __add__(self, other: Flags) -> Flags:
        return Flags(self.group + other.group, self.repeat + other.repeat, self.accusation + other.accusation)

    def to_data(self) -> list[int]:
        return [self.group, self.repeat, self.accusation]

    @classmethod
    def from_data(cls, data: Any) -> Flags:
        return cls(*data) if data else cls()


@dataclass(frozen=True, slots=True)
class RiskPolicy:
    """An alert starts at level 1; each kind of risk among its petitions (group petitions,
    repeat petitioners, accusations) raises it by one, and so does reaching `high_count`
    petitions; level 3 at most."""

    high_count: int = 20


def risk(count: int, flags: Flags, policy: RiskPolicy = RiskPolicy()) -> tuple[int, tuple[str, ...]]:
    """The level (1–3) of an alert of `count` petitions with `flags`, and the reasons raising it."""
    reasons = tuple(name for name, n in (("group_petition", flags.group), ("repeat_petitioner", flags.repeat),
                                         ("accusation", flags.accusation)) if n > 0)
    if count >= policy.high_count:
        reasons += ("many_petitions",)
    return min(1 + len(reasons), 3), reasons


@dataclass(frozen=True, slots=True)
class OpenSurge:
    """An open surge alert of one key."""

    alert_id: str
    version: int
    opened_at: float
    last_surge: int  # the index of the last window that was a surge
    count: int
    expected: float
    z: float
    petition_ids: tuple[str, ...]
    flags: Flags = Flags()


@dataclass(frozen=True, slots=True)
class SurgeState:
    base: Baseline = field(default_factory=Baseline)
    window: int | None = None  # the window being counted
    count: int = 0
    petitions: tuple[str, ...] = ()
    flags: Flags = Flags()
    alert: OpenSurge | None = None

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"b": [self.base.mean, self.base.variance, self.base.window, self.base.seen],
                                "w": self.window, "c": self.count, "p": list(self.petitions), "f": self.flags.to_data()}
        if self.alert is not None:
            a = self.alert
            data["a"] = [a.alert_id, a.version, a.opened_at, a.last_surge, a.count, a.expected, a.z,
                         list(a.petition_ids), a.flags.to_data()]
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> SurgeState:
        mean, variance, window, seen = data["b"]
        alert = None
        if data.get("a"):
            aid, version, opened, last, count, expected, z, pids, flags = data["a"]
            alert = OpenSurge(aid, version, opened, last, count, expected, z, tuple(pids), Flags.from_data(flags))
        return cls(Baseline(mean, variance, window, seen), data["w"], data["c"], tuple(data["p"]),
                   Flags.from_data(data.get("f")), alert)


@dataclass(frozen=True, slots=True)
class SurgeChange:
    """An alert to publish: opened, updated (a new version) or closed."""

    what: Literal["opened", "updated", "closed"]
    alert: OpenSurge
    window_start: float
    closed_at: float | None = None
    level: int = 1
    risk_reasons: tuple[str, ...] = field(default=())


def _origin_base(base: Baseline, origin: float | None, policy: SurgePolicy) -> Baseline:
    """A key never seen before has an empty history since the watch's origin."""
    if base.window is None and origin is not None:
        return Baseline(0.0, 0.0, int(origin // policy.window_seconds) - 1, 0)
    return base


def _roll(state: SurgeState, window: int, policy: SurgePolicy, origin: float | None) -> SurgeState:
    """`state` counting `window`, every earlier window folded into its baseline."""
    base = _origin_base(state.base, origin, policy)
    if state.window is None:
        return replace(state, base=base, window=window)
    if state.window >= window:
        return replace(state, base=base)
    base = update(base, state.window, state.count, policy)
    return replace(state, base=base, window=window, count=0, petitions=(), flags=Flags())


def _change(what: Literal["opened", "updated", "closed"], alert: OpenSurge, policy: SurgePolicy,
            risk_policy: RiskPolicy, closed_at: float | None = None) -> SurgeChange:
    level, reasons = risk(alert.count, alert.flags, risk_policy)
    return SurgeChange(what, alert, alert.last_surge * float(policy.window_seconds), closed_at, level, reasons)


def observe(
    state: SurgeState, petition_id: str, at: float, policy: SurgePolicy, *, key: str,
    flags: Flags = Flags(), origin: float | None = None, risk_policy: RiskPolicy = RiskPolicy(),
) -> tuple[SurgeState, list[SurgeChange]]:
    """Count petition `petition_id` (at `at`, epoch seconds) into key `key`'s state; the
    alert changes it causes (an alert left over from a subsided surge closes first)."""
    window = int(at // policy.window_seconds)
    if state.window is not None and window < state.window:
        return state, []  # a late petition of a window already folded in: not counted
    closing: list[SurgeChange] = []
    if state.alert is not None and window > state.alert.last_surge + 1:  # no tick came between
        kept, closed = tick(state, at, policy, origin=origin, risk_policy=risk_policy, keep=True)
        state = kept if kept is not None else state  # kept: tick keeps the state when asked to
        closing = [closed] if closed is not None else []
    state = _roll(state, window, policy, origin)
    if petition_id in state.petitions:
        return state, closing
    petitions = (*state.petitions, petition_id) if len(state.petitions) < MAX_WINDOW_PETITIONS else state.petitions
    state = replace(state, count=state.count + 1, petitions=petitions, flags=state.flags + flags)
    verdict = judge_window(state.base, window, state.count, policy)
    if not verdict.surge:
        return state, closing
    old = state.alert
    if old is None:
        alert = OpenSurge(f"surge:{key}:{window}", 1, at, window, verdict.count, verdict.expected, verdict.z,
                          state.petitions[:MAX_PETITIONS], state.flags)
        return replace(state, alert=alert), [*closing, _change("opened", alert, policy, risk_policy)]
    if old.last_surge == window:  # one more petition of the surging window
        ids, more = (*old.petition_ids, petition_id), old.flags + flags
    else:  # a further window surges: its petitions so far join the alert
        ids, more = old.petition_ids + state.petitions, old.flags + state.flags
    alert = replace(old, version=old.version + 1, last_surge=window, count=verdict.count,
                    expected=verdict.expected, z=verdict.z, petition_ids=tuple(dict.fromkeys(ids))[:MAX_PETITIONS],
                    flags=more)
    return replace(state, alert=alert), [*closing, _change("updated", alert, policy, risk_policy)]


def tick(
    state: SurgeState, now: float, policy: SurgePolicy, *, origin: float | None = None,
    risk_policy: RiskPolicy = RiskPolicy(), keep: bool = False,
) -> tuple[SurgeState | None, SurgeChange | None]:
    """Fold finished windows and close an alert whose surge subsided. Returns None for the
    state when the key has nothing left worth keeping (no alert, a history faded to nothing:
    it is the same as a key never seen), unless `keep`."""
    window = int(now // policy.window_seconds)
    if state.window is None or state.window >= window:
        return state, None
    state = _roll(state, window, policy, origin)
    change = None
    alert = state.alert
    if alert is not None and window > alert.last_surge + 1:
        change = _change("closed", replace(alert, version=alert.version + 1), policy, risk_policy,
                         closed_at=(alert.last_surge + 2) * float(policy.window_seconds))
        state = replace(state, alert=None)
    faded = judge_window(state.base, window + 1, 0, policy).expected < 0.01
    if not keep and state.alert is None and state.count == 0 and faded:
        return None, change
    return state, change


# --- one incident, many reports -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """A routed petition as the clustering sees it."""

    petition_id: str
    at: float
    department: str | None
    triage: bool
    assignment_no: int
    category: str | None
    flags: Flags = Flags()


@dataclass(frozen=True, slots=True)
class Routed:
    """A petition of an incident as it was routed: where, under which assignment, whether to
    the triage desk, and how like the incident it was found."""

    petition_id: str
    department: str | None
    assignment_no: int
    triage: bool
    similarity: float

    def to_data(self) -> list[Any]:
        return [self.petition_id, self.department, self.assignment_no, self.triage, self.similarity]


@dataclass(frozen=True, slots=True)
class IncidentState:
    """An incident: its place, its category and holder (the first department, not the triage
    desk, one of its petitions was routed to), how many petitions it has and which (where
    each went), and its alert (version 0: not an alert yet)."""

    incident_id: str
    area: str | None
    category: str | None
    department: str | None
    count: int
    flags: Flags
    members: tuple[Routed, ...]
    first_at: float
    version: int = 0
    opened_at: float | None = None

    @property
    def alert_id(self) -> str:
        return f"cluster:{self.incident_id}"

    @property
    def petition_ids(self) -> tuple[str, ...]:
        return tuple(m.petition_id for m in self.members)

    def to_data(self) -> dict[str, Any]:
        return {"i": self.incident_id, "a": self.area, "c": self.category, "d": self.department, "n": self.count,
                "f": self.flags.to_data(), "m": [m.to_data() for m in self.members], "t": self.first_at,
                "v": self.version, "o": self.opened_at}

    @classmethod
    def from_data(cls, d: dict[str, Any]) -> IncidentState:
        return cls(d["i"], d["a"], d["c"], d["d"], d["n"], Flags.from_data(d["f"]),
                   tuple(Routed(*m) for m in d["m"]), d["t"], d["v"], d["o"])


@dataclass(frozen=True, slots=True)
class ClusterChange:
    what: Literal["opened", "updated", "closed"]
    incident: IncidentState
    level: int
    risk_reasons: tuple[str, ...]
    closed_at: float | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """Petition `petition_id` joined an incident held by another department: send it there."""

    petition_id: str
    incident_id: str
    alert_id: str
    department: str
    assignment_no: int
    similarity: float


def _holder(incident: IncidentState) -> str | None:
    if incident.department is not None:
        return incident.department
    return next((m.department for m in incident.members if not m.triage and m.department), None)


def join(
    incident: IncidentState | None, member: Member, *, incident_id: str, similarity: float, area: str | None,
    alert_size: int, absorbed: tuple[IncidentState, ...] = (), risk_policy: RiskPolicy = RiskPolicy(),
) -> tuple[IncidentState, list[ClusterChange], list[Link]]:
    """`member` joins incident `incident_id` (`incident` its state, None for a new one), which
    takes in the incidents `absorbed` (the member was like petitions of each). Returns the
    incident's new state; the alert changes (the absorbed incidents' alerts close, this one's
    opens at `alert_size` petitions or is updated); and the links that send to the incident's
    holder every petition of it routed elsewhere (the triage desk's too, once a holder is
    known; each petition is linked once)."""
    if incident is None:
        incident = IncidentState(incident_id, area, member.category, None, 0, Flags(), (), member.at)
    elif member.petition_id in incident.petition_ids and not absorbed:
        return incident, [], []
    changes: list[ClusterChange] = []
    for other in absorbed:
        incident = replace(
            incident, count=incident.count + other.count, flags=incident.flags + other.flags,
            members=(incident.members + other.members)[:MAX_PETITIONS], first_at=min(incident.first_at, other.first_at),
            department=incident.department or other.department, category=incident.category or other.category,
        )
        closed = close_incident(other, member.at, risk_policy)
        if closed is not None:
            changes.append(closed)
    if member.petition_id not in incident.petition_ids:
        routed = Routed(member.petition_id, member.department, member.assignment_no, member.triage, similarity)
        incident = replace(incident, count=incident.count + 1, flags=incident.flags + member.flags,
                           category=incident.category or member.category,
                           members=(*incident.members, routed)[:MAX_PETITIONS])
    holder = _holder(incident)
    links: list[Link] = []
    if holder is not None:
        members = []
        for m in incident.members:
            if m.department != holder:
                links.append(Link(m.petition_id, incident.incident_id, incident.alert_id, holder, m.assignment_no,
                                  m.similarity))
                m = replace(m, department=holder)  # noqa: PLW2901 - the member as it now stands
            members.append(m)
        incident = replace(incident, department=holder, members=tuple(members))
    if incident.count >= alert_size:
        opening = incident.version == 0
        incident = replace(incident, version=incident.version + 1,
                           opened_at=member.at if opening else incident.opened_at)
        level, reasons = risk(incident.count, incident.flags, risk_policy)
        changes.append(ClusterChange("opened" if opening else "updated", incident, level, reasons))
    return incident, changes, links


def close_incident(incident: IncidentState, now: float, risk_policy: RiskPolicy = RiskPolicy()) -> ClusterChange | None:
    """The incident went quiet (no petition left in the window): its alert closes, if it had one."""
    if incident.version == 0:
        return None
    closed = replace(incident, version=incident.version + 1)
    level, reasons = risk(closed.count, closed.flags, risk_policy)
    return ClusterChange("closed", closed, level, reasons, closed_at=now)
