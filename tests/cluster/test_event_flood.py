"""A flapping PromDemo does not flood its namespace with Events (the real operator,
installed from install.yaml, against the real control plane).

A pod that goes negative again and again, with `cooldown: 0s`, is reset each time;
each reset used to post an InventoryReset Event of its own. The operator now posts at
most a burst of 10 per PromDemo and reason, then one per 30 s (`runtime/handlers/events.py`).
"""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.support.cluster import condition, get_json, wait
from tests.support.controlplane import ControlPlane
from tests.support.kubelet import Kubelet

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

BURST = 10
REFILL_SECONDS = 30.0
#: Resets driven: well past the burst.
RESETS = 16
#: One unit of stock: 40 concurrent orders all pass the (racy) stock check and take it
#: far below zero, fast; the heal loop checks every second with no cooldown.
FLAPPING_SPEC: dict[str, Any] = {
    "replicas": 1,
    "app": {
        "initialInventory": 1,
        "simulation": {
            "dependencyMinSeconds": 0.2, "dependencyMaxSeconds": 0.3,
            "dependencyFailureRate": 0, "processingMinSeconds": 0.05,
            "processingMaxSeconds": 0.1,
        },
    },
    "autoHeal": {"interval": "1s", "for": "0s", "cooldown": "0s"},
}  # fmt: skip


def resets_of(client: httpx.Client, url: str) -> int:
    """The pod's own count of resets (`inventory_resets_total`)."""
    for line in client.get(f"{url}/metrics").text.splitlines():
        if line.startswith("inventory_resets_total "):
            return int(float(line.split()[1]))
    raise AssertionError("no inventory_resets_total on the pod's /metrics")


def inventory_of(client: httpx.Client, url: str) -> int:
    return int(client.get(f"{url}/inventory").json()["inventory"])


def reset_events(cp: ControlPlane, ns: str) -> list[dict[str, Any]]:
    items = get_json(cp, "events", "-n", ns)["items"]
    return [e for e in items if e.get("reason") == "InventoryReset"
            and (e.get("involvedObject") or {}).get("name") == "shop"]  # fmt: skip


def test_a_flapping_pod_posts_a_bounded_number_of_events(
    operator: ControlPlane, kubelet: Kubelet
) -> None:
    cp = operator
    ns = "flood"
    cp.kubectl("create", "namespace", ns)
    body = {"apiVersion": "promdemo.dev/v1alpha1", "kind": "PromDemo",
            "metadata": {"name": "shop", "namespace": ns}, "spec": FLAPPING_SPEC}  # fmt: skip
    cp.kubectl("apply", "-f", "-", input=json.dumps(body))

    def available() -> bool:
        obj = get_json(cp, "promdemo", "shop", "-n", ns)
        return condition(obj, "Available").get("status") == "True"

    wait(available, "shop Available", kubelet=kubelet)
    secret = get_json(cp, "secret", "shop-reset-token", "-n", ns)
    token = base64.b64decode(secret["data"]["token"]).decode()
    (pod,) = [p for p in get_json(cp, "pods", "-n", ns)["items"]
              if not p["metadata"].get("deletionTimestamp")]  # fmt: skip
    url = f"http://{pod['status']['podIP']}:8080"
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    started = time.monotonic()
    with httpx.Client(timeout=30, limits=limits) as client, ThreadPoolExecutor(40) as pool:
        first = resets_of(client, url)
        deadline = time.monotonic() + 240
        while resets_of(client, url) - first < RESETS:
            assert time.monotonic() < deadline, "the heal loop stopped resetting the pod"
            list(pool.map(lambda _: client.post(f"{url}/order").status_code, range(40)))
            if inventory_of(client, url) == 0:  # sold out exactly: restock, go again
                client.post(f"{url}/inventory/reset", headers={"Authorization": f"Bearer {token}"})
                first -= 1  # not the operator's reset
                continue
            wait(lambda: inventory_of(client, url) >= 0, "the reset", kubelet=kubelet)
        healed = resets_of(client, url) - first
    elapsed = time.monotonic() - started
    # kopf posts Events in the background: give the last ones time to arrive.
    time.sleep(3)
    posted = len(reset_events(cp, ns))
    allowed = BURST + int(elapsed / REFILL_SECONDS) + 1
    assert healed >= RESETS
    assert 0 < posted <= allowed, f"{posted} InventoryReset Events for {healed} resets"
    assert posted < healed
