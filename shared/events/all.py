"""Import every event module so :func:`shared.events.parse_event` knows all event types."""

from shared import events as _core  # noqa: F401
from shared.events import escalation as _escalation  # noqa: F401
