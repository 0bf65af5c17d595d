"""Read-model handlers for the escalation ladder, 督办 and zero reports (filled in by issue 4)."""

from __future__ import annotations

from typing import Any

HANDLERS: dict[str, Any] = {}
