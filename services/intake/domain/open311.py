"""Open311 GeoReport v2 as rules: the service list, a posted request read into a petition, the
filters of ``GET requests`` and a petition's status in the standard's two words. Pure.

The specification (http://wiki.open311.org/GeoReport_v2) is followed where it speaks; where it
leaves a choice to the jurisdiction, the choice is stated here:

* a **service** is a first-level (一级) category the router routes (``services/intake/data/
  open311.yaml``), ``group`` being that category;
* a request needs a ``description`` (the citizen's words are what the router classifies) of at
  most 4,000 characters, and one location: ``lat`` + ``long``, ``address_string`` or
  ``address_id``, which is a code of the province's gazetteer (the jurisdiction's address
  repository);
* ``first_name`` / ``last_name`` / ``phone`` / ``email`` are the petitioner's contacts, kept in
  intake only; the name is written family name first (``last_name`` + ``first_name``);
* a request is ``closed`` once its department has resolved it (or the follow-up closed it).

Every refusal is an :class:`Open311Error` with the standard's status (400, 403, 404) and a
description naming the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.intake.text import EMAIL_PATTERN

__all__ = [
    "CLOSED_STATUSES", "DEFAULT_DAYS", "MAX_DESCRIPTION", "MAX_REQUESTS", "Attribute", "Catalogue",
    "Open311Error", "RequestQuery", "Service", "Submission", "public_status", "read_query", "read_request",
]

#: the petition statuses GeoReport calls ``closed``; every other one is ``open``
CLOSED_STATUSES = frozenset({"resolved", "closed"})
MAX_DESCRIPTION = 4000
#: ``GET requests`` without dates covers this many days back from now, at most MAX_REQUESTS
DEFAULT_DAYS = 90
MAX_REQUESTS = 1000
MAX_IDS = 1000
_TITLE_CHARS = 60
_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_ADMIN_CODE = re.compile(r"^[0-9]{6}(?:[0-9]{3}){0,2}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 -]{4,19}$")
_EMAIL = re.compile(EMAIL_PATTERN)
_URL = re.compile(r"^https?://[^\s<>\"]{1,2000}$")
_ATTRIBUTE = re.compile(r"^attribute\[([^\]]{1,64})\]$")
_W3C = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})$")
DATATYPES = frozenset({"string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"})


class Open311Error(Exception):
    """A refusal as the standard writes it: ``{code, description}`` with the HTTP status."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _bad(description: str) -> Open311Error:
    return Open311Error(400, description)


@dataclass(frozen=True, slots=True)
class Attribute:
    """A fact a service asks for beyond the text (a service definition's ``attribute``)."""

    code: str
    datatype: str
    required: bool
    description: str
    order: int
    datatype_description: str = ""
    values: tuple[tuple[str, str], ...] = ()  # (key, name) for the list types

    def read(self, raw: str) -> Any:
        """The value as the petition takes it; Open311Error for one that is not."""
        if self.datatype == "number":
            try:
                number = float(raw)
            except ValueError:
                raise _bad(f"attribute[{self.code}] must be a number") from None
            if not math.isfinite(number) or not number.is_integer():
                raise _bad(f"attribute[{self.code}] must be a whole number")
            return int(number)
        if self.datatype == "singlevaluelist" and raw not in dict(self.values):
            keys = ", ".join(k for k, _ in self.values)
            raise _bad(f"attribute[{self.code}] must be one of {keys}")
        return raw


@dataclass(frozen=True, slots=True)
class Service:
    code: str
    category: str
    description: str
    keywords: tuple[str, ...]
    listed: bool
    attributes: tuple[Attribute, ...]

    @property
    def name(self) -> str:
        return self.category

    @property
    def group(self) -> str:
        return self.category


