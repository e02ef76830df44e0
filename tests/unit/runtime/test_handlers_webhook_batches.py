"""The Alertmanager receiver under large and hostile notifications.

Before: alerts were healed one at a time, so 10 hanging pods ahead of one good
pod delayed its reset (and the answer to Alertmanager) by 20 s, and 500
duplicates of one alert made 500 resets; a `startsAt` of 400,000 fractional
digits blocked the event loop for seconds.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from promdemo_operator.heal.alertmanager import (
    MAX_LABEL_CHARS,
    AlertRef,
    PayloadError,
    parse_payload,
    parse_time,
)
from promdemo_operator.heal.engine import PodTarget
from promdemo_operator.runtime.handlers.webhook import MAX_HEALS_IN_FLIGHT, AlertReceiver

pytestmark = pytest.mark.timeout(60)


class SlowLoop:
    """A heal loop whose `hanging` pods take an hour to answer; counts what it was asked."""

    def __init__(self, pods: list[str], hanging: set[str], name: str = "shop") -> None:
        self.namespace, self.name = "demo", name
        self.pods = [PodTarget(p, f"http://10.0.0.{i}:8080") for i, p in enumerate(pods, 1)]
        self.hanging = hanging
        self.healed: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0

    def find_pod(self, ref: AlertRef) -> PodTarget | None:
        return next((p for p in self.pods if p.name == ref.pod), None)

    async def heal_alert(self, ref: AlertRef) -> str:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if ref.pod in self.hanging:
                await asyncio.sleep(3600)
            self.healed.append(str(ref.pod))
            return "reset"
        finally:
            self.in_flight -= 1


def firing(pod: str) -> dict[str, Any]:
    labels = {"alertname": "InventoryNegative", "namespace": "demo", "pod": pod}
    return {"status": "firing", "labels": labels}


def test_hanging_pods_do_not_delay_the_answer_or_a_good_pod() -> None:
    hanging = {f"hang-{i}" for i in range(10)}
    loop = SlowLoop([*sorted(hanging), "good"], hanging)
    receiver = AlertReceiver("t", loops=lambda: [loop], ack_seconds=0.5)
    alerts = [firing(p) for p in sorted(hanging)] + [firing("good")]

    async def scenario() -> tuple[int, dict[str, Any]]:
        # Far inside the hour the hanging pods take: the answer did not wait for them.
        answer = await asyncio.wait_for(receiver.handle({"alerts": alerts}), timeout=30)
        assert len(receiver.background) == 10
        await receiver.close()
        return answer

    code, answer = asyncio.run(scenario())
    assert code == 200
    outcomes = {a["pod"]: a["outcome"] for a in answer["alerts"]}
    assert outcomes.pop("good") == "reset"
    assert set(outcomes.values()) == {"accepted"}
    assert loop.healed == ["good"]
    assert loop.most_in_flight <= MAX_HEALS_IN_FLIGHT


def test_heals_in_flight_are_bounded_per_promdemo() -> None:
    hanging = {f"hang-{i}" for i in range(30)}
    loop = SlowLoop(sorted(hanging), hanging)
    receiver = AlertReceiver("t", loops=lambda: [loop], ack_seconds=0.2, max_in_flight=4)

    async def scenario() -> int:
        await receiver.handle({"alerts": [firing(p) for p in sorted(hanging)]})
        await receiver.handle({"alerts": [firing(p) for p in sorted(hanging)]})
        most = loop.most_in_flight
        await receiver.close()
        return most

    assert asyncio.run(scenario()) == 4


def test_duplicates_in_a_batch_cause_one_reset() -> None:
    loop = SlowLoop(["shop-a"], set())
    receiver = AlertReceiver("t", loops=lambda: [loop])
    code, answer = asyncio.run(receiver.handle({"alerts": [firing("shop-a")] * 500}))
    assert code == 200
    assert loop.healed == ["shop-a"]
    outcomes = [a["outcome"] for a in answer["alerts"]]
    assert outcomes[0] == "reset"
    assert set(outcomes[1:]) == {"duplicate"}


def test_start_times_are_bounded_before_they_are_parsed() -> None:
    long_fraction = "2026-11-22T02:47:53." + "1" * 400_000 + "Z"
    assert parse_time(long_fraction) is None
    assert parse_time("2026-11-22T02:47:53.123456789Z") == pytest.approx(1795315673.123456)
    assert parse_time("2026-11-22T02:47:5٣Z") is None  # a non-ASCII digit
    alert = {**firing("shop-a"), "startsAt": long_fraction}
    (ref,) = parse_payload({"alerts": [alert]})
    assert ref.starts_at is None


def test_every_field_is_bounded() -> None:
    huge = "x" * (MAX_LABEL_CHARS + 1)
    alert = {
        "status": "firing" * 1000,
        "labels": {"alertname": "InventoryNegative", "pod": huge, "namespace": huge},
        "fingerprint": huge,
    }
    (ref,) = parse_payload({"status": "firing", "alerts": [alert]})
    assert (ref.pod, ref.namespace, ref.fingerprint) == (None, None, None)
    assert ref.status == "firing"  # the group's status, the alert's being no status word
    with pytest.raises(PayloadError, match="more than"):
        parse_payload({"alerts": [firing("a")] * 100_000})


def test_the_open_files_limit_is_raised_within_the_hard_limit() -> None:
    import resource

    from promdemo_operator.runtime.handlers.webhook import raise_open_files_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, soft), hard))
        wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
        assert raise_open_files_limit(wanted) == wanted
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == wanted
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
