"""The heal policy with a fake clock: threshold, `for` across intervals, cooldown, restarts."""

from __future__ import annotations

import json

import pytest

from promdemo_operator.core.heal_policy import Action, HealPolicy, PolicyConfig

T0 = 1_700_000_000.0


def run(policy: HealPolicy, pod: str, values: list[float | None], interval: float) -> list[Action]:
    """Feed one value per interval from T0 (None: the check could not read it)."""
    actions = []
    for i, value in enumerate(values):
        now = T0 + i * interval
        d = policy.observe_missing(pod, now) if value is None else policy.observe(pod, value, now)
        actions.append(d.action)
    return actions


OK, PENDING, RESET, COOLDOWN, UNKNOWN = (
    Action.OK,
    Action.PENDING,
    Action.RESET,
    Action.COOLDOWN,
    Action.UNKNOWN,
)


def test_below_threshold_with_for_zero_resets_at_first_observation() -> None:
    policy = HealPolicy(PolicyConfig(threshold=0, interval=5, for_seconds=0))
    assert run(policy, "p", [3, 0, -1], 5) == [OK, OK, RESET]


def test_threshold_is_strictly_below() -> None:
    policy = HealPolicy(PolicyConfig(threshold=10, for_seconds=0))
    assert policy.observe("p", 10, T0).action is OK
    assert policy.observe("p", 9, T0 + 5).action is RESET


def test_for_counts_from_the_first_below_observation_across_intervals() -> None:
    # The alert-timing article's rule: evaluated every 1m, for 5m → due at the 6th below
    # check (T+5m).
    policy = HealPolicy(PolicyConfig(interval=60, for_seconds=300))
    actions = run(policy, "p", [-1] * 7, 60)
    assert actions == [PENDING] * 5 + [RESET, RESET]
    assert policy.below_since("p") == T0


def test_for_not_multiple_of_interval_waits_for_the_next_check() -> None:
    policy = HealPolicy(PolicyConfig(interval=5, for_seconds=7))
    assert run(policy, "p", [-1, -1, -1], 5) == [PENDING, PENDING, RESET]


def test_one_check_at_threshold_starts_over() -> None:
    policy = HealPolicy(PolicyConfig(interval=5, for_seconds=10))
    # below, below, recovered once, below ... the clock restarts at index 3.
    actions = run(policy, "p", [-1, -1, 0, -1, -1, -1], 5)
    assert actions == [PENDING, PENDING, OK, PENDING, PENDING, RESET]


def test_unreadable_check_starts_over_like_a_stale_series() -> None:
    policy = HealPolicy(PolicyConfig(interval=5, for_seconds=10))
    actions = run(policy, "p", [-1, -1, None, -1, -1, -1], 5)
    assert actions == [PENDING, PENDING, UNKNOWN, PENDING, PENDING, RESET]


def test_cooldown_blocks_a_second_reset_of_the_same_pod_only() -> None:
    policy = HealPolicy(PolicyConfig(interval=5, cooldown=30))
    assert policy.observe("a", -5, T0).action is RESET
    policy.record_reset("a", T0 + 0.2)
    # "a" goes negative again right away: in cooldown until T0+30.2.
    d = policy.observe("a", -1, T0 + 5)
    assert d.action is COOLDOWN
    assert d.cooldown_until == pytest.approx(T0 + 30.2)
    # another pod is not affected
    assert policy.observe("b", -1, T0 + 5).action is RESET
    assert policy.observe("a", -1, T0 + 30).action is COOLDOWN
    assert policy.observe("a", -1, T0 + 30.2).action is RESET


def test_record_reset_ends_the_run() -> None:
    policy = HealPolicy(PolicyConfig(interval=5, for_seconds=10, cooldown=0))
    run(policy, "p", [-1, -1, -1], 5)
    policy.record_reset("p", T0 + 10)
    assert policy.below_since("p") is None
    # after the reset, a new run needs the full `for` again
    assert policy.observe("p", -1, T0 + 15).action is PENDING


def test_recovery_before_reset_is_seen_by_recheck() -> None:
    policy = HealPolicy(PolicyConfig())
    assert policy.observe("p", -3, T0).action is RESET
    # the live value read right before the reset
    assert policy.recheck("p", 42, T0 + 0.1).action is OK
    assert policy.below_since("p") is None
    assert policy.last_reset("p") is None


