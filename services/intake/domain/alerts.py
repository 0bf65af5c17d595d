"""Early warning (预警) as intake reads it: which version of an alert stands, who sees it, and
which of its petitions it still lists.

The watch service owns the alerts (``petition.alerts``): it republishes an alert with a
higher `version` at every change and when it closes, and readers keep the highest version, so
a redelivered or late older version changes nothing (:func:`supersedes`).

* **Scope**: an alert is about an area of the gazetteer (a city, a district, or a street
  below one). A supervisor sees the alerts of its area's subtree (a city's supervisor the
  city's and its districts'); an alert about no known area (petitions the router could place
  nowhere) only the province's supervisor, who oversees everything (:func:`alert_in_scope`).
  The other roles read no alerts: they concern areas, not one unit's petitions.
* **Unlinked petitions**: a person may take a petition out of the incident the watch linked
  it to (``unlink``); the cluster's alert then no longer lists it, whatever later versions
  of the alert say (:func:`listed_petitions`).

Pure: the caller loads the facts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from services.intake.domain.access import AreaScope

__all__ = ["AREA_CODE_DIGITS", "alert_in_scope", "listed_petitions", "supersedes"]

#: a gazetteer area code (province, city, district) has 6 digits; a street's or community's
#: code (9 / 12 digits) starts with its district's
AREA_CODE_DIGITS = 6


def supersedes(stored_version: int | None, incoming_version: int) -> bool:
    """Whether an alert at `incoming_version` replaces the one stored (None: none yet). An
    equal version is the same alert again (a redelivery): nothing changes."""
    return stored_version is None or incoming_version > stored_version


def alert_in_scope(area: str | None, scope: AreaScope | None) -> bool:
    """Whether a supervisor of `scope` sees an alert about `area` (None: no known area)."""
    if scope is None:
        return False
    if scope.is_root:
        return True
    if area is None:
        return False
    return area in scope.codes or area[:AREA_CODE_DIGITS] in scope.codes


def listed_petitions(petition_ids: Iterable[str], unlinked: Collection[str]) -> tuple[str, ...]:
    """The alert's petitions in its order, without those a person unlinked from its incident."""
    return tuple(p for p in petition_ids if p not in unlinked)
