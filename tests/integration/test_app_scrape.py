"""/metrics of the real server: bounded series, and promtool accepts it."""

from __future__ import annotations

import random
import subprocess

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.tools import require_binary

pytestmark = pytest.mark.integration


def series(base_url: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    return {
        (s.name, tuple(sorted(s.labels.items())))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_thousand_random_paths_leave_the_series_count_unchanged(start_app) -> None:
    _, url = start_app(env={"PROMDEMO_SIMULATION": "off"})
    before = series(url)
    rng = random.Random(1000)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-._~%/"
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PURGE", "BREW"]
    statuses = set()
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(1000):
            path = "/" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
            response = client.request(rng.choice(methods), path)
            statuses.add(response.status_code)
            if response.request.method != "HEAD":
                assert response.headers["content-type"].startswith("application/json"), path
    assert statuses <= {200, 400, 404, 405}, statuses
    assert series(url) == before


def test_promtool_accepts_the_metrics(start_app) -> None:
    promtool = require_binary("promtool")
    _, url = start_app(env={"PROMDEMO_SIMULATION": "off"})
    httpx.post(f"{url}/order", timeout=30)
    text = httpx.get(f"{url}/metrics", timeout=30).text
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
