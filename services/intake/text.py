"""Strings the API stores: which characters they may hold, and how the spec says so.

PostgreSQL cannot store NUL in ``text`` or ``jsonb``, and UTF-8 has no lone surrogates; the
other characters refused here (C0 controls but tab, newline and carriage return; DEL; the
non-characters U+FDD0–U+FDEF and U+xFFFE / U+xFFFF of every plane) are never text a person
typed. Every stored string and every path parameter is checked against one pattern, the same
one the OpenAPI document publishes, so a client (or a fuzzer generating from the spec) and the
server agree exactly on what is accepted.

Whitespace is stripped *after* validation: the pattern (and the length limits) apply to the
raw value, as the spec states them. A field that must say something (a title) requires a
character that is not whitespace in the pattern itself, so a whitespace-only value is
refused by the spec and by the server alike. "Whitespace" is what ``str.strip()`` removes
(``str.isspace``), spelled out character by character so that every regex engine (Python's,
the fuzzer's, a client's) reads the class the same way.

Two kinds are refused but are not in the published pattern, which is written in the
ECMA-262 dialect JSON Schema prescribes (no flags, so no ``u`` mode): lone surrogates, which
are not Unicode scalar values (no JSON Schema string holds one, and validators reject a
surrogate range in a pattern), and the non-characters of planes 1–16 (U+1FFFE …
U+10FFFF), which that dialect can only spell as surrogate pairs, which validators reject too
(``\U0001FFFE`` is Python's spelling; in ECMA-262 it means the letters U, 0, 1, F and E, and
a fuzzer reading it so generated nothing valid). That is the one place where the spec admits
more than the server: a string holding such a character is refused with 422 naming the field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

__all__ = [
    "FORBIDDEN_CLASS",
    "NONBLANK_PATTERN",
    "TEXT_PATTERN",
    "Address",
    "CategoryName",
    "Content",
    "Incident",
    "Note",
    "PersonName",
    "Reason",
    "Title",
    "bad_character",
    "check_text",
]

#: refused and published: C0 controls except \t \n \r, DEL, U+FDD0–U+FDEF, U+FFFE, U+FFFF
FORBIDDEN_CLASS = r"\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F\uFDD0-\uFDEF\uFFFE\uFFFF"
#: refused, not published: U+xFFFE / U+xFFFF of planes 1-16, lone surrogates (see the module doc)
UNPUBLISHED_CLASS = "".join(rf"\U{plane:04X}FFFE\U{plane:04X}FFFF" for plane in range(0x1, 0x11)) + r"\uD800-\uDFFF"
#: what ``str.strip()`` removes and is not forbidden anyway (\v \f \x1c-\x1f are)
WHITESPACE_CLASS = r"\u0009\u000A\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"

TEXT_PATTERN = rf"^[^{FORBIDDEN_CLASS}]*$"
NONBLANK_PATTERN = rf"^[^{FORBIDDEN_CLASS}]*[^{FORBIDDEN_CLASS}{WHITESPACE_CLASS}][^{FORBIDDEN_CLASS}]*$"

_FORBIDDEN = re.compile(rf"[{FORBIDDEN_CLASS}{UNPUBLISHED_CLASS}]")
_NONBLANK = re.compile(rf"[^{WHITESPACE_CLASS}]")


def bad_character(value: str) -> str | None:
    """A description of the first refused character in `value`, or None."""
    m = _FORBIDDEN.search(value)
    if m is None:
        return None
    return f"U+{ord(m.group()):04X} at position {m.start()}"


def check_text(value: str, *, nonblank: bool = False) -> str:
    """Validate a raw string (the published pattern plus no lone surrogates); strip it."""
    bad = bad_character(value)
    if bad is not None:
        raise PydanticCustomError(
            "invalid_character", "text must not contain control or non-characters (found {found})", {"found": bad}
        )
    if nonblank and _NONBLANK.search(value) is None:
        raise PydanticCustomError("blank", "text must contain something other than whitespace")
    return value.strip()


_CHECK_TEXT = AfterValidator(check_text)
_CHECK_NONBLANK = AfterValidator(lambda v: check_text(v, nonblank=True))


def _text(max_length: int) -> Any:
    return Field(max_length=max_length, json_schema_extra={"pattern": TEXT_PATTERN})


def _nonblank(max_length: int) -> Any:
    return Field(min_length=1, max_length=max_length, json_schema_extra={"pattern": NONBLANK_PATTERN})


# The stored strings, each with its limit (raw length); stripped after validation.
#: a petition's title
Title = Annotated[str, _nonblank(200), _CHECK_NONBLANK]
#: a petition's text
Content = Annotated[str, _nonblank(20000), _CHECK_NONBLANK]
#: a petitioner's name
PersonName = Annotated[str, _nonblank(50), _CHECK_NONBLANK]
#: an address given with a petition
Address = Annotated[str, _text(300), _CHECK_TEXT]
#: an optional note with an action
Note = Annotated[str, _text(2000), _CHECK_TEXT]
#: a reason, where an action needs one (return, pause, extension)
Reason = Annotated[str, _nonblank(2000), _CHECK_NONBLANK]
#: a category name (the triage desk's correction)
CategoryName = Annotated[str, _nonblank(20), _CHECK_NONBLANK]
#: one incident of a zero report (50 x 400 characters fit the body limit even \u-escaped)
Incident = Annotated[str, _nonblank(400), _CHECK_NONBLANK]

#: an e-mail address, as far as a pattern can tell (the mail system decides the rest): an ASCII
#: local part and two to four domain labels, at most 64 + 1 + 4 x 45 + 3 = 248 characters (the
#: pattern bounds the length, so no separate limit makes a schema-driven generator reject most
#: of what it draws)
EMAIL_PATTERN = "^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,45}(\\.[A-Za-z0-9-]{1,45}){1,3}$"