@dataclass(frozen=True)
class Catalogue:
    """The service list and the jurisdiction's discovery facts."""

    jurisdiction_id: str
    contact: str
    key_service: str
    changeset: str
    services: tuple[Service, ...]

    def __post_init__(self) -> None:
        codes = [s.code for s in self.services]
        categories = [s.category for s in self.services]
        if len(set(codes)) != len(codes) or len(set(categories)) != len(categories):
            raise ValueError("every service needs its own code and its own category")

    def service(self, code: str) -> Service | None:
        return next((s for s in self.services if s.code == code), None)

    def of_category(self, category: str | None) -> Service | None:
        return next((s for s in self.services if s.category == category), None)

    @property
    def unlisted(self) -> tuple[str, ...]:
        """The categories kept out of the public ``GET requests``."""
        return tuple(s.category for s in self.services if not s.listed)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Catalogue:
        """The catalogue of the data file (``open311.yaml``, already parsed); ValueError when
        it is inconsistent."""
        shared: dict[str, Attribute] = {}
        for order, (code, spec) in enumerate((data.get("attributes") or {}).items(), start=1):
            datatype = spec["datatype"]
            if datatype not in DATATYPES:
                raise ValueError(f"attribute {code}: no datatype {datatype!r}")
            values = tuple((str(k), str(v)) for k, v in (spec.get("values") or {}).items())
            if datatype.endswith("valuelist") and not values:
                raise ValueError(f"attribute {code}: a list needs values")
            shared[code] = Attribute(code, datatype, bool(spec.get("required", False)), str(spec["description"]),
                                     order, str(spec.get("datatype_description", "")), values)
        services = []
        for spec in data["services"]:
            code = str(spec["code"])
            if _CODE.fullmatch(code) is None:
                raise ValueError(f"service code {code!r}: lower-case ASCII letters, digits and '-'")
            names = spec.get("attributes", list(shared))
            unknown = [n for n in names if n not in shared]
            if unknown:
                raise ValueError(f"service {code}: no attribute {', '.join(unknown)}")
            services.append(Service(code, str(spec["category"]), str(spec.get("description", "")),
                                    tuple(str(k) for k in spec.get("keywords", ())), bool(spec.get("listed", True)),
                                    tuple(shared[n] for n in names)))
        return cls(str(data["jurisdiction_id"]), str(data.get("contact", "")), str(data.get("key_service", "")),
                   str(data.get("changeset", "")), tuple(services))


@dataclass(frozen=True, slots=True)
class Submission:
    """A posted request, read: the fields of a petition (what ``PetitionIn`` validates) and
    what Open311 adds to it."""

    petition: dict[str, Any]
    service: Service
    lat: float | None
    long: float | None
    media_url: str | None
    email: str | None


def _one(form: Mapping[str, Sequence[str]], name: str) -> str | None:
    """A field given once (stripped; empty is absent); given twice is refused."""
    values = form.get(name) or []
    if len(values) > 1:
        raise _bad(f"{name} is given more than once")
    value = values[0].strip() if values else ""
    return value or None


