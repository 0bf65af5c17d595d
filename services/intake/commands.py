"""What callers ask of intake (commands, validated at the door) and what it answers.

The models are the API's request and response bodies and the service layer's commands
alike: a field's limits, its pattern and the reference data it must name (``x-reference``,
filled in by :mod:`services.intake.api.openapi`) are stated once, here, and published in the
spec. Text fields use the stored-string types of :mod:`services.intake.text`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from services.intake.text import (
    EMAIL_PATTERN,
    Address,
    CategoryName,
    Content,
    Incident,
    Note,
    PersonName,
    Reason,
    Title,
)
from shared import codes
from shared.events import Channel, Kind
from shared.reference.obligations import parse_period

#: a unit that exists (a department, a 12345 office, a reporting unit): the code rule
#: (shared.codes), checked against the reference data; the published spec lists them
#: (`x-reference`, see services.intake.openapi)
UnitCode = Annotated[codes.DepartmentCode, Field(json_schema_extra={"x-reference": "unit"})]
#: a department of the routing table (one that can hold a petition)
DepartmentCode = Annotated[codes.DepartmentCode, Field(json_schema_extra={"x-reference": "department"})]
#: RFC 3339 with a numeric offset or Z (what the published pattern describes, years aside)
_RFC3339 = re.compile(
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)


def _rfc3339_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "received_at must be an RFC 3339 string with an offset")
    if _RFC3339.fullmatch(value) is None:
        raise PydanticCustomError(
            "datetime_format", "received_at must look like 2026-11-22T09:30:00+08:00 (RFC 3339, with an offset)"
        )
    return value


def _json_integer(value: Any) -> Any:
    """An integer as JSON Schema counts them: 3 or 3.0, never "3" or true."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("int_type", "Input should be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise PydanticCustomError("int_from_float", "Input should be an integer, without a fractional part")
        return int(value)
    return value


#: a JSON integer (JSON Schema's: 3.0 is one); strings and booleans are refused
JsonInt = Annotated[int, BeforeValidator(_json_integer)]
#: one extension of at most 30 days (信访工作条例)
# Field first: its bounds reach the spec
ExtensionDays = Annotated[int, Field(ge=1, le=30), BeforeValidator(_json_integer)]


ReceivedAt = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339_text),
    Field(json_schema_extra={"x-reference": "received_at"},
          description="when the petition was received (RFC 3339 with an offset); defaults to now. "
                      "It must lie between `PETITION_RECEIVED_AT_EARLIEST` (default 2000-01-01T00:00:00+08:00) "
                      "and `PETITION_RECEIVED_AT_MAX_FUTURE_SECONDS` (default 300) seconds after the server's "
                      "clock. The published pattern lists the days safely inside that window, up to two days "
                      "ago (JSON Schema cannot say \"not after now\"); the server accepts the whole window."),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PetitionerIn(_In):
    name: PersonName | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 -]{4,19}$")] | None = None
    id_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{17}[0-9Xx]$")] | None = None
    email: Annotated[str, StringConstraints(pattern=EMAIL_PATTERN)] | None = None


class LocationIn(_In):
    admin_code: Annotated[
        str, StringConstraints(pattern=r"^[0-9]{6}([0-9]{3}){0,2}$"),
        Field(json_schema_extra={"x-reference": "admin_code"},
              description="a gazetteer code of the province (6 digits), or of a street / community below one (9 / 12)"),
    ] | None = None
    address: Address | None = None


class PetitionIn(_In):
    """A petition as an operator posts it."""

    title: Title
    content: Content
    channel: Channel
    kind: Kind | None = None
    petitioner: PetitionerIn | None = None
    location: LocationIn | None = None
    persons: JsonInt = Field(default=1, ge=1, le=100000)
    received_at: ReceivedAt | None = None


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a petition came from when not from a member of staff's own client: the Open311
    client or the mailbox (`client`), and what Open311 adds to a petition."""

    client: str
    service_code: str | None = None
    lat: float | None = None
    long: float | None = None
    media_url: str | None = None


class PetitionAccepted(BaseModel):
    id: str
    tracking_code: str
    status: str


class _Action(_In):
    department: UnitCode
    note: Note = ""


class PlainAction(_Action):
    """Actions that need nothing more than the acting department (a note is optional)."""

    action: Literal["accept", "contact", "resume"]


class Resolution(_Action):
    """办结: the reply to the citizen (`note`, required) and the rule, policy or law it rests on
    (`basis`); `public: false` keeps the case off the public board (晒单)."""

    action: Literal["resolve"]
    note: Reason
    basis: Note = ""
    public: bool = True


Satisfaction = Literal["satisfied", "basically_satisfied", "unsatisfied"]


class FollowUpAction(_In):
    """回访: the hotline's call back to the petitioner after the resolution. `reached: false`
    records a call that reached nobody (after the policy's number of them the petition is
    `unreachable`); a call that reached the petitioner records whether the matter was
    `resolved` and how `satisfaction` stands. `department` is the hotline office making the
    call (default: the 12345 office of the petition's city)."""

    # the spec says it too: unless `reached` is false, `resolved` and `satisfaction` are required
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "if": {"properties": {"reached": {"const": True}}},
        "then": {"required": ["resolved", "satisfaction"],
                 "properties": {"resolved": {"type": "boolean"}, "satisfaction": {"type": "string"}}},
    })

    action: Literal["follow_up"]
    reached: bool = True
    resolved: bool | None = None
    satisfaction: Satisfaction | None = None
    note: Note = ""
    department: UnitCode | None = None

    @model_validator(mode="after")
    def _verdict(self) -> FollowUpAction:
        if self.reached and (self.resolved is None or self.satisfaction is None):
            raise PydanticCustomError("follow_up_verdict",
                                      "a follow-up that reached the petitioner gives `resolved` and `satisfaction`")
        return self


