"""The per-object Event rate limit (core/event_limit.py), with an injected clock."""

from __future__ import annotations

import pytest

from promdemo_operator.core.event_limit import EventLimiter, with_suppressed


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_posts_the_burst_then_one_per_refill() -> None:
    clock = Clock()
    limiter = EventLimiter(burst=10, refill_seconds=30, clock=clock)
    key = ("uid-1", "InventoryReset")
    posted = 0
    # 500 resets of a flapping pod, 10 a second for 50 s.
    for _ in range(500):
        if limiter.admit(key).post:
            posted += 1
        clock.now += 0.1
    assert posted == 10 + 1  # the burst, and one token refilled within the 50 s


def test_the_next_posted_event_says_how_many_were_left_out() -> None:
    clock = Clock()
    limiter = EventLimiter(burst=2, refill_seconds=30, clock=clock)
    key = ("uid-1", "ReconcileFailed")
    assert [limiter.admit(key).post for _ in range(5)] == [True, True, False, False, False]
    clock.now += 30
    admitted = limiter.admit(key)
    assert admitted.post
    assert admitted.suppressed == 3
    assert limiter.admit(key).post is False
    clock.now += 30
    assert limiter.admit(key).suppressed == 1  # counted since the last post, not in total


def test_keys_are_separate_per_object_and_reason() -> None:
    limiter = EventLimiter(burst=1, refill_seconds=60, clock=Clock())
    assert limiter.admit(("a", "InventoryReset")).post
    assert not limiter.admit(("a", "InventoryReset")).post
    assert limiter.admit(("a", "ReconcileFailed")).post
    assert limiter.admit(("b", "InventoryReset")).post


def test_a_quiet_key_refills_to_the_burst_only() -> None:
    clock = Clock()
    limiter = EventLimiter(burst=3, refill_seconds=10, clock=clock)
    limiter.admit("k")
    clock.now += 10_000
    assert [limiter.admit("k").post for _ in range(5)] == [True, True, True, False, False]


def test_the_keys_remembered_are_bounded() -> None:
    limiter = EventLimiter(burst=1, refill_seconds=60, max_keys=100, clock=Clock())
    for i in range(10_000):
        limiter.admit(("pod", i))
    assert len(limiter) == 100
    # The least recently used key was forgotten: it starts with a full bucket again.
    assert limiter.admit(("pod", 0)).post


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="burst and max_keys"):
        EventLimiter(burst=0)
    with pytest.raises(ValueError, match="burst and max_keys"):
        EventLimiter(refill_seconds=0)


def test_the_message_names_the_events_left_out() -> None:
    assert with_suppressed("Reset pod p", 0) == "Reset pod p"
    assert with_suppressed("Reset pod p", 1).endswith("(1 similar Event not posted before "
                                                      "this one: rate limit)")  # fmt: skip
    assert "(12 similar Events not posted" in with_suppressed("Reset pod p", 12)