def _coordinate(raw: str, name: str, bound: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise _bad(f"{name} must be a decimal number (WGS-84 degrees)") from None
    if not math.isfinite(value) or abs(value) > bound:
        raise _bad(f"{name} must lie between -{bound:g} and {bound:g}")
    return value


def _title(service: Service, description: str) -> str:
    first = description.strip().splitlines()[0].strip() if description.strip() else ""
    if len(first) > _TITLE_CHARS:
        first = first[:_TITLE_CHARS - 1] + "…"
    return f"{service.name}：{first}" if first else service.name


def read_request(form: Mapping[str, Sequence[str]], catalogue: Catalogue) -> Submission:
    """A ``POST requests`` form (every value a list, as a form parser gives them) read into a
    petition; Open311Error (400) for what the standard or this jurisdiction refuses."""
    code = _one(form, "service_code")
    if code is None:
        raise _bad("service_code is required (GET services lists them)")
    service = catalogue.service(code)
    if service is None:
        raise _bad(f"service_code {code} is no service of this jurisdiction")
    description = _one(form, "description")
    if description is None:
        raise _bad("description is required: the citizen's account of the matter")
    if len(description) > MAX_DESCRIPTION:
        raise _bad(f"description is longer than {MAX_DESCRIPTION:,} characters")
    lat_raw, long_raw = _one(form, "lat"), _one(form, "long")
    if (lat_raw is None) != (long_raw is None):
        raise _bad("lat and long go together: give both or neither")
    lat = _coordinate(lat_raw, "lat", 90) if lat_raw is not None else None
    long = _coordinate(long_raw, "long", 180) if long_raw is not None else None
    address, address_id = _one(form, "address_string"), _one(form, "address_id")
    if lat is None and address is None and address_id is None:
        raise _bad("a location is required: lat and long, address_string or address_id")
    if address_id is not None and _ADMIN_CODE.fullmatch(address_id) is None:
        raise _bad("address_id must be a code of the province's gazetteer (6, 9 or 12 digits)")
    petition: dict[str, Any] = {"title": _title(service, description), "content": description}
    location = {k: v for k, v in (("admin_code", address_id), ("address", address)) if v is not None}
    if location:
        petition["location"] = location
    for name, _raw in form.items():
        match = _ATTRIBUTE.fullmatch(name)
        if match is None:
            continue
        attribute = next((a for a in service.attributes if a.code == match.group(1)), None)
        if attribute is None:
            raise _bad(f"service {service.code} has no attribute {match.group(1)}")
        value = _one(form, name)
        if value is not None:
            petition[attribute.code] = attribute.read(value)
    for attribute in service.attributes:
        if attribute.required and attribute.code not in petition:
            raise _bad(f"attribute[{attribute.code}] is required for service {service.code}")
    person: dict[str, str] = {}
    first, last = _one(form, "first_name"), _one(form, "last_name")
    if first or last:
        person["name"] = (last or "") + (first or "")
    phone = _one(form, "phone")
    if phone is not None:
        if _PHONE.fullmatch(phone) is None:
            raise _bad("phone must be a telephone number: digits, spaces or '-', optionally a leading '+'")
        person["phone"] = phone
    email = _one(form, "email")
    if email is not None:
        if _EMAIL.fullmatch(email) is None:
            raise _bad("email must be an e-mail address")
        person["email"] = email
    if person:
        petition["petitioner"] = person
    media_url = _one(form, "media_url")
    if media_url is not None and _URL.fullmatch(media_url) is None:
        raise _bad("media_url must be an http or https URL of at most 2,000 characters")
    return Submission(petition, service, lat, long, media_url, email)


@dataclass(frozen=True, slots=True)
class RequestQuery:
    """``GET requests``: either the ids asked for, or a window and filters."""

    ids: tuple[str, ...] | None
    categories: tuple[str, ...] | None
    codes: tuple[str, ...] | None
    start: datetime | None
    end: datetime | None
    statuses: tuple[str, ...] | None
    limit: int = MAX_REQUESTS


def _list(form: Mapping[str, Sequence[str]], name: str) -> tuple[str, ...] | None:
    value = _one(form, name)
    if value is None:
        return None
    items = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    return items or None


def _w3c(raw: str | None, name: str) -> datetime | None:
    if raw is None:
        return None
    if _W3C.fullmatch(raw) is None:
        raise _bad(f"{name} must be a W3C date-time with a zone, like 2026-11-01T00:00:00+08:00")
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"{name} is no date-time that exists") from None


def read_query(form: Mapping[str, Sequence[str]], catalogue: Catalogue, now: datetime) -> RequestQuery:
    """The filters of ``GET requests``. ``service_request_id`` (a comma list) overrides the
    others; without dates the window is the last ``DEFAULT_DAYS`` days; at most
    ``MAX_REQUESTS`` answers, newest first."""
    ids = _list(form, "service_request_id")
    if ids is not None:
        if len(ids) > MAX_IDS:
            raise _bad(f"at most {MAX_IDS} service_request_id values")
        return RequestQuery(ids, None, None, None, None, None)
    categories = codes = None
    if (asked := _list(form, "service_code")) is not None:
        unknown = [c for c in asked if catalogue.service(c) is None]
        if unknown:
            raise _bad(f"service_code {', '.join(unknown)} is no service of this jurisdiction")
        codes = asked
        categories = tuple(s.category for s in catalogue.services if s.code in asked)
    start, end = _w3c(_one(form, "start_date"), "start_date"), _w3c(_one(form, "end_date"), "end_date")
    if start is None and end is None:
        start = now - timedelta(days=DEFAULT_DAYS)
    elif start is None and end is not None:
        start = end - timedelta(days=DEFAULT_DAYS)
    if start is not None and end is not None and end < start:
        raise _bad("end_date is before start_date")
    statuses = _list(form, "status")
    if statuses is not None and not set(statuses) <= {"open", "closed"}:
        raise _bad("status must be open, closed or both (open,closed)")
    return RequestQuery(None, categories, codes, start, end, statuses)


def public_status(status: str) -> str:
    """A petition's status as GeoReport says it: ``open`` or ``closed``."""
    return "closed" if status in CLOSED_STATUSES else "open"
