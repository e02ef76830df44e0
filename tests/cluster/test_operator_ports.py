"""The operator's own ports under a flood of idle connections (the real operator,
installed from install.yaml, as its Deployment's pods, against the real control plane).

Before: `/healthz` was kopf's liveness server (an idle connection stayed open an hour,
every one accepted), `/metrics` prometheus_client's server (a thread per connection,
never closed). Now every port closes a connection that sends no complete request
within 15 s and keeps at most 512, the oldest closed first (`runtime/bounded_http.py`), so a
flood never keeps the kubelet's probe or a scrape out. (install.yaml's operator has
no webhook token here, so its webhook port is not open: the same server is tested in
tests/integration/test_webhook_connections.py.)
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.cluster import operator_pods, wait
from tests.support.controlplane import ControlPlane
from tests.support.kubelet import Kubelet
from tests.support.sockets import closed_by_server, many_open_files

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

PORTS = {"metrics": 8080, "health": 8081}
IDLE_CONNECTIONS = 2000  # per port
IDLE_SECONDS = 15.0
#: The kubelet's probe timeout in the issue's measurement; a scrape gets the same.
ANSWER_WITHIN = 2.0


@pytest.fixture
def many_files() -> Iterator[None]:
    """Room for the test's own 4,000 sockets."""
    with many_open_files():
        yield


def leader_ip(cp: ControlPlane) -> str:
    """The pod IP of the operator replica that leads (`promdemo_operator_leader 1`)."""
    for pod in operator_pods(cp):
        ip = pod["status"]["podIP"]
        page = httpx.get(f"http://{ip}:{PORTS['metrics']}/metrics", timeout=5).text
        if "\npromdemo_operator_leader 1.0" in page:
            return ip
    raise AssertionError("no operator pod leads")


def test_idle_floods_neither_starve_health_and_metrics_nor_stay_open(
    operator: ControlPlane, kubelet: Kubelet, many_files: None
) -> None:
    cp = operator
    ip = ""

    def leading() -> bool:
        nonlocal ip
        try:
            ip = leader_ip(cp)
            # kopf runs once the Lease is taken: its start-up opens /healthz.
            httpx.get(f"http://{ip}:{PORTS['health']}/healthz", timeout=5).raise_for_status()
        except (AssertionError, httpx.HTTPError, OSError):
            return False
        return True

    wait(leading, "an operator replica leading, its /healthz open", kubelet=kubelet)
    flood: list[socket.socket] = []
    try:
        for port in PORTS.values():
            for _ in range(IDLE_CONNECTIONS):
                flood.append(socket.create_connection((ip, port), timeout=5))
        opened = time.monotonic()
        # 4,000 idle connections, 2,000 on each port: the probe and a scrape still answer.
        for _ in range(5):
            health = httpx.get(f"http://{ip}:{PORTS['health']}/healthz", timeout=ANSWER_WITHIN)
            assert health.status_code == 200
            page = httpx.get(f"http://{ip}:{PORTS['metrics']}/metrics", timeout=ANSWER_WITHIN)
            assert page.status_code == 200
            assert "promdemo_operator_leader 1.0" in page.text
        # Every idle connection is closed by the operator: over the cap at once (oldest
        # first), the rest once idle for 15 s.
        time.sleep(max(0.0, opened + IDLE_SECONDS + 3 - time.monotonic()))
        still_open = [s for s in flood if not closed_by_server(s)]
        assert not still_open, f"{len(still_open)} of {len(flood)} idle connections still open"
    finally:
        for sock in flood:
            sock.close()