def test_recheck_still_below_keeps_the_run() -> None:
    policy = HealPolicy(PolicyConfig(for_seconds=5))
    policy.observe("p", -3, T0)
    d = policy.observe("p", -3, T0 + 5)
    assert d.action is RESET
    d = policy.recheck("p", -4, T0 + 5.1)
    assert d.action is RESET
    assert d.below_since == T0


def test_confirm_ignores_for_but_not_cooldown_nor_threshold() -> None:
    policy = HealPolicy(PolicyConfig(for_seconds=600, cooldown=30))
    assert policy.confirm("p", -1, T0).action is RESET
    assert policy.confirm("q", 5, T0).action is OK
    policy.record_reset("p", T0)
    # a duplicate/late notification while the pod is again negative
    assert policy.confirm("p", -2, T0 + 10).action is COOLDOWN


def test_nan_is_not_below() -> None:
    policy = HealPolicy(PolicyConfig())
    assert policy.observe("p", float("nan"), T0).action is OK


def test_state_survives_a_restart_through_export_import() -> None:
    before = HealPolicy(PolicyConfig(cooldown=30))
    before.observe("a", -1, T0)
    before.record_reset("a", T0)
    before.record_reset("old", T0 - 100)  # cooldown over: not exported
    saved = json.loads(json.dumps(before.export_state(T0 + 1)))
    assert saved == {"a": T0}

    after = HealPolicy(PolicyConfig(cooldown=30))
    after.import_state(saved)
    assert after.observe("a", -7, T0 + 5).action is COOLDOWN
    assert after.observe("a", -7, T0 + 31).action is RESET


def test_import_ignores_junk_and_keeps_the_later_time() -> None:
    policy = HealPolicy(PolicyConfig(cooldown=30))
    policy.record_reset("a", T0 + 10)
    policy.import_state({"a": T0, "b": "not a time", "c": None, "d": float("nan"), "e": "12.5"})
    assert policy.last_reset("a") == T0 + 10
    assert policy.last_reset("b") is None
    assert policy.last_reset("c") is None
    assert policy.last_reset("d") is None
    assert policy.last_reset("e") == 12.5
    policy.import_state(None)


def test_absent_pods_are_forgotten_but_cooldowns_kept() -> None:
    policy = HealPolicy(PolicyConfig(for_seconds=10, cooldown=30))
    policy.observe("gone", -1, T0)
    policy.observe("cool", -1, T0)
    policy.record_reset("cool", T0)
    policy.forget_absent(["other"], T0 + 5)
    assert policy.below_since("gone") is None
    assert policy.last_reset("cool") == T0
    policy.forget_absent([], T0 + 31)
    assert policy.last_reset("cool") is None


def test_update_config_keeps_state() -> None:
    policy = HealPolicy(PolicyConfig(for_seconds=10))
    policy.observe("p", -1, T0)
    policy.update_config(PolicyConfig(for_seconds=0))
    assert policy.observe("p", -1, T0 + 1).action is RESET


def test_config_from_the_typed_spec() -> None:
    """`PolicyConfig.from_spec` reads `parse_spec(...).auto_heal`'s typed fields."""
    from promdemo_operator.core.spec import parse_spec

    parsed = parse_spec(
        {"autoHeal": {"threshold": 3, "interval": "2s", "for": "1m30s", "cooldown": "45s"}}
    )
    c = PolicyConfig.from_spec(parsed.auto_heal)
    assert c == PolicyConfig(threshold=3, interval=2.0, for_seconds=90.0, cooldown=45.0)
    defaults = PolicyConfig.from_spec(parse_spec({}).auto_heal)
    assert defaults == PolicyConfig(threshold=0, interval=5.0, for_seconds=0.0, cooldown=30.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"interval": 0},
        {"for_seconds": -1},
        {"cooldown": -0.1},
        {"interval": float("nan")},
        {"cooldown": float("inf")},
        {"threshold": float("nan")},
    ],
    ids=str,
)
def test_invalid_config_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        PolicyConfig(**kwargs)
