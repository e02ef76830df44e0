"""The client-side limit on the operator's API requests (`ratelimit.TokenBucket`,
`--kube-api-qps` / `--kube-api-burst`), driven by a clock the test moves."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from promdemo_operator.core import cliargs
from promdemo_operator.runtime import ratelimit
from promdemo_operator.runtime.kube import Kube
from promdemo_operator.runtime.ratelimit import TokenBucket
from tests.support.console import promdemo


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_goes_at_once_then_one_request_per_token() -> None:
    clock = Clock()
    bucket = TokenBucket(qps=5, burst=10, clock=clock)
    assert [bucket.reserve() for _ in range(10)] == [0.0] * 10
    # The 11th waits one token's time (1/5 s), the 12th two: they queue in order.
    assert bucket.reserve() == pytest.approx(0.2)
    assert bucket.reserve() == pytest.approx(0.4)
    assert (bucket.delayed, bucket.delayed_seconds) == (2, pytest.approx(0.6))


def test_tokens_come_back_at_qps_and_never_above_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(qps=20, burst=30, clock=clock)
    for _ in range(30):
        bucket.reserve()
    clock.now += 0.5  # 10 tokens back
    assert [bucket.reserve() for _ in range(10)] == [0.0] * 10
    assert bucket.reserve() == pytest.approx(0.05)
    clock.now += 3600  # an hour of quiet refills to the burst, not to 72,000
    assert [bucket.reserve() for _ in range(30)] == [0.0] * 30
    assert bucket.reserve() > 0


def test_a_sustained_flood_is_held_to_qps() -> None:
    """1,000 requests asked at once with qps 20, burst 30: the last may go after 48.5 s."""
    clock = Clock()
    bucket = TokenBucket(qps=20, burst=30, clock=clock)
    waits = [bucket.reserve() for _ in range(1000)]
    assert waits[-1] == pytest.approx((1000 - 30) / 20)
    assert sum(1 for w in waits if w == 0) == 30


def test_wait_sleeps_what_reserve_said() -> None:
    clock = Clock()
    bucket = TokenBucket(qps=2, burst=1, clock=clock)
    slept: list[float] = []
    assert bucket.wait(slept.append) == 0.0
    assert bucket.wait(slept.append) == pytest.approx(0.5)
    assert slept == [pytest.approx(0.5)]


def test_threads_share_one_bucket_without_losing_a_token() -> None:
    clock = Clock()
    bucket = TokenBucket(qps=100, burst=50, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(100):
            w = bucket.reserve()
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for w in waits if w == 0) == 50
    assert max(waits) == pytest.approx((800 - 50) / 100)


@pytest.mark.parametrize(("qps", "burst"), [(0, 10), (-1, 10), (float("nan"), 10), (5, 0)])
def test_a_bucket_that_would_never_let_a_request_through_is_refused(qps: float, burst: int) -> None:
    with pytest.raises(ValueError, match=r"qps|burst"):
        TokenBucket(qps, burst)


class _Answer:
    status = 200
    reason = "OK"

    def read(self) -> bytes:
        return b"{}"


class _Api:
    """Enough of `kubernetes.client.ApiClient` for `Kube.request`: counts what is sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def param_serialize(self, method: str, resource_path: str, **_: Any) -> tuple:
        return method, resource_path, {}, None, None

    def call_api(self, method: str, url: str, **_: Any) -> _Answer:
        self.sent.append(f"{method} {url}")
        return _Answer()


def test_every_request_of_the_client_takes_a_token() -> None:
    clock = Clock()
    bucket = TokenBucket(qps=1000, burst=2, clock=clock)
    api = _Api()
    kube = Kube(api, limiter=bucket)  # type: ignore[arg-type]
    kube.create({"kind": "Service", "metadata": {"name": "a", "namespace": "ns"}})
    kube.merge_patch("PromDemo", "ns", "a", {"status": {}}, subresource="status")
    kube.get("Service", "ns", "a")
    assert len(api.sent) == 3
    # Two went with the burst; the third waited its token (1 ms with the clock frozen).
    assert (bucket.delayed, bucket.delayed_seconds) == (1, pytest.approx(0.001))


def test_the_flags_default_to_kube_controller_managers_and_reach_the_options() -> None:
    from promdemo_operator.runtime import options as run

    defaults = run.default_options()
    assert (defaults.kube_api_qps, defaults.kube_api_burst) == (20.0, 30)
    parser = cliargs.CommandParser(prog="promdemo operator")
    run.add_arguments(parser)
    options = run.options_from_args(
        parser.parse_args(["--kube-api-qps", "2.5", "--kube-api-burst", "4"])
    )
    assert (options.kube_api_qps, options.kube_api_burst) == (2.5, 4)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--kube-api-qps", "0"),
        ("--kube-api-qps", "-3"),
        ("--kube-api-qps", "nan"),
        ("--kube-api-qps", "fast"),
        ("--kube-api-qps", str(ratelimit.MAX_QPS * 2)),
        ("--kube-api-burst", "0"),
        ("--kube-api-burst", "1.5"),
    ],
)
def test_a_bad_limit_is_one_line_and_exit_2(flag: str, value: str) -> None:
    result = promdemo("operator", flag, value)
    assert result.returncode == cliargs.EXIT_USAGE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert flag in lines[0]
    assert lines[0].startswith("promdemo operator: ")
