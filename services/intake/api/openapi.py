"""The published OpenAPI document, completed with the reference data it depends on.

Fields marked ``x-reference`` in the models get the values the server accepts, so that the
spec and the server agree (a client, or a fuzzer generating from the spec, sends what is
accepted): ``unit`` the codes of every unit that exists, ``department`` the routing table's
departments but the triage desk, ``admin_code`` a pattern of the gazetteer's codes,
``zero_report`` the units with an obligation and, per unit, the periods it owes that have
opened (it changes with the local date), ``received_at`` a pattern of the days inside the
accepted window up to two days ago (see the field's description). The document is rebuilt when the reference
data is reloaded or the local date changes.

FastAPI's own ``HTTPValidationError`` is not used: every operation's refusals are declared
with the project's error shape (:mod:`services.intake.errors`).
"""

from __future__ import annotations

import calendar
import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from services.intake.api.permissions import describe
from services.intake.reference import Reference, ReferenceHolder, local_today
from shared.settings import Settings

_MONTH_DAY = (
    r"(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
    r"|(0[13-9]|1[0-2])-(29|30)"
    r"|(0[13578]|1[02])-31"
)
_TIME = r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"


def _alternatives(items: list[str]) -> str:
    return "(" + "|".join(items) + ")"


def _days_of(year: int, month: int, first: int, last: int) -> str:
    return f"{month:02d}-" + _alternatives([f"{d:02d}" for d in range(first, last + 1)])


def _part_of_year(year: int, lo: tuple[int, int], hi: tuple[int, int]) -> str:
    months = []
    for month in range(lo[0], hi[0] + 1):
        first = lo[1] if month == lo[0] else 1
        last = hi[1] if month == hi[0] else calendar.monthrange(year, month)[1]
        months.append(_days_of(year, month, first, last))
    return f"{year}-" + _alternatives(months)


def date_range_pattern(lo: date, hi: date) -> str:
    """A regular expression (unanchored) matching exactly the ISO dates from `lo` to `hi`."""
    if hi < lo:
        return "(?!)"
    if lo.year == hi.year:
        return _part_of_year(lo.year, (lo.month, lo.day), (hi.month, hi.day))
    parts = [_part_of_year(lo.year, (lo.month, lo.day), (12, 31))]
    whole = range(lo.year + 1, hi.year)
    common = [str(y) for y in whole if not calendar.isleap(y)]
    leap = [str(y) for y in whole if calendar.isleap(y)]
    if common:
        parts.append(_alternatives(common) + f"-({_MONTH_DAY})")
    if leap:
        parts.append(_alternatives(leap) + f"-({_MONTH_DAY}|02-29)")
    parts.append(_part_of_year(hi.year, (1, 1), (hi.month, hi.day)))
    return _alternatives(parts)


def received_at_pattern(settings: Settings, now: datetime) -> str:
    """The days every instant of which, written with any offset (±23:59), lies inside the
    accepted window: from two days after the earliest instant to two days before now. JSON
    Schema cannot say "not after now", so the last two days and the few minutes of allowed
    clock skew are accepted by the server but not listed (a subset: all of it valid)."""
    first = settings.received_at_earliest.astimezone(UTC).date() + timedelta(days=2)
    last = now.astimezone(UTC).date() - timedelta(days=2)
    return rf"^{date_range_pattern(first, last)}{_TIME}$"


def _admin_code_pattern(reference: Reference) -> str:
    return rf"^({'|'.join(sorted(reference.area_codes))})([0-9]{{3}}){{0,2}}$"


def _zero_report_variants(reference: Reference, today: date) -> list[dict[str, Any]]:
    variants = []
    for unit in sorted(reference.obligations):
        periods = list(reference.owed_periods(unit, today))
        if periods:
            variants.append({"properties": {"unit": {"const": unit}, "period": {"enum": periods}}})
    return variants


def _complete(node: Any, reference: Reference, settings: Settings, now: datetime, today: date) -> None:
    if isinstance(node, dict):
        kind = node.get("x-reference")
        if kind in ("unit", "department"):
            name = "UnitCode" if kind == "unit" else "DepartmentCode"
            for key in [k for k in node if k not in ("description", "title")]:
                del node[key]
            node["$ref"] = f"#/components/schemas/{name}"
        elif kind == "admin_code":
            node["pattern"] = _admin_code_pattern(reference)
        elif kind == "received_at":
            node["pattern"] = received_at_pattern(settings, now)
        elif kind == "zero_report":
            # "no such unit or period" is impossible to satisfy when nothing is owed yet
            node["anyOf"] = _zero_report_variants(reference, today) or [{"not": {}}]
        for value in node.values():
            _complete(value, reference, settings, now, today)
    elif isinstance(node, list):
        for value in node:
            _complete(value, reference, settings, now, today)


def _describe_roles(document: dict[str, Any]) -> None:
    """Each operation's description names the roles that may call it (the permissions table)."""
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            roles = describe(method, path)
            if roles is not None:
                operation["description"] = "\n\n".join(filter(None, [operation.get("description"), roles]))


def install_openapi(app: FastAPI, holder: ReferenceHolder, settings: Settings) -> None:
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        reference = holder.current
        now = datetime.now(UTC)
        today = local_today(now)
        key = (reference.version, today, received_at_pattern(settings, now))
        if cache.get("key") != key:
            if "base" not in cache:
                cache["base"] = get_openapi(
                    title=app.title, version=app.version, openapi_version=app.openapi_version,
                    description=app.description, routes=app.routes,
                )
                schemas = cache["base"].get("components", {}).get("schemas", {})
                for unused in ("HTTPValidationError", "ValidationError"):
                    schemas.pop(unused, None)
                _describe_roles(cache["base"])
            document = copy.deepcopy(cache["base"])
            _complete(document, reference, settings, now, today)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas["UnitCode"] = {
                "type": "string", "description": "a unit that exists", "enum": sorted(reference.units)
            }
            schemas["DepartmentCode"] = {"type": "string", "description": "a department of the routing table",
                                         "enum": sorted(reference.departments - {reference.triage})}
            cache["key"], cache["document"] = key, document
        return cache["document"]

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema
