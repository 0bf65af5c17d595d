"""Personal numbers typed into free text, masked before the text leaves intake.

Petitioners write their phone number and ID number into the petition itself ("我的电话
13800001234，身份证430103199001011234"); operators copy them into notes. Those numbers are
personal information: only the audited contact reveal may show them. Everything else that
leaves intake (the events on Kafka, the answers of the API, the timeline) carries the text
with each number masked the way Chinese public services publish them (脱敏): a mobile number
keeps its first 3 and last 4 digits (``138****1234``), an ID number its first 6 and last 4
(``430103********1234``), a landline its area code and last 2 (``0731-*****34``, ``010-******34``).

What counts as a number: ASCII or full-width digits, with spaces or hyphens between groups
(``138 0000 1234``, ``１３８００００１２３４``), not part of a longer run of digits (an order
number that merely contains eleven digits is left alone). Pure: the standard library only.
"""

from __future__ import annotations

import re

__all__ = ["mask_personal_numbers"]

_D = "[0-9０-９]"
_SEP = "[ \\-－]?"
# 18-digit ID (last may be X), 15-digit old ID, mobile, landline with area code; longest first
_ID18 = rf"{_D}{{6}}(?:{_SEP}{_D}{{4}}){{2}}{_SEP}{_D}{{3}}[0-9０-９XxＸｘ]"
_ID15 = rf"{_D}{{6}}{_SEP}{_D}{{6}}{_SEP}{_D}{{3}}"
_MOBILE = rf"[1１]{_SEP}[3-9３-９]{_D}{_SEP}{_D}{{4}}{_SEP}{_D}{{4}}"
_LANDLINE = rf"[0０]{_D}{{2,3}}{_SEP}{_D}{{7,8}}"
_NUMBER = re.compile(
    rf"(?<![0-9０-９])(?:(?P<id18>{_ID18})|(?P<id15>{_ID15})|(?P<mobile>{_MOBILE})|(?P<landline>{_LANDLINE}))"
    rf"(?![0-9０-９XxＸｘ])"
)
_DIGIT = re.compile("[0-9０-９XxＸｘ]")


def _mask(text: str, keep_first: int, keep_last: int) -> str:
    """Replace the digits of `text` but its first and last few with ``*``, separators kept."""
    positions = [m.start() for m in _DIGIT.finditer(text)]
    hidden = set(positions[keep_first: len(positions) - keep_last])
    return "".join("*" if i in hidden else ch for i, ch in enumerate(text))


def mask_personal_numbers(text: str) -> str:
    """`text` with every phone number and ID number masked (see the module doc)."""
    if not text:
        return text

    def masked(m: re.Match[str]) -> str:
        number = m.group(0)
        if m.group("id18") or m.group("id15"):
            return _mask(number, 6, 4)
        if m.group("mobile"):
            return _mask(number, 3, 4)
        area = 3 if number[1] in "12１２" else 4  # 010 and 02x have three digits, the rest four
        return _mask(number, area, 2)

    return _NUMBER.sub(masked, text)
