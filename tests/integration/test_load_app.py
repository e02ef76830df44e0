"""`promdemo load` against a real order-service process: the counts add up."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.ports import free_port
from tests.support.processes import python_module

pytestmark = pytest.mark.integration


def _load(*argv: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`promdemo load ARGS` (the console script when installed, else the module)."""
    exe = shutil.which("promdemo")
    cmd: Sequence[str] = (
        [exe, "load", *argv] if exe else python_module("promdemo_operator.cli.main", "load", *argv)
    )
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _samples(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _sum(samples: dict, name: str, **labels: str) -> float:
    return sum(
        v
        for (n, lbls), v in samples.items()
        if n == name and all(dict(lbls).get(k) == val for k, val in labels.items())
    )


def test_counts_add_up_with_the_apps_metrics(start_app) -> None:
    _, url = start_app()
    before = _samples(url)
    # --pause takes a unit, as every duration option of every promdemo command does.
    argv = ("--orders", "150", "--concurrency", "150", "--rounds", "2", "--pause", "500ms")
    result = _load(url, *argv, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)

    statuses = {int(k): v for k, v in summary["statuses"].items()}
    assert summary["attempted"] == 300
    assert summary["errors"] == {}
    assert sum(statuses.values()) == 300
    assert set(statuses) <= {200, 409, 502}
    # 150 concurrent orders against 100 units of stock: the demo's oversell.
    assert statuses.get(200, 0) > 100

    after = _samples(url)

    def delta(name: str, **labels: str) -> float:
        return _sum(after, name, **labels) - _sum(before, name, **labels)

    assert delta("orders_total", result="success") == statuses.get(200, 0)
    assert delta("orders_total", result="failed") == statuses.get(409, 0) + statuses.get(502, 0)
    assert delta("order_failures_total", reason="out_of_stock") == statuses.get(409, 0)
    assert delta("order_failures_total", reason="dependency_error") == statuses.get(502, 0)
    for status, count in statuses.items():
        assert delta("http_requests_total", method="POST", status=str(status)) == count
    # The gauge is initial stock minus every success (oversold: below zero).
    inventory = _sum(after, "product_inventory")
    assert inventory == 100 - statuses.get(200, 0)
    assert inventory < 0

    latency = summary["latency_seconds"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert summary["throughput_per_second"] > 0


def test_plain_summary_names_codes_and_percentiles(start_app) -> None:
    _, url = start_app(env={"PROMDEMO_SIMULATION": "off"})
    result = _load(f"{url}/order", "--orders", "20", "--concurrency", "5")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "HTTP 200" in out
    assert "throughput" in out
    assert "p95" in out
    assert "\x1b[" not in out  # not a TTY: no colours, no progress bar


def test_unreachable_target_exits_non_zero_with_one_line() -> None:
    port = free_port()  # nothing listens there
    result = _load(f"http://127.0.0.1:{port}", "--orders", "5")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "unreachable" in lines[0]
    assert f"127.0.0.1:{port}" in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_invalid_url_is_one_line() -> None:
    result = _load("localhost:8080", "--orders", "1")
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
