"""The department-code rule, in one place (depends on pydantic alone).

A department code (also a 12345 office's or a reporting unit's) is upper-case letters,
digits and dashes, starting with a letter or digit, at most 63 characters. That keeps
``dept.<code>.assignments`` a valid Kafka topic name that never collides with another after
Kafka's '.'/'_' metric-name folding, and a consumer group name ``dept-<code>``.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

__all__ = ["DEPARTMENT_CODE_PATTERN", "DEPARTMENT_CODE_RE", "DepartmentCode", "is_department_code"]

#: the rule as a regular expression (anchored); the published OpenAPI spec carries it as is
DEPARTMENT_CODE_PATTERN = r"^[A-Z0-9][A-Z0-9-]{0,62}$"
#: the same rule compiled, for code that checks a plain string
DEPARTMENT_CODE_RE = re.compile(DEPARTMENT_CODE_PATTERN)

#: a string that follows the rule: a pydantic field type, and a FastAPI parameter type
#: (``Annotated[DepartmentCode, Query()]``); it says nothing about whether the code exists
DepartmentCode = Annotated[str, StringConstraints(pattern=DEPARTMENT_CODE_PATTERN)]


def is_department_code(value: str) -> bool:
    """Whether `value` follows the department-code rule."""
    return DEPARTMENT_CODE_RE.match(value) is not None
