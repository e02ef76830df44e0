"""The heal engine against hostile pods: real servers in another process on 127.0.0.x.

A tenant chooses `spec.image`, so a pod may answer the operator anything. Each
pod of `tests/support/fake_pods.py` answers one way (endless body, gzip bomb,
4 MiB page, 200,000 lines, duplicate samples, NaN, a reset answered late, ...);
the engine must come back with a failure by reason, never a reset decided by
garbage, never a non-finite value, and must start the cooldown for a reset that
may have happened. Memory and event-loop stalls with these pods are measured by
`bench/bench_heal.py --mode hostile` (printed, not asserted here).
"""

from __future__ import annotations

import asyncio
import json
import math
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from promdemo_operator.core.heal_policy import HealPolicy, PolicyConfig
from promdemo_operator.heal.engine import CheckResult, HealEngine, PodTarget
from promdemo_operator.heal.metrics import HealMetrics
from tests.support.fake_pods import fake_pods

pytestmark = pytest.mark.integration

PODS = {
    "endless": "endless",
    "gzip-bomb": "gzip-bomb",
    "big-page": "big-page",
    "many-lines": "many-lines",
    "duplicates": "duplicates",
    "nan-page": "nan",
    "drip": "drip",
    "reset-endless": "ok:endless",
    "reset-gzip-bomb": "ok:gzip-bomb",
    "reset-nan": "ok:nan",
    "reset-late": "ok:late",
    "honest-1": "ok",
    "honest-2": "ok",
    "honest-3": "ok",
    "honest-4": "ok",
}


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """name → base URL; every pod reports product_inventory -5 (due for a reset)."""
    workdir = tmp_path_factory.mktemp("hostile")
    with fake_pods(workdir, pods=[f"{n}={k}" for n, k in PODS.items()], value=-5) as (_, urls):
        yield urls


def stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/stats", timeout=10) as answer:
        return json.load(answer)


def engine(timeout: float = 2.0, cooldown: float = 600.0) -> tuple[HealEngine, HealMetrics]:
    metrics = HealMetrics(CollectorRegistry())
    policy = HealPolicy(PolicyConfig(interval=1.0, cooldown=cooldown))
    return (
        HealEngine(
            policy, token="t", timeout=timeout, namespace="it", promdemo="shop", metrics=metrics
        ),
        metrics,
    )


def check(pods: dict[str, str], names: list[str], times: int = 1, **kw: Any) -> list[CheckResult]:
    async def main() -> list[CheckResult]:
        heal, _ = engine(**kw)
        async with heal:
            return [await heal.check([PodTarget(n, pods[n]) for n in names]) for _ in range(times)]

    return asyncio.run(main())


def failures(result: CheckResult) -> dict[str, tuple[str, str]]:
    return {f.pod: (f.stage, f.reason) for f in result.failures}


@pytest.mark.parametrize("name", ["endless", "gzip-bomb", "big-page", "many-lines"])
def test_an_oversized_page_is_refused_and_the_other_pods_are_healed(
    pods: dict[str, str], name: str
) -> None:
    """Endless, a 1 GiB gzip bomb, 4 MiB, 200,000 lines: `too_large`, read no further."""
    honest = {"endless": "honest-1", "gzip-bomb": "honest-2", "big-page": "honest-3"}
    other = honest.get(name, "honest-4")
    (result,) = check(pods, [name, other])
    assert failures(result) == {name: ("scrape", "too_large")}
    assert name not in result.inventory
    assert stats(pods[name])["resets"] == 0
    assert other in result.inventory  # read (and reset if it was still at -5)


@pytest.mark.parametrize(("name", "reason"), [("duplicates", "garbage"), ("nan-page", "garbage")])
def test_an_invalid_exposition_never_decides_a_reset(
    pods: dict[str, str], name: str, reason: str
) -> None:
    """`product_inventory 5` and `product_inventory -3` on one page, or NaN: no reset."""
    (result,) = check(pods, [name])
    assert failures(result) == {name: ("scrape", reason)}
    assert result.resets == []
    assert result.inventory == {}
    assert stats(pods[name])["resets"] == 0


def test_a_dripping_page_times_out(pods: dict[str, str]) -> None:
    (result,) = check(pods, ["drip"], timeout=1.0)
    assert failures(result) == {"drip": ("scrape", "timeout")}


@pytest.mark.parametrize("name", ["reset-endless", "reset-gzip-bomb"])
def test_an_oversized_reset_answer_is_capped_and_the_reset_unconfirmed(
    pods: dict[str, str], name: str
) -> None:
    (result,) = check(pods, [name])
    assert [(r.pod, r.before, r.after) for r in result.resets] == [(name, -5, None)]
    assert failures(result) == {name: ("reset", "too_large")}
    assert stats(pods[name])["resets"] == 1


def test_a_nan_reset_answer_never_reaches_the_status(pods: dict[str, str]) -> None:
    """`{"inventory": NaN}`: the reset counts as unconfirmed; every value reported is finite."""
    (result,) = check(pods, ["reset-nan"])
    assert [(r.pod, r.after) for r in result.resets] == [("reset-nan", None)]
    assert failures(result) == {"reset-nan": ("reset", "garbage")}
    assert all(math.isfinite(v) for v in result.inventory.values())
    assert result.lowest_inventory is not None
    assert math.isfinite(result.lowest_inventory)


def test_a_late_reset_answer_still_starts_the_cooldown(pods: dict[str, str]) -> None:
    """The pod resets but answers after the timeout and still shows -5: one reset in
    three checks (cooldown 600 s), not one per check."""
    before = stats(pods["reset-late"])["resets"]
    results = check(pods, ["reset-late"], times=3, timeout=0.5)
    assert failures(results[0]) == {"reset-late": ("reset", "timeout")}
    assert [r.skipped for r in results[1:]] == [{"reset-late": "cooldown"}] * 2
    assert stats(pods["reset-late"])["resets"] - before == 1
