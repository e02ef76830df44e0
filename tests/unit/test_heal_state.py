"""The heal loop's state (heal/state.py): restore after a restart, resets, the status it writes."""

from __future__ import annotations

from typing import Any

from promdemo_operator.heal.engine import ResetDone
from promdemo_operator.heal.policy import HealPolicy, PolicyConfig
from promdemo_operator.heal.state import HealState, int_if_whole, reset_message
from promdemo_operator.timefmt import parse_rfc3339, rfc3339
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
    assert s.status_patch({"a": 5.0, "b": 3.0}, T0 + 5) is None, "nothing changed"
    # Pod b left: set to null in the patch (a merge patch keeps keys it does not mention).
    patch = s.status_patch({"a": 4.0}, T0 + 10)
    assert patch["inventory"] == {"b": None, "a": 4}
    s.written_ok()
    status = merge_patch(status, patch)
    assert status == {"inventory": {"a": 4}, "lowestInventory": 4, "healCount": 0}
    # No pods at all: lowestInventory goes away.
    patch = s.status_patch({}, T0 + 15)
    s.written_ok()
    status = merge_patch(status, patch)
    assert status == {"inventory": {}, "healCount": 0}


def test_a_patch_not_accepted_is_sent_again() -> None:
    s = state()
    assert s.status_patch({"a": 1.0}, T0) is not None
    # (the API call failed: no written_ok)
    assert s.status_patch({"a": 1.0}, T0 + 5) is not None


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
