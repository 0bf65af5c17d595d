"""Jurisdiction (属地管理): the gazetteer of the demo province and extraction from text.

Pure: built from plain data (the parsed gazetteer file), no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PROVINCE, CITY, DISTRICT = "province", "city", "district"

_DISTRICT_TOKEN = re.compile(r"([A-M])(\d{1,2})[区县市]")
_CITY_TOKEN = re.compile(r"([A-M])市")


@dataclass(frozen=True, slots=True)
class Area:
    """One administrative area; `token` is the short name used in department codes."""

    code: str
    name: str
    level: str
    token: str
    parent: str | None


class Gazetteer:
    """The 省 → 市 → 区/县 hierarchy with lookups by code and by name token."""

    def __init__(self, areas: list[Area]) -> None:
        self._by_code = {a.code: a for a in areas}
        self._by_token = {a.token: a for a in areas}
        if len(self._by_code) != len(areas):
            raise ValueError("duplicate area code in gazetteer")

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Gazetteer:
        """Build from the parsed ``gazetteer.yaml``."""
        prov = data["province"]
        areas = [Area(str(prov["code"]), prov["name"], PROVINCE, "P", None)]
        for city in data["cities"]:
            code = str(city["code"])
            letter = city["name"][0]
            areas.append(Area(code, city["name"], CITY, letter, areas[0].code))
            for name in city.get("districts", []):
                m = _DISTRICT_TOKEN.fullmatch(name)
                if not m or m.group(1) != letter:
                    raise ValueError(f"district {name!r} does not belong to {city['name']}")
                number = int(m.group(2))
                areas.append(Area(f"{code[:4]}{number:02d}", name, DISTRICT, f"{letter}{number}", code))
        return cls(areas)

    @property
    def root(self) -> Area:
        return self._by_token["P"]

    def areas(self) -> list[Area]:
        return list(self._by_code.values())

    def by_code(self, code: str) -> Area | None:
        """The area of an administrative code; longer codes (streets) fall back to their district."""
        code = code.strip()
        for candidate in (code, code[:6], code[:4] + "00"):
            area = self._by_code.get(candidate)
            if area is not None:
                return area
        return None

    def chain(self, area: Area) -> list[Area]:
        """`area` and its ancestors, lowest level first."""
        out = [area]
        while out[-1].parent is not None:
            out.append(self._by_code[out[-1].parent])
        return out

    def extract(self, text: str) -> Area | None:
        """The most specific known place named in `text` (first district, else first city)."""
        for m in _DISTRICT_TOKEN.finditer(text):
            area = self._by_token.get(f"{m.group(1)}{int(m.group(2))}")
            if area is not None:
                return area
        for m in _CITY_TOKEN.finditer(text):
            area = self._by_token.get(m.group(1))
            if area is not None:
                return area
        return None

    def resolve(self, admin_code: str | None, text: str) -> tuple[Area | None, str]:
        """Jurisdiction of a petition and where it came from: a structured code wins over text."""
        if admin_code:
            area = self.by_code(admin_code)
            if area is not None:
                return area, "code"
        area = self.extract(text)
        if area is not None:
            return area, "text"
        return None, "none"
