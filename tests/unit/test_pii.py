from __future__ import annotations

import pytest

from services.intake.pii import petitioner_key

KEY = b"k" * 32


def test_same_person_same_key_and_no_raw_data() -> None:
    a = petitioner_key(KEY, id_number="11010119900307123x", phone=None)
    b = petitioner_key(KEY, id_number="11010119900307123X", phone="13800000000")
    assert a == b and a is not None
    assert "110101" not in a


def test_phone_is_normalised_and_anonymous_is_none() -> None:
    assert petitioner_key(KEY, id_number=None, phone="138-0000-0000") == petitioner_key(
        KEY, id_number=None, phone="+86 13800000000"
    )
    assert petitioner_key(KEY, id_number=None, phone=None) is None


def test_other_key_other_pseudonym_and_missing_key_refused() -> None:
    assert petitioner_key(KEY, id_number=None, phone="13800000000") != petitioner_key(
        b"x" * 32, id_number=None, phone="13800000000"
    )
    with pytest.raises(ValueError):
        petitioner_key(b"", id_number=None, phone="13800000000")
