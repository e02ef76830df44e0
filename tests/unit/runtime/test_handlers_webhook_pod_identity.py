"""Which pod an Alertmanager alert resets: the pod it is about, by what that pod is.

Before: the webhook compared an alert's `instance` with the URL the operator reaches
the pod at. Through the API server's pod proxy (`podAccess: apiProxy`) every pod's
URL starts with the API server's address, so an instance-only alert about a real pod
never matched, and an alert carrying the API server's address matched the first pod
of every PromDemo. And in either mode, an alert about an earlier pod of the same name
(its old IP in `instance`) was taken for the pod that replaced it.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from promdemo_operator.heal.access import API_PROXY, POD_IP
from promdemo_operator.heal.alertmanager import AlertRef
from promdemo_operator.heal.pods import PodRecord
from promdemo_operator.runtime.handlers.heal import HealLoop, parse_auto_heal
from promdemo_operator.runtime.handlers.webhook import AlertReceiver

API_SERVER = "https://10.96.0.1:443"
PODS = {
    ("demo", "shop"): [
        PodRecord("shop-a", "10.244.0.5", True, 8080, uid="uid-a"),
        PodRecord("shop-b", "10.244.0.6", True, 8080, uid="uid-b"),
    ]
}


class Clients:
    """The operator's pod clients, as far as building an engine goes (nothing is sent)."""

    def proxy(self) -> tuple[Any, str]:
        return object(), API_SERVER

    def direct(self) -> Any:
        return object()


class Watched:
    def pods(self, namespace: str, promdemo: str) -> list[PodRecord]:
        return PODS.get((namespace, promdemo), [])


def heal_loop(access: str) -> HealLoop:
    ctx: Any = SimpleNamespace(pod_http=Clients())
    loop = HealLoop("demo", "shop", ctx=ctx, watched=Watched())  # type: ignore[arg-type]
    loop.configure(parse_auto_heal({"autoHeal": {"source": "alertmanager", "podAccess": access}}))
    return loop


def alert(pod: str | None = None, instance: str | None = None) -> AlertRef:
    return AlertRef("firing", "InventoryNegative", "demo", None, pod, instance, None, None)


def found(loop: HealLoop, ref: AlertRef) -> str | None:
    pod = loop.find_pod(ref)
    return pod.name if pod is not None else None


@pytest.mark.parametrize("access", [API_PROXY, POD_IP])
def test_an_instance_only_alert_finds_the_pod_scraped_at_that_address(access: str) -> None:
    loop = heal_loop(access)
    assert found(loop, alert(instance="10.244.0.6:8080")) == "shop-b"
    assert found(loop, alert(instance="10.244.0.5:8080")) == "shop-a"
    assert found(loop, alert(instance="10.244.0.5:9999")) is None  # not the app's port


@pytest.mark.parametrize("access", [API_PROXY, POD_IP])
def test_the_alerts_pod_is_reset_as_that_pod_uid(access: str) -> None:
    # The reset names the pod's UID: should its IP serve another pod by then, that
    # pod refuses (docs/heal.md "Which pod answers").
    target = heal_loop(access).find_pod(alert(pod="shop-b"))
    assert target is not None
    assert (target.name, target.uid) == ("shop-b", "uid-b")


def test_an_alert_naming_the_api_server_matches_no_pod_through_the_proxy() -> None:
    loop = heal_loop(API_PROXY)
    assert loop.pods()[0].base_url.startswith(API_SERVER)  # how the operator reaches them
    assert found(loop, alert(instance="10.96.0.1:443")) is None
    receiver = AlertReceiver("t", loops=lambda: [loop])
    notification = {
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "InventoryNegative",
                    "namespace": "demo",
                    "instance": "10.96.0.1:443",
                },
            }
        ]
    }
    status, answer = asyncio.run(receiver.handle(notification))
    assert (status, answer["alerts"][0]["outcome"]) == (200, "unknown_target")


@pytest.mark.parametrize("access", [API_PROXY, POD_IP])
def test_a_stale_alert_about_a_replaced_pod_of_the_same_name_resets_nothing(access: str) -> None:
    loop = heal_loop(access)
    # shop-a was deleted and made again (a new IP): the alert still names the old one.
    assert found(loop, alert(pod="shop-a", instance="10.244.0.9:8080")) is None
    assert found(loop, alert(pod="shop-a", instance="10.244.0.5:8080")) == "shop-a"
    # An instance that is not an address (scraped some other way) leaves the name to decide.
    assert found(loop, alert(pod="shop-a", instance="shop.demo.svc:8080")) == "shop-a"
    assert found(loop, alert(pod="shop-a")) == "shop-a"
    assert found(loop, alert(pod="shop-c")) is None
