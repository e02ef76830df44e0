"""Pods as the heal loop sees them (heal/pods.py): ready, selected, addressed, recorded."""

from __future__ import annotations

from typing import Any

from promdemo_operator.heal.access import API_PROXY, POD_IP
from promdemo_operator.heal.engine import PodTarget
from promdemo_operator.heal.pods import (
    PodRecord,
    app_port,
    is_ready,
    pod_record,
    pod_targets,
    targets_from_records,
)

SELECTOR = {"app.kubernetes.io/name": "promdemo", "app.kubernetes.io/instance": "shop"}


def pod(name: str, *, ip: str | None = "10.0.0.5", ready: str = "True", **extra: Any) -> dict:
    return {
        "metadata": {"name": name, "labels": extra.pop("labels", dict(SELECTOR)), **extra},
        "spec": {
            "containers": [{"name": "app", "ports": [{"name": "http", "containerPort": 9000}]}]
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": ready}],
        },
    }


def test_pod_targets_ready_selected_and_addressed() -> None:
    pods = [
        pod("b"),
        pod("a", ip="10.0.0.6"),
        pod("not-ready", ready="False"),
        pod("no-ip", ip=None),
        pod("other", labels={"app.kubernetes.io/instance": "other"}),
        pod("leaving", deletionTimestamp="2026-01-01T00:00:00Z"),
    ]
    got = pod_targets(pods, selector=SELECTOR, access=POD_IP, namespace="demo")
    assert got == [
        PodTarget("a", "http://10.0.0.6:9000", True),
        PodTarget("b", "http://10.0.0.5:9000", True),
        PodTarget("leaving", None, False),
        PodTarget("no-ip", None, True),
        PodTarget("not-ready", None, False),
    ]
    proxied = pod_targets(
        [pod("a")], selector=SELECTOR, access=API_PROXY, namespace="demo", api_server="https://k"
    )
    assert proxied == [PodTarget("a", "https://k/api/v1/namespaces/demo/pods/a:9000/proxy")]
    assert app_port({"spec": {}}) == 8080
    assert not is_ready({"status": {"phase": "Pending"}})


def test_pod_records_keep_what_a_check_needs() -> None:
    assert pod_record(pod("a", ip="10.0.0.6")) == PodRecord("a", "10.0.0.6", True, 9000)
    assert pod_record(pod("b", ip=None, ready="False")) == PodRecord("b", None, False, 9000)
    records = [pod_record(pod("b")), pod_record(pod("a", ip="10.0.0.6"))]
    assert targets_from_records(records, access=POD_IP, namespace="demo") == [
        PodTarget("a", "http://10.0.0.6:9000", True),
        PodTarget("b", "http://10.0.0.5:9000", True),
    ]


def test_each_target_carries_its_pods_uid() -> None:
    # What the engine checks the answering pod against: an IP outlives its pod.
    record = pod_record(pod("a", uid="0b6c7a0e-1111-4c36-9d43-1f2a3b4c5d6e"))
    assert record.uid == "0b6c7a0e-1111-4c36-9d43-1f2a3b4c5d6e"
    (target,) = targets_from_records([record], access=POD_IP, namespace="demo")
    assert target.uid == record.uid
    assert pod_record(pod("b")).uid == ""
