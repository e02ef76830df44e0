"""tests/support/prometheus.py's fixtures start real processes and always stop them."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.support.processes import wait_until
from tests.support.prometheus import (
    Alertmanager,
    Prometheus,
    PromQLError,
    WebhookSink,
    start_alertmanager,  # noqa: F401 - a fixture
    start_prometheus,  # noqa: F401 - a fixture
)
from tests.support.prometheus_versions import params

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("major", params("prometheus"))
def test_prometheus_scrapes_the_app_and_alertmanager_answers(
    start_app: Callable,
    start_prometheus: Callable[..., Prometheus],  # noqa: F811
    start_alertmanager: Callable[..., Alertmanager],  # noqa: F811
    major: int,
) -> None:
    _, url = start_app(env={"PROMDEMO_SIMULATION": "off"})
    target = url.removeprefix("http://")
    with WebhookSink() as sink:
        am = start_alertmanager(sink.url)
        prom = start_prometheus([target], alertmanager=am.url, major=major)  # waits for up == 1
        version = httpx.get(f"{prom.url}/api/v1/status/buildinfo").json()["data"]["version"]
        assert version.startswith(f"{major}.")
        assert prom.query_value(f'up{{instance="{target}"}}') == 1
        assert prom.query_value("product_inventory") == 100
        assert [t["health"] for t in prom.targets()] == ["up"]
        with pytest.raises(PromQLError, match="parse error"):
            prom.query("rate(product_inventory[5m]")
        assert am.alerts() == []
        wait_until(
            lambda: httpx.get(f"{prom.url}/api/v1/alertmanagers").json()["data"][
                "activeAlertmanagers"
            ],
            timeout=15,
            what="Prometheus to find its Alertmanager",
        )
        assert prom.process.alive()
        assert am.process.alive()
    # both are stopped at teardown by the fixtures (ManagedProcess.stop)
