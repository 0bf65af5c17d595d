"""SLA policies and timer planning (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.escalation.app import load_policies
from services.escalation.domain.policy import PolicyBook, plan_timers


def test_policy_selection_by_channel_and_priority() -> None:
    book = load_policies()
    assert book.select(channel="hotline", kind=None, priority="urgent").id == "hotline-urgent"
    assert book.select(channel="hotline", kind="claim", priority="normal").id == "hotline-ordinary"
    letter = book.select(channel="letter", kind="claim", priority="normal")
    assert letter.id == "xinfang-default"
    clocks = {c.name: c for c in letter.clocks}
    assert (clocks["resolution"].amount, clocks["resolution"].unit) == (60, "day")
    assert (clocks["acceptance"].amount, clocks["acceptance"].unit) == (15, "day")
    assert clocks["sign_for"].on_reassign == "restart" and clocks["resolution"].on_reassign == "keep"


@pytest.mark.parametrize("channel", ["hotline", "online", "letter", "visit", "app", "fax"])
@pytest.mark.parametrize("priority", ["normal", "high", "urgent"])
def test_an_accusation_gets_the_xinfang_clocks_whatever_channel_brought_it(channel: str, priority: str) -> None:
    book = load_policies()
    for category in (None, "城乡建设", "城乡建设/城市建设和市政管理/自来水供应"):
        chosen = book.select(channel=channel, kind="accusation", priority=priority, category=category)
        assert chosen.id == "xinfang-accusation"
        clocks = {c.name: (c.amount, c.unit) for c in chosen.clocks}
        assert clocks == {"sign_for": (1, "workday"), "acceptance": (15, "day"), "resolution": (60, "day")}
        assert {c.name: c for c in chosen.clocks}["resolution"].extension_max_days == 30
    # the other kinds keep the channel tiers
    assert book.select(channel="hotline", kind="suggestion", priority="normal").id == "hotline-ordinary"
    assert book.select(channel="hotline", kind="claim", priority="urgent").id == "hotline-urgent"
    assert book.select(channel="letter", kind="suggestion", priority="normal").id == "xinfang-default"


def test_malformed_books_are_rejected() -> None:
    good = {"policies": [{"id": "all", "match": {}, "clocks": {"x": {"amount": 1, "unit": "day"}}}]}
    assert PolicyBook.from_data(good).select(channel=None, kind=None, priority=None).id == "all"
    with pytest.raises(ValueError, match="unit"):
        PolicyBook.from_data({"policies": [{"id": "a", "match": {}, "clocks": {"x": {"amount": 1, "unit": "week"}}}]})
    with pytest.raises(ValueError, match="match everything"):
        PolicyBook.from_data({"policies": [{"id": "a", "match": {"channel": "x"}, "clocks": {}}]})
    with pytest.raises(ValueError, match="fractions"):
        PolicyBook.from_data({**good, "warning_fractions": [1.5]})


def test_timers_warn_at_fractions_then_breach() -> None:
    start = datetime(2026, 3, 2, tzinfo=UTC)
    due = start + timedelta(hours=10)
    timers = plan_timers(start, due, (0.5, 0.75, 0.9))
    assert [(t.kind, t.fire_at - start) for t in timers] == [
        ("warning", timedelta(hours=5)),
        ("warning", timedelta(hours=7, minutes=30)),
        ("warning", timedelta(hours=9)),
        ("breach", timedelta(hours=10)),
    ]
