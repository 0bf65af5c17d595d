"""The department-code rule lives in shared.codes; every check of a code follows it."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from shared import lag, topics
from shared.codes import DepartmentCode, is_department_code
from shared.events.escalation import ZeroReportSubmitted

GOOD = ["TRIAGE", "A", "3201-HOUSING", "X" * 63]
BAD = ["", "-A", "a", "A.B", "A_B", "X" * 64, "长"]


@pytest.mark.parametrize("code", GOOD)
def test_a_good_code_passes_every_check(code: str) -> None:
    assert is_department_code(code)
    assert TypeAdapter(DepartmentCode).validate_python(code) == code
    assert topics.department_topic(code) == f"dept.{code}.assignments"
    assert lag.department_group(f"dept.{code}.assignments") == f"dept-{code}"


@pytest.mark.parametrize("code", BAD)
def test_a_bad_code_fails_every_check(code: str) -> None:
    assert not is_department_code(code)
    with pytest.raises(ValidationError):
        TypeAdapter(DepartmentCode).validate_python(code)
    with pytest.raises(ValueError, match="invalid department code"):
        topics.department_topic(code)
    assert lag.department_group(f"dept.{code}.assignments") is None


def test_a_unit_event_refuses_a_bad_unit() -> None:
    with pytest.raises(ValidationError) as refused:
        ZeroReportSubmitted.model_validate({"unit": "bad unit"})
    assert {"loc": ("unit",), "type": "string_pattern_mismatch"} in [
        {"loc": e["loc"], "type": e["type"]} for e in refused.value.errors()
    ]
