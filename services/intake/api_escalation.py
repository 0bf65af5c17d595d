"""HTTP routes for 督办 (supervision orders) and zero reports (filled in by issue 4)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter


def build_router(state: Any) -> APIRouter:
    return APIRouter()
