"""The reset journal (runtime/handlers/reset_journal.py): a reset's cooldown is in the status first.

A fake operator context (heal loops with pods, a Kube whose status patches are
recorded or refused) and a real pod on 127.0.0.1 that counts the resets it gets.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from promdemo_operator.heal.engine import PodTarget
from promdemo_operator.heal.pod_client import PodReadError
from promdemo_operator.heal.status import HealState
from promdemo_operator.runtime.handlers.pod_clients import FencedPodHttp
from promdemo_operator.runtime.handlers.reset_journal import ResetJournal
from promdemo_operator.runtime.kube import KubeError


@dataclass
class Loop:
    targets: list[PodTarget]
    settings: Any = "configured"

    def pods(self) -> list[PodTarget]:
        return self.targets


@dataclass
class Kube:
    down: bool = False
    patches: list[tuple[str, str, dict]] = field(default_factory=list)

    def merge_patch(self, kind: str, ns: str, name: str, patch: dict, *, subresource: str) -> dict:
        assert (kind, subresource) == ("PromDemo", "status")
        if self.down:
            raise KubeError(0, "ConnectTimeoutError", "the API server does not answer")
        self.patches.append((ns, name, patch))
        return {}


@dataclass
class Context:
    kube: Kube
    heal_loops: dict[tuple[str, str], Any]

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)


async def _pod(resets: list[str]) -> tuple[web.AppRunner, str]:
    async def reset(request: web.Request) -> web.Response:
        resets.append(request.path)
        return web.json_response({"inventory": 100})

    app = web.Application()
    app.router.add_post("/inventory/reset", reset)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]  # the bound address, through the public API
    return runner, f"http://127.0.0.1:{port}"


def run_reset(kube: Kube, *, other_loop_url: str | None = None) -> tuple[list[str], Any]:
    """One reset through the fenced client with the journal; (resets the pod got, outcome)."""
    resets: list[str] = []

    async def main() -> Any:
        runner, url = await _pod(resets)
        loops: dict[tuple[str, str], Any] = {
            ("demo", "shop"): Loop([PodTarget("shop-a", url)]),
            ("demo", "idle"): Loop([], settings=None),
        }
        if other_loop_url is not None:  # a stale pod of another PromDemo at the same address
            loops[("other", "cart")] = Loop([PodTarget("cart-old", other_loop_url or url)])
        journal = ResetJournal(Context(kube, loops), clock=lambda: 1_765_100_000.25)
        client = FencedPodHttp(allowed=lambda: True, journal=journal)
        try:
            return await client.request("POST", f"{url}/inventory/reset", timeout=2, max_bytes=999)
        except PodReadError as e:
            return e
        finally:
            await client.aclose()
            await runner.cleanup()

    return resets, asyncio.run(main())


def test_the_cooldown_is_written_before_the_reset_and_a_new_leader_restores_it() -> None:
    kube = Kube()
    resets, answer = run_reset(kube)
    assert answer.status == 200
    assert resets == ["/inventory/reset"]
    assert kube.patches == [
        ("demo", "shop",
         {"status": {"lastHeal": {"recentResets": {"shop-a": "2025-12-07T09:33:20.250Z"}}}})
    ]  # fmt: skip
    # What the next leader's heal loop restores from that status: shop-a in cooldown.
    state = HealState()
    restored = state.restore(kube.patches[0][2]["status"])
    assert restored == {"shop-a": 1_765_100_000.25}
    assert state.policy.in_cooldown("shop-a", 1_765_100_000.25 + 29)
    assert not state.policy.in_cooldown("shop-a", 1_765_100_000.25 + 31)


def test_no_reset_leaves_when_its_cooldown_cannot_be_written() -> None:
    resets, error = run_reset(Kube(down=True))
    assert resets == []
    assert isinstance(error, PodReadError)
    assert error.sent is False
    assert "could not be written" in error.detail


def test_a_reset_url_shared_by_two_watched_pods_is_journalled_for_both() -> None:
    kube = Kube()
    resets, answer = run_reset(kube, other_loop_url="")
    assert resets == ["/inventory/reset"]
    assert answer.status == 200
    assert {(ns, name) for ns, name, _ in kube.patches} == {("demo", "shop"), ("other", "cart")}
