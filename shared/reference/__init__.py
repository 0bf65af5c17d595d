"""Reference data every service reads the same way: places, units, calendar, obligations.

* :mod:`~shared.reference.places`: the gazetteer (省 → 市 → 区/县) and names in text;
* :mod:`~shared.reference.directory`: which departments, desks and offices exist;
* :mod:`~shared.reference.calendar` and :mod:`~shared.reference.calendar_source`: the
  statutory working-day calendar;
* :mod:`~shared.reference.obligations`: who owes a zero report for which period;
* :mod:`~shared.reference.files`: where the files are, and reading them.

The router routes, intake checks input and the escalation service runs its clocks on the
same parsed data, so a rule about units, places or periods is written once, here. Everything
but ``calendar_source`` and ``files`` (the adapters that read files) is pure.
"""
