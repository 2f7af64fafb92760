"""``core.forked.forked_map``: the map of a closure over forked workers, in order."""

from __future__ import annotations

import os

import pytest

from gradatlas.core.forked import forked_map

pytestmark = pytest.mark.unit


def test_a_closure_is_mapped_in_order_over_other_processes():
    offset = 10  # a closure over local state: nothing but the results is pickled

    def shifted(item: int) -> tuple[int, int]:
        return item + offset, os.getpid()

    found = forked_map(shifted, range(8), processes=2)
    assert [value for value, _ in found] == list(range(10, 18))
    assert os.getpid() not in {pid for _, pid in found}


def test_one_process_maps_here():
    assert forked_map(lambda item: (item * 2, os.getpid()), [1, 2], processes=1) == [(2, os.getpid()), (4, os.getpid())]


def test_a_failing_item_fails_the_map():
    def fails(item: int) -> int:
        if item == 3:
            raise ValueError("item 3")
        return item

    with pytest.raises(ValueError, match="item 3"):
        forked_map(fails, range(5), processes=2)
    # The map is usable again after a failure.
    assert forked_map(lambda item: item, range(3), processes=2) == [0, 1, 2]
