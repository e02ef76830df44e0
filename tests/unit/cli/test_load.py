"""The load generator (`cli/load.py`) and `promdemo load`'s options and output.

The summary's maths, the core against an in-memory transport, the command's
arguments and its JSON output (the network is never used).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random

import httpx
import pytest

from promdemo_operator.cli import load
from promdemo_operator.cli.commands import load as load_command
from promdemo_operator.cli.load import LoadError, OrderResult, percentile, summarize

# ------------------------------------------------------------------ percentiles


def test_percentile_nearest_rank_on_1_to_100() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100


def test_percentile_is_always_an_observed_value() -> None:
    values = [0.1, 0.2, 0.9]
    assert percentile(values, 50) == 0.2  # ceil(1.5) = 2nd value
    assert percentile(values, 95) == 0.9
    assert percentile(values, 1) == 0.1


def test_percentile_of_one_value_and_of_none() -> None:
    assert percentile([0.25], 50) == 0.25
    assert percentile([0.25], 99) == 0.25
    assert percentile([], 50) is None


@pytest.mark.parametrize("q", [0, -1, 100.1])
def test_percentile_rejects_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        percentile([1.0], q)


# ------------------------------------------------------------------ summaries


def _results() -> list[OrderResult]:
    return [
        *(OrderResult(0.1 * (i + 1), status=200) for i in range(6)),  # 0.1 .. 0.6
        OrderResult(0.05, status=409),
        OrderResult(0.05, status=409),
        OrderResult(1.5, status=502),
        OrderResult(2.0, error="ConnectError"),
    ]


def test_summary_counts_statuses_and_errors() -> None:
    s = summarize(_results(), url="http://x/order", concurrency=5, rounds=1, elapsed_seconds=2.0)
    assert s.statuses == {200: 6, 409: 2, 502: 1}
    assert s.errors == {"ConnectError": 1}
    assert s.answered == 9
    assert s.failed_transport == 1
    assert s.attempted == s.orders == 10
    assert s.succeeded == 6
    assert s.answered + s.failed_transport == s.orders


def test_summary_throughput_counts_every_attempt() -> None:
    s = summarize(_results(), url="u", concurrency=5, rounds=1, elapsed_seconds=2.0)
    assert s.throughput == pytest.approx(5.0)
    zero = summarize(_results(), url="u", concurrency=5, rounds=1, elapsed_seconds=0.0)
    assert zero.throughput == 0.0


def test_summary_latency_excludes_transport_errors() -> None:
    s = summarize(_results(), url="u", concurrency=5, rounds=1, elapsed_seconds=1.0)
    # 9 answered latencies sorted: .05 .05 .1 .2 .3 .4 .5 .6 1.5
    assert s.latencies == tuple(sorted(s.latencies))
    assert len(s.latencies) == 9
    assert s.latency(50) == pytest.approx(0.3)  # ceil(4.5) = 5th
    assert s.latency(95) == pytest.approx(1.5)
    assert s.latency_max == pytest.approx(1.5)  # not the 2.0 s connect error


def test_empty_summary() -> None:
    s = summarize([], url="u", concurrency=1, rounds=1, elapsed_seconds=0.0)
    assert s.attempted == 0
    assert s.latency(50) is None
    assert s.latency_max is None
    assert s.as_dict()["latency_seconds"] == {"p50": None, "p95": None, "p99": None, "max": None}


def test_as_dict_is_json_ready() -> None:
    s = summarize(_results(), url="http://x/order", concurrency=5, rounds=2, elapsed_seconds=2.0)
    d = json.loads(json.dumps(s.as_dict()))
    assert d["statuses"] == {"200": 6, "409": 2, "502": 1}
    assert d["errors"] == {"ConnectError": 1}
    assert d["attempted"] == 10
    assert d["answered"] == 9
    assert d["rounds"] == 2
    assert d["throughput_per_second"] == pytest.approx(5.0)
    assert set(d["latency_seconds"]) == {"p50", "p95", "p99", "max"}


# ------------------------------------------------------------------ URLs and bodies


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/order", "http://127.0.0.1:8080"),
        ("https://shop.example/api/order/", "https://shop.example/api"),
    ],
)
def test_split_url(url: str, base: str) -> None:
    assert load.split_url(url) == (base, f"{base}/order")


@pytest.mark.parametrize("url", ["127.0.0.1:8080", "ftp://x", "http://", ""])
def test_split_url_rejects_non_http(url: str) -> None:
    with pytest.raises(LoadError, match="not an http"):
        load.split_url(url)


def test_order_body_looks_like_the_demo() -> None:
    body = load.order_body(7, random.Random(1))
    assert set(body) == {"order_id", "user_id", "amount"}
    assert body["order_id"] == 7
    assert isinstance(body["user_id"], int)
    assert 1 <= body["user_id"] <= 1000
    assert 0 < body["amount"] <= 500


# ------------------------------------------------------------------ the core, no network


class _FakeApp:
    """A transport answering like the app: 200 while stock lasts, then 409."""

    def __init__(self, stock: int, health: int = 200) -> None:
        self.stock = stock
        self.health = health
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[dict] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/healthz":
            return httpx.Response(self.health, json={"status": "ok"})
        assert request.method == "POST"
        assert request.url.path == "/order"
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.bodies.append(json.loads(request.content))
            await asyncio.sleep(0.001)
            if self.stock > 0:
                self.stock -= 1
                return httpx.Response(200, json={"status": "success"})
            return httpx.Response(409, json={"error": "out of stock"})
        finally:
            self.in_flight -= 1


def _run(app: _FakeApp, **kw) -> load.LoadSummary:
    transport = httpx.MockTransport(app.handle)
    return asyncio.run(load.run_load("http://app.test", transport=transport, **kw))


def test_run_load_counts_add_up_and_respect_concurrency() -> None:
    app = _FakeApp(stock=30)
    rounds: list[tuple[int, int]] = []
    s = _run(
        app,
        orders=50,
        concurrency=8,
        rounds=2,
        on_round=lambda i, r: rounds.append((i, r.attempted)),
    )
    assert s.attempted == 100
    assert s.statuses == {200: 30, 409: 70}
    assert app.max_in_flight <= 8
    assert rounds == [(1, 50), (2, 50)]
    ids = sorted(b["order_id"] for b in app.bodies)
    assert ids == list(range(1, 101))  # unique across rounds


def test_run_load_reports_progress_per_request() -> None:
    seen: list[OrderResult] = []
    _run(_FakeApp(stock=5), orders=12, concurrency=3, on_result=seen.append)
    assert len(seen) == 12


def test_run_load_counts_transport_errors() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/healthz":
            return httpx.Response(200)
        raise httpx.ConnectError("refused", request=request)

    s = asyncio.run(
        load.run_load(
            "http://app.test", orders=4, concurrency=2, transport=httpx.MockTransport(handle)
        )
    )
    assert s.errors == {"ConnectError": 4}
    assert s.statuses == {}


def test_unhealthy_target_is_one_line_error() -> None:
    with pytest.raises(LoadError) as info:
        _run(_FakeApp(stock=1, health=503), orders=1)
    assert "HTTP 503" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kw", [{"orders": 0}, {"concurrency": 0}, {"rounds": 0}, {"timeout_seconds": 0.0}]
)
def test_run_load_rejects_bad_numbers(kw: dict) -> None:
    with pytest.raises(LoadError):
        _run(_FakeApp(stock=1), **kw)


# ------------------------------------------------------------------ CLI arguments


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    load_command.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_defaults_are_the_demos() -> None:
    args = _parse("http://127.0.0.1:8080")
    assert (args.orders, args.concurrency, args.rounds) == (300, 300, 1)
    assert args.pause == 0.0
    assert args.timeout == 30.0
    assert args.json is False


def test_cli_durations_take_units_or_seconds() -> None:
    args = _parse("http://127.0.0.1:8080", "--pause", "15s", "--timeout", "500ms")
    assert (args.pause, args.timeout) == (15.0, 0.5)
    args = _parse("http://127.0.0.1:8080", "--pause", "1.5", "--timeout", "2")
    assert (args.pause, args.timeout) == (1.5, 2.0)


@pytest.mark.parametrize(
    "argv",
    [
        ["--orders", "0"],
        ["--concurrency", "x"],
        ["--timeout", "0"],
        ["--pause", "-1"],
        ["--pause", "soon"],
    ],
)
def test_cli_rejects_bad_values(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _parse("http://127.0.0.1:8080", *argv)
    assert info.value.code == 2


def test_cli_prints_json_summary(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _FakeApp(stock=3)
    real = load.run_load

    async def fake_run_load(url: str, **kw):
        return await real(url, transport=httpx.MockTransport(app.handle), **kw)

    monkeypatch.setattr(load_command, "run_load", fake_run_load)
    argv = ("http://app.test", "--orders", "5", "--concurrency", "2", "--json")
    rc = load_command.run(_parse(*argv))
    out = capsys.readouterr().out
    assert rc == 0
    assert json.loads(out)["statuses"] == {"200": 3, "409": 2}
