"""Events of early warning (预警), written by the watch service alone on ``petition.alerts``.

* :class:`WatchAlert` (``watch.alert``), keyed by its `alert_id` as raw UTF-8 bytes
  (:func:`key_for_alert`): a surge (more petitions about one category in one area and window
  than the area's own history leads to expect) or a cluster (one incident reported by many:
  near-duplicate petitions about one place). The same alert is published again, with a higher
  `version`, whenever it changes (more petitions, a higher risk level) and when it closes;
  readers keep the highest version. Its id is stable for the alert's whole life.
* :class:`IncidentLinked` (``incident.linked``), keyed by the petition id like every petition
  event: a petition joined an open incident whose petitions are held by `department_code`;
  the router then sends it there (并案) unless a person unlinked it (``unlink`` action).

Neither carries personal data: petitions appear by id, places by area code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.events.envelope import BaseEnvelope, Envelope

__all__ = ["IncidentLinked", "WatchAlert", "key_for_alert"]

#: most petition ids an alert lists (the first ones; `count` says how many there are)
MAX_ALERT_PETITIONS = 200


class WatchAlert(BaseEnvelope):
    """One early-warning alert, as it stands at `version`."""

    event_type: Literal["watch.alert"] = "watch.alert"
    alert_id: str = Field(min_length=1, max_length=200)
    version: int = Field(ge=1)
    state: Literal["active", "closed"]
    kind: Literal["surge", "cluster"]
    #: the area the alert is about (a gazetteer code, its name and level); None: petitions
    #: the router could place nowhere
    area: str | None
    area_name: str | None = None
    area_level: str | None = None
    category: str | None
    #: surges: the window length (``hour``, ``day``) and the surging window's start
    window: str | None = None
    window_start: datetime | None = None
    count: int = Field(ge=0)
    #: surges: the count the baseline expected for the window; clusters: None
    expected: float | None = None
    #: surges: standard deviations above the baseline
    z: float | None = None
    petition_ids: tuple[str, ...] = Field(default=(), max_length=MAX_ALERT_PETITIONS)
    opened_at: datetime
    closed_at: datetime | None = None
    #: risk (矛盾纠纷): 1 low, 2 raised, 3 high; raised by group petitions, repeat petitioners
    #: and accusations among the petitions (`risk_reasons` says which)
    level: int = Field(default=1, ge=1, le=3)
    risk_reasons: tuple[str, ...] = ()
    #: clusters: the department holding the incident (where linked petitions are sent)
    department_code: str | None = None


class IncidentLinked(Envelope):
    """Petition `petition_id` joined incident `incident_id` (alert `alert_id`), held by
    `department_code`; `assignment_no` is the assignment the watch saw it routed under."""

    event_type: Literal["incident.linked"] = "incident.linked"
    incident_id: str = Field(min_length=1, max_length=64)
    alert_id: str = Field(min_length=1, max_length=200)
    department_code: str
    assignment_no: int = Field(ge=1)
    similarity: float = Field(ge=0, le=1)


def key_for_alert(alert_id: str) -> bytes:
    """The Kafka key of an alert: its id as raw UTF-8 bytes (its versions stay in order)."""
    return alert_id.encode()
