"""The heal loop's state (heal/status.py): restore after a restart, resets, the status it writes."""

from __future__ import annotations

from typing import Any

from promdemo_operator.core.heal_policy import HealPolicy, PolicyConfig
from promdemo_operator.core.timefmt import parse_rfc3339, rfc3339
from promdemo_operator.heal.engine import ResetDone
from promdemo_operator.heal.status import (
    STATUS_WRITE_PERIOD_SECONDS,
    HealState,
    int_if_whole,
    reset_message,
)
from tests.support.merge_patch import merge_patch

T0 = 1_800_000_000.0


def state(cooldown: float = 600.0) -> HealState:
    return HealState(HealPolicy(PolicyConfig(cooldown=cooldown)))


def reset(pod: str, at: float, before: float = -3.0, after: float | None = 100.0) -> ResetDone:
    return ResetDone(pod, before, after, at, 0.8, "direct")


def test_int_if_whole() -> None:
    assert int_if_whole(5.0) == 5
    assert isinstance(int_if_whole(5.0), int)
    assert int_if_whole(-2.5) == -2.5
    assert int_if_whole(None) is None


def test_a_reset_is_counted_and_told() -> None:
    s = state()
    message = s.record(reset("shop-a", T0))
    assert (
        message
        == "Reset pod shop-a: inventory -3 -> 100 (direct, 0.8s after it was first seen below)"
    )
    assert s.heal_count == 1
    assert s.last_heal == {"pod": "shop-a", "before": -3, "after": 100,
                           "time": rfc3339(T0, milliseconds=True)}  # fmt: skip
    unconfirmed = ResetDone("shop-b", -1.0, None, T0, None, "alertmanager")
    assert (
        reset_message(unconfirmed) == "Reset pod shop-b: inventory -1 -> unconfirmed (alertmanager)"
    )


def test_status_is_written_when_it_changes_and_only_then() -> None:
    s = state()
    status: dict[str, Any] = {}
    patch = s.status_patch({"a": 5.0, "b": 3.0}, T0)
    assert patch == {"inventory": {"a": 5, "b": 3}, "lowestInventory": 3, "healCount": 0}
    s.written_ok()
    status = merge_patch(status, patch)
    assert s.status_patch({"a": 5.0, "b": 3.0}, T0 + 15) is None, "nothing changed"
    # Pod b left: set to null in the patch (a merge patch keeps keys it does not mention).
    patch = s.status_patch({"a": 4.0}, T0 + 20)
    assert patch["inventory"] == {"b": None, "a": 4}
    s.written_ok()
    status = merge_patch(status, patch)
    assert status == {"inventory": {"a": 4}, "lowestInventory": 4, "healCount": 0}
    # No pods at all: lowestInventory goes away.
    patch = s.status_patch({}, T0 + 30)
    s.written_ok()
    status = merge_patch(status, patch)
    assert status == {"inventory": {}, "healCount": 0}


def test_a_patch_not_accepted_is_sent_again() -> None:
    s = state()
    assert s.status_patch({"a": 1.0}, T0) is not None
    # (the API call failed: no written_ok) sent again, once the period is over
    assert s.status_patch({"a": 1.0}, T0 + 5) is None
    assert s.status_patch({"a": 1.0}, T0 + STATUS_WRITE_PERIOD_SECONDS) is not None


def test_writes_under_traffic_are_coalesced_to_one_per_period() -> None:
    """Values changing at every check (orders): one patch per period, carrying the
    latest values; a change right after a quiet spell is written at once."""
    s = state()
    sent = []
    for i in range(61):  # a minute of checks every second, a new value each time
        patch = s.status_patch({"a": float(100 - i)}, T0 + i)
        if patch is not None:
            s.written_ok()
            sent.append((i, patch["inventory"]["a"]))
    assert sent == [(i, 100 - i) for i in range(0, 61, 10)]
    # Quiet: nothing written however long; the next change goes out at once.
    assert all(s.status_patch({"a": 40.0}, T0 + 60 + i) is None for i in range(1, 100))
    assert s.status_patch({"a": 39.0}, T0 + 200) is not None
    # A reset within the period waits too (its Event is what tells at once).
    s.written_ok()
    s.record(reset("a", T0 + 201))
    assert s.status_patch({"a": 100.0}, T0 + 201, force=True) is None
    later = s.status_patch({"a": 100.0}, T0 + 210)
    assert later is not None
    assert later["healCount"] == 1


def test_a_clock_set_back_does_not_stop_the_writes() -> None:
    s = state()
    assert s.status_patch({"a": 1.0}, T0) is not None
    s.written_ok()
    assert s.status_patch({"a": 2.0}, T0 - 3600) is not None


def test_cooldowns_in_status_end_with_the_cooldown() -> None:
    s = state(cooldown=60)
    s.record(reset("a", T0))
    s.policy.record_reset("a", T0)
    patch = s.status_patch({"a": 100.0}, T0, force=True)
    s.written_ok()
    assert patch["lastHeal"]["recentResets"] == {"a": rfc3339(T0, milliseconds=True)}
    later = s.status_patch({"a": 100.0}, T0 + 61)
    assert later is not None
    assert later["lastHeal"]["recentResets"] == {"a": None}, "cooldown over: dropped"


def test_restore_keeps_cooldowns_and_rewrites_nothing() -> None:
    first = state()
    first.record(reset("a", T0))
    first.policy.record_reset("a", T0)
    status = merge_patch({}, first.status_patch({"a": 100.0, "b": 7.0}, T0, force=True))
    first.written_ok()

    # A new operator process: the state comes back from the status alone.
    second = state()
    restored = second.restore(status)
    assert restored == {"a": parse_rfc3339(status["lastHeal"]["time"])}
    assert second.heal_count == 1
    assert second.policy.in_cooldown("a", T0 + 10)
    assert not second.policy.in_cooldown("b", T0 + 10)
    assert second.status_patch({"a": 100.0, "b": 7.0}, T0 + 10) is None, "nothing rewritten"
    second.record(reset("a", T0 + 700))
    assert second.heal_count == 2


def test_restore_tolerates_garbage() -> None:
    s = state()
    assert s.restore({"healCount": "many", "lastHeal": {"pod": 3, "time": "yesterday"}}) == {}
    assert s.heal_count == 0
    assert s.restore(None) == {}
