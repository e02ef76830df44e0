"""The heal handler (runtime/handlers/heal.py): which PromDemo gets a heal loop, and when.

Its settings are parsed once per generation; first checks spread over the interval; a
check never waits for its status write.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

import promdemo_operator.runtime.handlers.heal as heal_module
from promdemo_operator.core import spec as spec_mod
from promdemo_operator.runtime.handlers.heal import HealLoop, first_check_delay, heal_wanted


def test_a_heal_loop_only_for_a_valid_name_and_spec_with_auto_heal_on() -> None:
    on = {"autoHeal": {"enabled": True}}
    assert heal_wanted(name="shop", spec=on)
    assert not heal_wanted(name="shop", spec={"autoHeal": {"enabled": False}})
    assert not heal_wanted(name="shop", spec={"autoHeal": {"enabled": True, "interval": "0s"}})
    # A valid Kubernetes name that cannot name the children (a dot, too long): no loop.
    assert not heal_wanted(name="shop.v2", spec=on)
    assert not heal_wanted(name="x" * 64, spec=on)


def test_the_auto_heal_settings_are_parsed_once_per_generation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kopf asks at every event and the loop at every tick: the spec is parsed again
    only when its generation changes (an invalid one is remembered as invalid too)."""
    calls = []
    real = heal_module.parse_auto_heal

    def counting(spec: Any) -> Any:
        calls.append(spec)
        return real(spec)

    monkeypatch.setattr(heal_module, "parse_auto_heal", counting)
    cache = heal_module.AutoHealCache(size=2)
    on, off = {"autoHeal": {"enabled": True}}, {"autoHeal": {"enabled": True, "interval": "0s"}}
    for _ in range(3):
        assert cache.get({"uid": "u1", "generation": 1}, on).enabled
    assert len(calls) == 1
    for _ in range(3):
        with pytest.raises(spec_mod.SpecError):
            cache.get({"uid": "u1", "generation": 2}, off)
    assert len(calls) == 2
    assert cache.get({"uid": "u1", "generation": 3}, on).interval_seconds == 5
    assert len(calls) == 3
    # No uid or generation (a body from elsewhere): parsed every time, nothing kept.
    cache.get({}, on)
    cache.get(None, on)
    assert len(calls) == 5
    # Bounded: a third PromDemo pushes the oldest out.
    cache.get({"uid": "u2", "generation": 1}, on)
    cache.get({"uid": "u3", "generation": 1}, on)
    cache.get({"uid": "u1", "generation": 3}, on)
    assert len(calls) == 8


def test_first_checks_are_spread_over_the_interval() -> None:
    delays = [first_check_delay("demo", f"shop-{i}", 5.0) for i in range(200)]
    assert all(0 <= d < 5.0 for d in delays)
    assert first_check_delay("demo", "shop-1", 5.0) == delays[1], "fixed by the name"
    assert len({round(d, 1) for d in delays}) > 30, "not all at once"


class _NoPods:
    def pods(self, namespace: str, promdemo: str) -> list[Any]:
        return []


def test_a_check_does_not_wait_for_its_status_write() -> None:
    """Under the API limit a status write can wait seconds for its token: the checks
    (and resets) go on meanwhile, no second write is planned while one is in flight,
    and a reset's forced write is kept for the next check."""
    now = [1000.0]
    sent: list[dict[str, Any]] = []

    async def scenario() -> None:
        release = asyncio.Event()

        async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
            await release.wait()  # the write waits for its token
            return fn(*args, **kwargs)

        kube = SimpleNamespace(merge_patch=lambda *args, **kwargs: sent.append(args[3]))
        ctx: Any = SimpleNamespace(call=call, kube=kube)
        loop = HealLoop("demo", "shop", ctx=ctx, watched=_NoPods(), clock=lambda: now[0])  # type: ignore[arg-type]
        # One check's write goes out as its own task: the check returns at once.
        await asyncio.wait_for(loop._write_status({"shop-a": 5.0}, force=False), 1.0)
        assert sent == []
        # A reset's forced write while the first is in flight: not planned yet.
        now[0] += 11
        await asyncio.wait_for(loop._write_status({"shop-a": 100.0}, force=True), 1.0)
        assert loop.state.inventory == {"shop-a": 100.0}
        release.set()
        await loop.status_written()
        assert [p["status"]["inventory"] for p in sent] == [{"shop-a": 5.0}]
        # The next check plans again, with what it read and the reset's force kept.
        await loop._write_status({"shop-a": 100.0}, force=False)
        await loop.status_written()
        assert [p["status"]["inventory"] for p in sent][-1] == {"shop-a": 100.0}
        assert len(sent) == 2

    asyncio.run(scenario())
