"""Reference data the intake API checks inputs against: units, places, zero-report duties.

* **departments**: the routing table's departments (generated per area of the gazetteer, plus
  fixed ones and the triage desk), by the shared directory the router builds its table on
  (:class:`shared.reference.directory.Directory` over ``Settings.routing_table_path`` /
  ``gazetteer_path``). Only these hold petitions, so only these (the triage desk aside) can
  be an ``assign`` target.
* **units**: every code that names a real unit: the departments, the escalation ladder's city
  12345 / 信访 offices (``<city letter>-12345`` and the province's ``P-12345``, from
  ``ladder.yaml``'s unit rules; ``X-GOV`` are departments already), and the units and
  supervising units of the zero-report obligations (street offices such as ``A3-S01`` exist
  only there). A department acting, deciding an extension or closing a 督办 must be one.
* **places**: the gazetteer's administrative codes; a petition's ``location.admin_code`` must
  start with one (6 digits: province, city or district; 9 / 12 digits: a street or community
  below it).
* **zero-report duties**: the obligations file (``PETITION_ESCALATION_OBLIGATIONS_PATH``, the
  same variable the escalation service reads) with the holiday calendar: a unit reports only
  for a period it owes (its cadence or one of its special periods, working days for a
  ``workday`` calendar, not before ``since``) that has opened (its first day is today or
  earlier, local date in Asia/Shanghai).

Loaded once at start-up; the files are looked at again at most every
``table_reload_seconds`` and reloaded when one changed (a file that does not load keeps the
data in force, as the router does). All of it is parsed by :mod:`shared.reference`, the
code the router and the escalation service use for the same files.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from services.intake.domain.access import AreaScope
from services.intake.domain.loop import LoopPolicy
from shared.reference.calendar import WorkCalendar
from shared.reference.calendar_source import load_calendar
from shared.reference.directory import UnitRules, offices
from shared.reference.files import GAZETTEER, ROUTING, EscalationFiles, load_directory
from shared.reference.obligations import Obligation, owed_periods, parse_obligations, parse_period, scheduled
from shared.settings import Settings

log = logging.getLogger(__name__)

LOCAL = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Reference:
    """One consistent snapshot of the reference data."""

    version: str
    departments: frozenset[str]
    #: the routing table's triage desk (it holds petitions, but is no `assign` target)
    triage: str
    units: frozenset[str]
    area_codes: frozenset[str]
    obligations: dict[str, Obligation]
    calendar: WorkCalendar
    #: area code -> (token, parent code): the gazetteer's tree, for supervisors' scopes
    areas: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    #: department code -> its name (the routing table's), for people's screens
    names: dict[str, str] = field(default_factory=dict)
    _owed_cache: dict[tuple[str, date], tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    _scopes: dict[str, AreaScope] = field(default_factory=dict, compare=False, repr=False)

    def scope_of(self, area_code: str) -> AreaScope:
        """The subtree of area `area_code` (itself and every area below), as a supervisor's
        scope; an unknown area has an empty one."""
        found = self._scopes.get(area_code)
        if found is not None:
            return found
        codes = {area_code} if area_code in self.areas else set()
        grew = True
        while grew:
            below = {c for c, (_, parent) in self.areas.items() if parent in codes} - codes
            grew = bool(below)
            codes |= below
        own = self.areas.get(area_code, ("", None))
        scope = AreaScope(own[0], frozenset(codes), frozenset(self.areas[c][0] for c in codes),
                          is_root=bool(codes) and own[1] is None)
        self._scopes[area_code] = scope
        return scope

    def office_for(self, area_code: str | None) -> str:
        """The hotline (12345) office answering for an area: its city's, else the province's."""
        code = area_code
        while code is not None and code in self.areas:
            token, parent = self.areas[code]
            if f"{token}-12345" in self.units and parent is not None:
                return f"{token}-12345"
            code = parent
        return next((u for u in sorted(self.units) if u.endswith("-12345") and u.startswith("P-")), "P-12345")

    def government_over(self, unit: str, area_code: str | None) -> str | None:
        """The government that supervises `unit` in an area: the area's own (``A3-GOV``), or
        the one above when `unit` is that government itself; None when there is none."""
        code = area_code
        while code is not None and code in self.areas:
            token, parent = self.areas[code]
            if f"{token}-GOV" in self.units and f"{token}-GOV" != unit:
                return f"{token}-GOV"
            code = parent
        return None

    def admin_code_known(self, code: str) -> bool:
        return code[:6] in self.area_codes

    def period_problem(self, unit: str, period_id: str, today: date) -> str | None:
        """Why `unit` cannot report for `period_id` on local date `today`; None when it can."""
        ob = self.obligations.get(unit)
        if ob is None:
            return f"{unit} owes no zero reports (no obligation)"
        try:
            period = parse_period(period_id)
        except ValueError as exc:
            return str(exc)
        if period.first_day > today:
            return f"period {period_id} has not opened yet (it starts {period.first_day.isoformat()})"
        if period.last_day < ob.since:
            return f"{unit} reports only from {ob.since.isoformat()}; period {period_id} is before that"
        if scheduled(ob, period_id, self.calendar) is None:
            return f"{unit} owes no report for period {period_id} (not a period of its cadence or special periods)"
        return None

    def owed_periods(self, unit: str, today: date) -> tuple[str, ...]:
        """Every period id `unit` owes that has opened by `today`, oldest first."""
        key = (unit, today)
        cached = self._owed_cache.get(key)
        if cached is None:
            cached = self._owed_cache[key] = owed_periods(self.obligations[unit], today, self.calendar)
        return cached


def load_reference(settings: Settings, files: EscalationFiles | None = None) -> Reference:
    files = files or EscalationFiles()
    found = load_directory(settings.routing_table_path or ROUTING, settings.gazetteer_path or GAZETTEER)
    ladder_data = yaml.safe_load(files.ladder_path.read_bytes()) or {}
    obligations = parse_obligations(yaml.safe_load(files.obligations_path.read_bytes()) or {})
    departments = found.directory.codes()
    obligated = {o.unit for o in obligations.values()} | {o.supervising_unit for o in obligations.values()}
    return Reference(
        version=f"{found.version}:{_stamp([files.ladder_path, files.obligations_path])}",
        departments=departments,
        triage=found.directory.triage.code,
        units=frozenset(departments | offices(UnitRules.from_data(ladder_data.get("units")), found.gazetteer)
                        | obligated),
        area_codes=frozenset(a.code for a in found.gazetteer.areas()),
        areas={a.code: (a.token, a.parent) for a in found.gazetteer.areas()},
        names={d.code: d.name for d in found.directory.departments},
        obligations=obligations,
        calendar=load_calendar(),
    )


def _stamp(paths: list[Path]) -> str:
    return "-".join(str(p.stat().st_mtime_ns) for p in paths)


class ReferenceHolder:
    """The reference data in force; reloads it when one of its files changed."""

    def __init__(self, settings: Settings, files: EscalationFiles | None = None) -> None:
        self.settings = settings
        self.files = files or EscalationFiles()
        self._paths = [
            settings.routing_table_path or ROUTING, settings.gazetteer_path or GAZETTEER,
            self.files.ladder_path, self.files.obligations_path,
        ]
        self._mtimes = self._read_mtimes()
        self._current = load_reference(settings, self.files)
        self._next_check = time.monotonic() + settings.table_reload_seconds
        self._lock = threading.Lock()

    def _read_mtimes(self) -> tuple[int, ...]:
        out = []
        for p in self._paths:
            try:
                out.append(p.stat().st_mtime_ns)
            except OSError:
                out.append(-1)
        return tuple(out)

    @property
    def current(self) -> Reference:
        now = time.monotonic()
        if now >= self._next_check and self._lock.acquire(blocking=False):
            try:
                self._next_check = now + self.settings.table_reload_seconds
                mtimes = self._read_mtimes()
                if mtimes != self._mtimes:
                    self._mtimes = mtimes
                    try:
                        self._current = load_reference(self.settings, self.files)
                        log.info("reference data reloaded (%s)", self._current.version)
                    except Exception as exc:  # noqa: BLE001 - keep what is in force
                        log.error("reference data not reloaded, keeping %s: %r", self._current.version, exc)
            finally:
                self._lock.release()
        return self._current


#: the closing-the-loop policy (follow-ups, reopenings, the 三率's weights)
LOOP_POLICY = Path(__file__).resolve().parent / "data" / "loop.yaml"


def load_loop_policy(path: Path | None = None) -> LoopPolicy:
    return LoopPolicy.from_data(yaml.safe_load((path or LOOP_POLICY).read_bytes()) or {})


def local_today(now: datetime | None = None) -> date:
    return (now or datetime.now(LOCAL)).astimezone(LOCAL).date()
