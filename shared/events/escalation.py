"""Events of the escalation ladder, 督办 and zero reports (registered into shared.events).

Kept in a module of its own so the escalation contracts can grow without touching the
petition lifecycle ones.
"""

from __future__ import annotations

from shared.events import register

register()
