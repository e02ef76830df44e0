"""The stock: the oversell race on purpose, and the atomic alternative."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from promdemo_app.inventory import Inventory


def test_check_then_take_oversells_when_orders_overlap() -> None:
    inventory = Inventory(2)
    # Five orders all check before any of them takes: the Flask practice
    # demo's race (docs/lessons.md).
    passed = [inventory.in_stock() for _ in range(5)]
    for _ in passed:
        inventory.take()
    assert all(passed)
    assert inventory.level == -3


def test_reserve_never_goes_below_zero_under_contention() -> None:
    inventory = Inventory(50)
    barrier = threading.Barrier(20)

    def buy() -> int:
        barrier.wait(timeout=60)
        return sum(inventory.reserve() is not None for _ in range(10))

    with ThreadPoolExecutor(max_workers=20) as pool:
        sold = sum(pool.map(lambda _: buy(), range(20)))
    assert sold == 50
    assert inventory.level == 0


def test_release_gives_the_unit_back() -> None:
    inventory = Inventory(1)
    reservation = inventory.reserve()
    assert reservation is not None
    assert inventory.reserve() is None
    inventory.release(reservation)
    assert inventory.level == 1


def test_a_release_after_a_reset_does_not_inflate_the_fresh_stock() -> None:
    inventory = Inventory(3)
    reservation = inventory.reserve()
    assert reservation is not None
    assert inventory.reset() == (2, 3)
    inventory.release(reservation)
    assert inventory.level == 3


def test_on_change_sees_every_level_in_order() -> None:
    seen: list[int] = []
    inventory = Inventory(1, on_change=seen.append)
    inventory.take()
    inventory.take()
    reservation = inventory.reset()
    assert reservation == (-1, 1)
    r = inventory.reserve()
    assert r is not None
    inventory.release(r)
    assert seen == [0, -1, 1, 0, 1]


def test_on_change_keeps_the_gauge_in_step_under_contention() -> None:
    seen: list[int] = []
    inventory = Inventory(1000, on_change=seen.append)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: inventory.take(), range(500)))
    # Called under the lock: the last value written is the real level.
    assert seen[-1] == inventory.level == 500
    assert seen == list(range(999, 499, -1))


def test_negative_initial_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        Inventory(-1)
