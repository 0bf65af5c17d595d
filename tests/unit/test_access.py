"""Who sees a petition, who acts, who reveals contacts: the access rules, pure."""

from __future__ import annotations

import pytest

from services.intake.domain.access import (
    AreaScope,
    PetitionFacts,
    can_see,
    check_acting_unit,
    check_action,
    may_reveal_contacts,
)
from services.intake.domain.masking import mask_personal_numbers
from shared.errors import Forbidden
from shared.identity import Principal, Role

A3 = AreaScope("A3", frozenset({"430103"}), frozenset({"A3"}))
A = AreaScope("A", frozenset({"430100", "430103", "430105"}), frozenset({"A", "A3", "A5"}))
B = AreaScope("B", frozenset({"430200", "430201"}), frozenset({"B", "B1"}))
ROOT = AreaScope("P", frozenset({"430000", "430100", "430103"}), frozenset({"P", "A", "A3"}), is_root=True)

PETITION = PetitionFacts("P-1", holder="A3-URBAN", assigned=frozenset({"A3-HOUSING", "A3-URBAN"}),
                         jurisdiction="430103", submitted_by="op-1")
#: an accusation against A3-HOUSING, held by the city bureau
ACCUSATION = PetitionFacts("P-2", holder="A-HOUSING", assigned=frozenset({"A-HOUSING"}), jurisdiction="430103",
                           accused=("A3-HOUSING",), submitted_by="op-1")


def clerk(*departments: str) -> Principal:
    return Principal("clerk-1", Role.DEPARTMENT, frozenset(departments))


def supervisor(area: str) -> Principal:
    return Principal("sup-1", Role.SUPERVISOR, area=area)


@pytest.mark.parametrize(
    ("principal", "scope", "sees"),
    [
        (Principal("op-9", Role.OPERATOR), None, True),
        (clerk("A3-URBAN"), None, True),  # holds it
        (clerk("A3-HOUSING"), None, True),  # held it before (returned it)
        (clerk("A5-URBAN"), None, False),
        (Principal("desk-1", Role.TRIAGE, frozenset({"TRIAGE"})), None, False),
        (supervisor("430103"), A3, True),
        (supervisor("430100"), A, True),
        (supervisor("430200"), B, False),
        (Principal("aud-1", Role.AUDITOR), None, False),
        (Principal("adm-1", Role.ADMIN), None, False),
    ],
)
def test_who_sees_a_petition(principal: Principal, scope: AreaScope | None, sees: bool) -> None:
    assert can_see(principal, PETITION, scope) is sees


@pytest.mark.parametrize(
    ("principal", "scope", "sees"),
    [
        (clerk("A3-HOUSING"), None, False),  # the accused unit
        (clerk("A3-GOV"), None, False),  # its own government
        (clerk("A-HOUSING", "A3-URBAN"), None, False),  # whatever else the token says
        (clerk("A-HOUSING"), None, True),  # the city bureau handling it
        (supervisor("430103"), A3, False),  # the accused government's supervisor
        (supervisor("430100"), A, True),  # the city's
        (Principal("op-9", Role.OPERATOR), None, True),
    ],
)
def test_an_accusation_never_reaches_the_accused_government(
    principal: Principal, scope: AreaScope | None, sees: bool
) -> None:
    assert can_see(principal, ACCUSATION, scope) is sees


def test_a_petition_without_jurisdiction_is_the_provinces() -> None:
    unknown = PetitionFacts("P-3", holder="P-GOV", assigned=frozenset({"P-GOV"}), jurisdiction=None)
    assert can_see(supervisor("430000"), unknown, ROOT)
    assert not can_see(supervisor("430100"), unknown, A)


def test_roles_take_only_their_actions() -> None:
    check_action(clerk("A3-URBAN"), "accept")
    check_action(Principal("desk-1", Role.TRIAGE, frozenset({"TRIAGE"})), "assign")
    check_action(supervisor("430103"), "approve_extension")
    for principal, action in [(clerk("A3-URBAN"), "assign"), (clerk("A3-URBAN"), "approve_extension"),
                              (supervisor("430103"), "accept"), (Principal("op-1", Role.OPERATOR), "resolve"),
                              (Principal("adm-1", Role.ADMIN), "accept")]:
        with pytest.raises(Forbidden):
            check_action(principal, action)


def test_a_principal_acts_only_for_its_own_units() -> None:
    check_acting_unit(clerk("A3-URBAN", "A3-HOUSING"), "A3-HOUSING")
    check_acting_unit(supervisor("430103"), "A3-GOV", A3)
    with pytest.raises(Forbidden):
        check_acting_unit(clerk("A3-URBAN"), "A3-HOUSING")
    with pytest.raises(Forbidden):
        check_acting_unit(supervisor("430103"), "A-GOV", A3)  # above its area


def test_contacts_are_for_the_holder_the_operator_who_took_it_and_supervisors_in_scope() -> None:
    assert may_reveal_contacts(clerk("A3-URBAN"), PETITION)
    assert not may_reveal_contacts(clerk("A3-HOUSING"), PETITION)  # no longer holds it
    assert may_reveal_contacts(Principal("op-1", Role.OPERATOR), PETITION)
    assert not may_reveal_contacts(Principal("op-2", Role.OPERATOR), PETITION)
    assert may_reveal_contacts(supervisor("430103"), PETITION, A3)
    assert not may_reveal_contacts(supervisor("430200"), PETITION, B)
    assert not may_reveal_contacts(Principal("aud-1", Role.AUDITOR), PETITION)
    assert not may_reveal_contacts(supervisor("430103"), ACCUSATION, A3)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("我的电话13800001234，身份证430103199001011234", "我的电话138****1234，身份证430103********1234"),
        ("手机 138 0000 1234 或 138-0000-1234", "手机 138 **** 1234 或 138-****-1234"),
        ("１３８００００１２３４", "１３８****１２３４"),
        ("身份证号43010319900101123X", "身份证号430103********123X"),
        ("旧身份证430103900101123", "旧身份证430103*****1123"),
        ("座机0731-84561234，北京010-12345678", "座机0731-******34，北京010-******78"),
        ("订单号2023112213800001234567不是电话", "订单号2023112213800001234567不是电话"),
        ("2号楼3单元1201室，面积89.5平方米", "2号楼3单元1201室，面积89.5平方米"),
        ("", ""),
    ],
)
def test_personal_numbers_in_free_text_are_masked(text: str, masked: str) -> None:
    assert mask_personal_numbers(text) == masked


def test_the_province_oversees_every_unit_those_of_no_gazetteer_area_too() -> None:
    check_acting_unit(supervisor("430000"), "Z1-GOV", ROOT)
    with pytest.raises(Forbidden):
        check_acting_unit(supervisor("430100"), "Z1-GOV", A)
