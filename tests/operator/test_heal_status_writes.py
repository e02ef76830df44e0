"""Status writes of the heal loop under order traffic: coalesced, and none at rest.

The real operator (kmock plays the API, the test plays the kubelet) checks two
real order-service processes every second while orders change their inventory
all the time. Every check sees new values, yet the operator writes the
PromDemo's status at most once per `STATUS_WRITE_PERIOD_SECONDS` (10 s); the
last values reach the status once the traffic stops, and then nothing is
written at all while nothing changes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from promdemo_operator.heal.status import STATUS_WRITE_PERIOD_SECONDS
from tests.support.kmock_cluster import (
    PROMDEMOS,
    KmockCluster,
    kmock_cluster,  # noqa: F401 - the fixture
    operator_log_tail,
)
from tests.support.oversold_app import inventory
from tests.support.processes import wait_until

pytestmark = [pytest.mark.operator, pytest.mark.integration]

NS = "demo"
NAME = "busy"
TRAFFIC_SECONDS = 32.0
QUIET_SECONDS = 15.0
#: Plenty of stock (no reset interferes) and orders that finish in milliseconds.
APP_ENV = {
    "PROMDEMO_RESET_TOKEN": "status-writes-token",
    "PROMDEMO_INITIAL_INVENTORY": "100000",
    "PROMDEMO_DEPENDENCY_MIN_SECONDS": "0",
    "PROMDEMO_DEPENDENCY_MAX_SECONDS": "0.005",
    "PROMDEMO_DEPENDENCY_FAILURE_RATE": "0",
    "PROMDEMO_PROCESSING_MIN_SECONDS": "0",
    "PROMDEMO_PROCESSING_MAX_SECONDS": "0.005",
}


def status_patches(cluster: KmockCluster, since: int) -> list[Any]:
    """The operator's writes of the PromDemo's status since API call number `since`."""
    return [
        c
        for c in cluster.api_calls()[since:]
        if c.client == "operator"
        and c.verb in ("patch", "update")
        and c.resource == "promdemos/status"
        and c.name == NAME
    ]


def status_inventory(cluster: KmockCluster) -> dict[str, Any]:
    return ((cluster.get(PROMDEMOS, NS, NAME) or {}).get("status") or {}).get("inventory") or {}


def orders(urls: list[str], stop: threading.Event, placed: list[int]) -> None:
    """An order to each pod every 0.2 s until `stop`: the inventory changes at every check."""
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            for url in urls:
                if client.post(f"{url}/order").status_code == 200:
                    placed[0] += 1
            stop.wait(0.2)


def test_status_is_written_at_most_once_per_period_under_traffic_and_never_at_rest(
    kmock_cluster: KmockCluster,  # noqa: F811
    start_app: Callable[..., Any],
) -> None:
    cluster = kmock_cluster
    op = cluster.start_operator()
    cluster.create(
        {
            "apiVersion": "promdemo.dev/v1alpha1",
            "kind": "PromDemo",
            "metadata": {"name": NAME, "namespace": NS},
            "spec": {"replicas": 2, "autoHeal": {"interval": "1s", "podAccess": "podIP"}},
        }
    )
    pods = {"busy-a": "127.0.0.2", "busy-b": "127.0.0.3"}
    urls = {}
    for pod, host in pods.items():
        _, urls[pod] = start_app(env=APP_ENV, host=host)
        cluster.store_pod(NS, NAME, pod, urls[pod])

    def shows(values: dict[str, int]) -> Callable[[], bool]:
        return lambda: status_inventory(cluster) == values

    try:
        wait_until(shows({p: 100000 for p in pods}), timeout=90, interval=0.2, what="inventory")
    except TimeoutError as e:
        raise AssertionError(f"{e}\n{operator_log_tail(op)}") from e
    checks_before = op.metric_value(
        "promdemo_heal_checks_total", {"namespace": NS, "promdemo": NAME}
    )

    # Traffic: every check (each second) reads new values.
    mark = len(cluster.api_calls())
    stop, placed = threading.Event(), [0]
    worker = threading.Thread(target=orders, args=(list(urls.values()), stop, placed))
    started = time.monotonic()
    worker.start()
    try:
        time.sleep(TRAFFIC_SECONDS)
    finally:
        stop.set()
        worker.join(timeout=30)
    busy = time.monotonic() - started
    under_traffic = status_patches(cluster, mark)
    checks = (
        op.metric_value("promdemo_heal_checks_total", {"namespace": NS, "promdemo": NAME})
        - checks_before
    )
    assert placed[0] > 2 * TRAFFIC_SECONDS, "the orders did not flow"
    assert checks >= TRAFFIC_SECONDS / 2, f"only {checks} checks: {operator_log_tail(op)}"
    # One write right away (the first change after a quiet spell), then one per period.
    bound = 1 + math.floor(busy / STATUS_WRITE_PERIOD_SECONDS)
    assert 2 <= len(under_traffic) <= bound, (
        f"{len(under_traffic)} status writes in {busy:.1f}s of traffic and {checks:g} checks"
        f" (at most {bound} wanted)"
    )

    # The last values arrive within a period (and a check) of the traffic's end...
    final = {pod: inventory(url) for pod, url in urls.items()}
    wait_until(
        shows(final),
        timeout=STATUS_WRITE_PERIOD_SECONDS + 10,
        interval=0.2,
        what=f"status.inventory {final} after the traffic",
    )
    # ... and then nothing changes, so nothing is written.
    mark = len(cluster.api_calls())
    time.sleep(QUIET_SECONDS)
    writes = [
        c
        for c in cluster.api_calls()[mark:]
        if c.client == "operator" and c.verb not in ("get", "list", "watch")
    ]
    assert writes == [], f"API writes at rest: {writes}"
    assert op.process.alive(), operator_log_tail(op)
