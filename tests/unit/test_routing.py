"""Routing domain: jurisdiction, routing table, returns, keyword classifier (no Kafka, no DB)."""

from __future__ import annotations

import copy

import pytest
import yaml

from services.router.config import DATA, load_keyword_classifier, load_routing_table
from services.router.domain.routing import RoutingTable
from shared.reference.places import Gazetteer


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    return load_routing_table()


def test_gazetteer_hierarchy_and_codes(table: RoutingTable) -> None:
    g = table.gazetteer
    a3 = g.by_code("430103")
    assert a3 is not None and a3.name == "A3区" and a3.level == "district"
    assert [a.name for a in g.chain(a3)] == ["A3区", "A市", "省"]
    # a street-level code falls back to its district, an unknown district to its city
    assert g.by_code("430103004").name == "A3区"  # type: ignore[union-attr]  # the lookup is known to succeed here
    assert g.by_code("430199").name == "A市"  # type: ignore[union-attr]  # the lookup is known to succeed here
    assert g.by_code("990000") is None


def test_extraction_prefers_a_district_over_a_city(table: RoutingTable) -> None:
    g = table.gazetteer
    assert g.extract("我住在K市K8县某乡").name == "K8县"  # type: ignore[union-attr]  # the lookup is known to succeed here
    assert g.extract("A市有关部门").name == "A市"  # type: ignore[union-attr]  # the lookup is known to succeed here
    assert g.extract("没有地名") is None
    assert g.extract("Z9区") is None


def test_structured_code_wins_over_text(table: RoutingTable) -> None:
    area, source = table.gazetteer.resolve("430205", "A3区的问题")
    assert (area.name, source) == ("B5县", "code")  # type: ignore[union-attr]  # the lookup is known to succeed here
    area, source = table.gazetteer.resolve("999999", "A3区的问题")
    assert (area.name, source) == ("A3区", "text")  # type: ignore[union-attr]  # the lookup is known to succeed here
    assert table.gazetteer.resolve(None, "无") == (None, "none")


def test_category_goes_to_the_bureau_of_the_lowest_level(table: RoutingTable) -> None:
    area = table.gazetteer.extract("G5县")
    decision = table.decide("环境保护", area)
    assert decision.department.code == "G5-ENVIRONMENT"
    assert decision.rule == "environment@district"
    city = table.decide("环境保护", table.gazetteer.extract("G市"))
    assert (city.department.code, city.rule) == ("G-ENVIRONMENT", "environment@city")


def test_no_category_falls_back_to_the_lowest_territorial_government(table: RoutingTable) -> None:
    area = table.gazetteer.extract("L6县")
    decision = table.decide(None, area)
    assert decision.department.code == "L6-GOV"
    assert decision.rule == "fallback:territorial@district"


def test_no_jurisdiction_goes_to_the_provincial_department(table: RoutingTable) -> None:
    decision = table.decide("交通运输", None)
    assert decision.department.code == "P-TRANSPORT"


def test_returns_exclude_every_returner_and_triage_after_two(table: RoutingTable) -> None:
    area = table.gazetteer.extract("A3区")
    first = table.decide("城乡建设", area)
    assert first.department.code == "A3-HOUSING"
    second = table.decide_after_return("城乡建设", area, [first.department.code])
    assert second.department.code == "A-HOUSING"
    assert second.rule == "reassign:construction@city"
    third = table.decide_after_return("城乡建设", area, [first.department.code, second.department.code])
    assert third.department.code == "TRIAGE"


def test_inconsistent_table_is_rejected() -> None:
    data = yaml.safe_load((DATA / "routing.yaml").read_text(encoding="utf-8"))
    gazetteer = Gazetteer.from_data(yaml.safe_load((DATA / "gazetteer.yaml").read_text(encoding="utf-8")))
    broken = copy.deepcopy(data)
    broken["rules"].append({"id": "x", "category": "城乡建设", "department_type": "NOPE"})
    with pytest.raises(ValueError, match="NOPE"):
        RoutingTable.from_data(broken, gazetteer, "v")
    dup = copy.deepcopy(data)
    dup["rules"].append(dict(dup["rules"][0]))
    with pytest.raises(ValueError, match="duplicate"):
        RoutingTable.from_data(dup, gazetteer, "v")


def test_every_department_code_is_a_valid_topic_name(table: RoutingTable) -> None:
    from shared.topics import department_topic

    for dept in table.departments():
        department_topic(dept.code)


def test_keyword_classifier_explains_obvious_cases() -> None:
    clf = load_keyword_classifier()
    got = clf.predict([
        ("公司拖欠工资三个月", "老板一直拖欠我们农民工工资，社保也没交"),
        ("小区旁化工厂排放废气", "每天晚上异味很重，污染严重"),
        ("你好", "谢谢"),
    ])
    assert [p.category for p in got] == ["劳动和社会保障", "环境保护", None]
    assert 0 < got[0].confidence <= 1 and got[2].confidence == 0


def test_second_level_rules_narrow_by_words_and_prefer_wins(table: RoutingTable) -> None:
    area = table.gazetteer.extract("A3区")
    assert table.decide("城乡建设", area, text="小区门口有人违章搭建").department.code == "A3-URBAN"
    assert table.decide("城乡建设", area, text="宅基地纠纷").department.code == "A3-NATRES"
    assert table.decide("城乡建设", area, text="电梯坏了").department.code == "A3-HOUSING"
    assert table.decide("商贸旅游", area, text="超市卖过期食品").department.code == "A3-MARKET"
    assert table.decide("商贸旅游", area, text="景区门票太贵").department.code == "A3-COMMERCE"


def test_accusations_never_reach_the_accused_unit(table: RoutingTable) -> None:
    area = table.gazetteer.extract("A3区")
    accused = table.accused_units("举报A3区住建局工作人员收受开发商好处", area)
    assert accused == ("A3-HOUSING",)
    decision = table.decide("城乡建设", area, text="电梯", accused=accused)
    # not the accused bureau, and not its own (district) government either: the city's
    assert decision.department.code == "A-GOV"
    assert decision.rule == "accusation:above:A3-HOUSING"
    # another district bureau of the same government would be shielded too
    urban = table.decide("城乡建设", area, text="违章搭建", accused=accused)
    assert urban.department.code == "A-GOV" and urban.rule == "accusation:above:A3-URBAN"
    # a bare unit name means the unit of the petition's own place
    assert table.accused_units("举报住建局不作为", table.gazetteer.extract("K8县")) == ("K8-HOUSING",)
    # the district government accused: the city government takes it
    both = table.accused_units("举报区政府和住建局", area)
    assert set(both) == {"A3-GOV", "A3-HOUSING"}
    assert table.decide("城乡建设", area, accused=both).department.code == "A-GOV"
    # a bare "政府" names no unit
    assert table.accused_units("请政府帮忙处理", area) == ()


def test_superior_units(table: RoutingTable) -> None:
    dept = table.department
    assert table.superior(dept("A3-HOUSING")).code == "A3-GOV"  # type: ignore[arg-type,union-attr]  # the lookup is known to succeed here
    assert table.superior(dept("A3-GOV")).code == "A-GOV"  # type: ignore[arg-type,union-attr]  # the lookup is known to succeed here
    assert table.superior(dept("A-GOV")).code == "P-GOV"  # type: ignore[arg-type,union-attr]  # the lookup is known to succeed here
    assert table.superior(dept("P-GOV")) is None  # type: ignore[arg-type]  # the lookup is known to succeed here
