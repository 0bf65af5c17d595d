"""Pseudonymising petitioners: the only identity that leaves intake is a keyed HMAC."""

from __future__ import annotations

import hashlib
import hmac
import re

_NON_DIGIT = re.compile(r"\D")


def petitioner_key(key: bytes, *, id_number: str | None, phone: str | None, email: str | None = None) -> str | None:
    """A stable pseudonym for repeat detection, or None for an anonymous petition.

    The ID number is preferred (one per person); otherwise the phone's digits; otherwise the
    e-mail address (case-folded: a mailbox writes the same person's address in many cases).
    Without the key the pseudonym cannot be linked back to the person.
    """
    if id_number:
        basis = "id:" + id_number.strip().upper()
    elif phone and _NON_DIGIT.sub("", phone):
        basis = "phone:" + _NON_DIGIT.sub("", phone)[-11:]
    elif email and email.strip():
        basis = "email:" + email.strip().casefold()
    else:
        return None
    if not key:
        raise ValueError("PETITION_HMAC_KEY is not set")
    return hmac.new(key, basis.encode(), hashlib.sha256).hexdigest()[:32]
