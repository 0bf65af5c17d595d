"""``POST /v1/suggestions`` on the router's port: where a petition being typed in would go.

The operator desk asks while a call is taken: the router answers with its own classifier,
routing table and repeat check (:func:`services.router.handlers.suggest`), writing nothing.
The body is a petition as the router would receive it (``title``, ``content``, optional
``location``, ``kind``, ``channel``, ``persons``) plus, for a known caller, its
``petitioner_key`` (the pseudonym intake derives; never a phone number).

What must hold: only an operator's or the triage desk's token gets an answer (401 without a
valid token, 403 for another role); a body the router could never receive is a 422 naming
the field, never a 500; the answer is JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

from faust.web import Request, Response, View

from services.router.classify import petition_of
from shared.errors import PetitionError, Unauthenticated, Unavailable
from shared.identity import Role

__all__ = ["PATH", "add_suggestion_page"]

PATH = "/v1/suggestions"
MAX_BODY = 64 * 1024
_KEY = re.compile(r"[0-9a-f]{16,128}")
_ALLOWED = frozenset({Role.OPERATOR, Role.TRIAGE})


def _error(view: View, status: int, code: str, message: str, **extra: Any) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return view.json({"error": code, "message": message, **extra}, status=status, headers=headers)


def add_suggestion_page(app: Any, router: Any, verifier: Any) -> None:
    """Register the page on the router's faust web app (`router`: its service object)."""

    class Suggestions(View):
        async def post(self, request: Request) -> Response:
            scheme, _, token = (request.headers.get("Authorization") or "").strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return _error(self, 401, "missing_token", "this operation needs an Authorization: Bearer token")
            try:
                principal = await verifier.verify(token.strip())
            except Unauthenticated as refused:
                return _error(self, 401, refused.code, refused.message)
            if principal.role not in _ALLOWED:
                return _error(self, 403, "role_cannot_read", f"a {principal.role.value} principal gets no suggestions")
            raw = await request.read()
            if len(raw) > MAX_BODY:
                return _error(self, 413, "too_large", f"a body of at most {MAX_BODY} bytes")
            try:
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
                for name in ("title", "content"):
                    if not isinstance(body.get(name, ""), str):
                        raise ValueError(f"{name}: a string")
                key = body.get("petitioner_key")
                if key is not None and (not isinstance(key, str) or _KEY.fullmatch(key) is None):
                    raise ValueError("petitioner_key: a pseudonym of hex digits")
                event = petition_of(body).model_copy(update={"petitioner_key": key})
            except ValueError as invalid:  # json's and pydantic's errors are ValueErrors
                return _error(self, 422, "bad_input", str(invalid))
            try:
                found = await router.suggest(event)
            except Unavailable as busy:
                return _error(self, 503, busy.code, busy.message)
            except PetitionError as refused:
                return _error(self, 422, refused.code, refused.message)
            return self.json({
                "category": found.category,
                "confidence": None if found.confidence is None else round(found.confidence, 4),
                "department": {"code": found.department_code, "name": found.department_name},
                "rule": found.rule,
                "triage": found.triage,
                "repeat_of": found.repeat_of,
                "earlier": list(found.earlier),
                "candidates": [{"category": c, "confidence": p, "department": {"code": d, "name": n}, "rule": r}
                               for c, p, d, n, r in found.candidates],
            })

    app.page(PATH)(Suggestions)
