"""The garbage-collector settings the long-running processes apply once started."""

from __future__ import annotations

import gc

import pytest

from shared.runtime import GC_THRESHOLDS, tune_gc


@pytest.fixture
def restore_gc():
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_tune_gc_freezes_what_is_alive_and_raises_the_thresholds(restore_gc) -> None:
    kept = [{"n": i} for i in range(1000)]  # container objects alive at "start-up"
    gc.unfreeze()
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() >= len(kept)
    tracked = {id(o) for o in gc.get_objects()}
    assert not any(id(o) in tracked for o in kept)  # frozen objects are out of every generation


def test_cyclic_garbage_made_after_tuning_is_still_collected(restore_gc) -> None:
    tune_gc()

    class Node:
        other: Node

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2
