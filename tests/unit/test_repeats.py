from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.router.domain.repeats import (
    Earlier,
    find_original,
    from_bigrams,
    pack,
    packed_signatures,
    signature,
    unpack,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
FIRST = signature("A3区某小区物业长期不维修电梯", "小区电梯坏了三个月，物业公司一直不维修，老人上下楼很困难")
FOLLOW_UP = signature("电梯还是没修", "上次反映的小区电梯坏了的问题，物业公司还是不维修，老人上下楼很困难，请尽快处理")
OTHER = signature("K1区学校收补课费", "某中学组织学生周末补课并收取费用，家长意见很大")


def test_a_reworded_follow_up_within_90_days_is_a_repeat_of_the_first() -> None:
    earlier = [Earlier("p1", T0, FIRST, "A3-HOUSING"), Earlier("p2", T0 + timedelta(days=3), OTHER, "K1-EDUCATION")]
    match = find_original(FOLLOW_UP, T0 + timedelta(days=30), earlier)
    assert match is not None and match.original.petition_id == "p1"
    assert match.similarity >= 0.4


def test_other_matters_and_old_ones_are_not_repeats() -> None:
    assert find_original(OTHER, T0 + timedelta(days=1), [Earlier("p1", T0, FIRST, "X")]) is None
    assert find_original(FOLLOW_UP, T0 + timedelta(days=91), [Earlier("p1", T0, FIRST, "X")]) is None
    assert find_original(FOLLOW_UP, T0 - timedelta(days=91), [Earlier("p1", T0, FIRST, "X")]) is None


def test_a_petition_received_before_the_original_but_routed_after_it_repeats_it() -> None:
    # petitions reach the router out of receipt order (partitions, instances, lag): the one
    # routed first stands, whichever was received first
    match = find_original(FOLLOW_UP, T0 - timedelta(days=1), [Earlier("p1", T0, FIRST, "X")])
    assert match is not None and match.original.petition_id == "p1"
    both = [Earlier("p2", T0 + timedelta(days=2), FIRST, "Y"), Earlier("p1", T0 - timedelta(days=2), FIRST, "X")]
    match = find_original(FOLLOW_UP, T0, both)
    assert match is not None and match.original.petition_id == "p1"  # the earliest received of them


def test_a_signature_survives_the_index_format_and_old_rows_still_compare() -> None:
    assert unpack(pack(FIRST)) == FIRST
    assert unpack(pack(frozenset())) == frozenset()
    text = "某小区物业长期不维修电梯"
    old_row = [text[i : i + 2] for i in range(len(text) - 1)]  # text[] rows before migration 003
    assert from_bigrams(old_row) <= FIRST
    match = find_original(FOLLOW_UP, T0 + timedelta(days=5), [Earlier("p1", T0, from_bigrams(old_row), "X")])
    assert match is not None


def test_a_damaged_packed_signature_is_refused() -> None:
    with pytest.raises(ValueError):
        unpack(b"\x00" * 7)


def test_batch_signatures_are_the_packed_signatures_of_each_text() -> None:
    items = [
        ("A3区某小区物业长期不维修电梯", "小区电梯坏了三个月，物业公司一直不维修，老人上下楼很困难"),
        ("", ""), ("一", ""), ("", "二"), ("电梯电梯", "电梯电梯电梯"), ("abc 123", "！？"),
        ("长文", "很长的内容" * 200),  # past the 400-character limit
        ("𠀀𠀁", "𠀂"),  # code points above the BMP
    ]
    assert packed_signatures(items) == [pack(signature(t, c)) for t, c in items]
    assert packed_signatures(items[:1]) == [pack(FIRST)]
    assert packed_signatures([]) == []


def test_packed_signatures_compare_as_their_sets_do() -> None:
    from services.router.domain.repeats import similarity

    sigs = [FIRST, FOLLOW_UP, OTHER, frozenset(), signature("电梯", "电梯电梯"), signature("𠀀𠀁", "𠀂")]
    for a in sigs:
        for b in sigs:
            assert similarity(pack(a), pack(b)) == similarity(a, b)
            assert similarity(pack(a), b) == similarity(a, pack(b)) == similarity(a, b)
    earlier = [Earlier("p1", T0, pack(FIRST), "A3-HOUSING"), Earlier("p2", T0 + timedelta(days=3), pack(OTHER), "X")]
    match = find_original(pack(FOLLOW_UP), T0 + timedelta(days=30), earlier)
    assert match is not None and match.original.petition_id == "p1"
    assert match.similarity == similarity(FOLLOW_UP, FIRST)
    with pytest.raises(ValueError):
        similarity(b"\x00" * 7, pack(FIRST))


def test_packed_similarity_on_real_messages() -> None:
    from bench.classify_bench import load_texts
    from services.router.domain.repeats import similarity

    texts = load_texts()[0][:300]
    sigs = [signature(t, c) for t, c in texts]
    for i in range(len(sigs) - 1):
        a, b = sigs[i], sigs[i + 1]
        assert similarity(pack(a), pack(b)) == similarity(a, b)