class ReasonedAction(_Action):
    """Actions that need a reason in `note`."""

    action: Literal["return", "pause", "reject_extension"]
    note: Reason


class ExtensionRequest(_Action):
    action: Literal["request_extension"]
    note: Reason
    extension_days: ExtensionDays | None = None


class ExtensionApproval(_Action):
    action: Literal["approve_extension"]
    extension_days: ExtensionDays | None = None


class Assignment(_Action):
    """The triage desk assigns a petition to a department (and may correct its category)."""

    action: Literal["assign"]
    target_department: DepartmentCode
    category: CategoryName | None = None


class Unlink(_Action):
    """A supervisor takes the petition out of the incident the watch linked it to (并案 undone),
    in the name of a unit of its area, with the reason; the router gives it back to the
    department its own routing chose."""

    action: Literal["unlink"]
    note: Reason


ActionIn = Annotated[
    PlainAction | Resolution | ReasonedAction | ExtensionRequest | ExtensionApproval | Assignment | FollowUpAction
    | Unlink,
    Field(discriminator="action"),
]
#: the tag of each action model (a location in a validation error that is no field)
ACTION_TAGS = frozenset({
    "accept", "resolve", "contact", "resume", "return", "pause", "reject_extension", "request_extension",
    "approve_extension", "assign", "follow_up", "unlink",
})


class AlertPetition(BaseModel):
    """A petition an alert lists: its id and (when intake knows it) its tracking code."""

    id: str
    tracking_code: str | None


class AlertOut(BaseModel):
    """An early-warning alert (预警) as its latest version says. Times are local (Asia/Shanghai)."""

    alert_id: str
    version: int
    state: Literal["active", "closed"]
    #: surge: more petitions about one category in one area and window than its history
    #: leads to expect; cluster: one incident reported by many (并案)
    kind: Literal["surge", "cluster"]
    #: the gazetteer area, its name and level; None: petitions the router could place nowhere
    area: str | None
    area_name: str | None
    area_level: str | None
    category: str | None
    #: surges: the window's length (hour, day) and the surging window's start
    window: str | None
    window_start: str | None
    count: int
    #: surges: the count the area's history expected, and how many standard deviations above it
    expected: float | None
    z: float | None
    #: the petitions it lists, without those a person unlinked from its incident
    petition_ids: list[str]
    petitions: list[AlertPetition]
    unlinked_petition_ids: list[str]
    opened_at: str
    closed_at: str | None
    #: risk (矛盾纠纷): 1 low, 2 raised, 3 high, and what raised it
    level: int
    risk_reasons: list[str]
    #: clusters: the department holding the incident
    department_code: str | None
    updated_at: str


class AlertList(BaseModel):
    state: Literal["active", "closed", "all"]
    items: list[AlertOut]


class ContactReveal(_In):
    """Why the caller needs the petitioner's contacts (recorded in the audit log)."""

    reason: Reason


class ActionAccepted(BaseModel):
    id: str
    action: str
    status: str


#: the shape of a period id, as the spec publishes it (whether it names a real date is checked after)
PERIOD_PATTERN = r"^([0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-W[0-9]{2}|[0-9]{4}-[0-9]{2}-H[12]|[0-9]{4}-[0-9]{2})$"


class ZeroReportIn(_In):
    """A unit's report for one period; the spec lists the units and the periods each owes."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"x-reference": "zero_report"})

    unit: Annotated[codes.DepartmentCode, Field(description="a unit with a zero-report obligation")]
    period: Annotated[str, Field(description="a period the unit owes that has opened (local date, Asia/Shanghai)")]
    incidents: list[Incident] = Field(max_length=50)

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        parse_period(value)  # the shared rule: a period of some cadence, naming real dates
        return value


class ZeroReportAccepted(BaseModel):
    id: str
    unit: str
    period: str
    status: str


class CloseSupervisionIn(_In):
    department: UnitCode
    note: Note = ""


class OpenSupervisionIn(_In):
    """A supervisor opens a 督办 on a petition: in the name of which unit of its area, and why."""

    department: UnitCode
    note: Reason


class SupervisionClosing(BaseModel):
    id: str
    status: str


