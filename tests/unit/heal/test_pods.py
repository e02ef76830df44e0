"""Helpers around the engine: pod access, pod records, Alertmanager payloads, the receiver."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import promdemo_operator.runtime.handlers.heal as heal_module
from promdemo_operator.core import spec as spec_mod
from promdemo_operator.heal.access import (
    API_PROXY,
    POD_IP,
    pod_base_url,
    pod_proxy_url,
    resolve_access,
)
from promdemo_operator.heal.alertmanager import (
    AlertRef,
    PayloadError,
    inventory_alerts,
    parse_payload,
    parse_time,
)
from promdemo_operator.heal.engine import PodTarget
from promdemo_operator.heal.pods import (
    PodRecord,
    app_port,
    is_ready,
    pod_record,
    pod_targets,
    targets_from_records,
)
from promdemo_operator.runtime.handlers.heal import first_check_delay, heal_wanted
from promdemo_operator.runtime.handlers.webhook import (
    AlertReceiver,
    AmbiguousAlert,
    WebhookServer,
    bearer_credentials,
    find_loop,
    webhook_token,
)

SELECTOR = {"app.kubernetes.io/name": "promdemo", "app.kubernetes.io/instance": "shop"}


def test_a_heal_loop_only_for_a_valid_name_and_spec_with_auto_heal_on() -> None:
    on = {"autoHeal": {"enabled": True}}
    assert heal_wanted(name="shop", spec=on)
    assert not heal_wanted(name="shop", spec={"autoHeal": {"enabled": False}})
    assert not heal_wanted(name="shop", spec={"autoHeal": {"enabled": True, "interval": "0s"}})
    # A valid Kubernetes name that cannot name the children (a dot, too long): no loop.
    assert not heal_wanted(name="shop.v2", spec=on)
    assert not heal_wanted(name="x" * 64, spec=on)


def test_the_auto_heal_settings_are_parsed_once_per_generation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kopf asks at every event and the loop at every tick: the spec is parsed again
    only when its generation changes (an invalid one is remembered as invalid too)."""
    calls = []
    real = heal_module.parse_auto_heal

    def counting(spec: Any) -> Any:
        calls.append(spec)
        return real(spec)

    monkeypatch.setattr(heal_module, "parse_auto_heal", counting)
    cache = heal_module.AutoHealCache(size=2)
    on, off = {"autoHeal": {"enabled": True}}, {"autoHeal": {"enabled": True, "interval": "0s"}}
    for _ in range(3):
        assert cache.get({"uid": "u1", "generation": 1}, on).enabled
    assert len(calls) == 1
    for _ in range(3):
        with pytest.raises(spec_mod.SpecError):
            cache.get({"uid": "u1", "generation": 2}, off)
    assert len(calls) == 2
    assert cache.get({"uid": "u1", "generation": 3}, on).interval_seconds == 5
    assert len(calls) == 3
    # No uid or generation (a body from elsewhere): parsed every time, nothing kept.
    cache.get({}, on)
    cache.get(None, on)
    assert len(calls) == 5
    # Bounded: a third PromDemo pushes the oldest out.
    cache.get({"uid": "u2", "generation": 1}, on)
    cache.get({"uid": "u3", "generation": 1}, on)
    cache.get({"uid": "u1", "generation": 3}, on)
    assert len(calls) == 8


def test_first_checks_are_spread_over_the_interval() -> None:
    delays = [first_check_delay("demo", f"shop-{i}", 5.0) for i in range(200)]
    assert all(0 <= d < 5.0 for d in delays)
    assert first_check_delay("demo", "shop-1", 5.0) == delays[1], "fixed by the name"
    assert len({round(d, 1) for d in delays}) > 30, "not all at once"


def test_resolve_access() -> None:
    assert resolve_access("auto", {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}) == POD_IP
    assert resolve_access("auto", {}) == API_PROXY
    assert resolve_access(None, {"KUBERNETES_SERVICE_HOST": ""}) == API_PROXY
    assert resolve_access("apiProxy", {"KUBERNETES_SERVICE_HOST": "x"}) == API_PROXY
    with pytest.raises(ValueError, match="podAccess"):
        resolve_access("nodePort", {})


def test_urls() -> None:
    assert pod_proxy_url("https://127.0.0.1:6443/", "demo", "shop-a", 8080) == (
        "https://127.0.0.1:6443/api/v1/namespaces/demo/pods/shop-a:8080/proxy"
    )
    assert pod_base_url(POD_IP, namespace="d", pod="p", pod_ip="10.1.2.3") == "http://10.1.2.3:8080"
    assert pod_base_url(POD_IP, namespace="d", pod="p", pod_ip="fd00::1", port=81) == (
        "http://[fd00::1]:81"
    )
    assert pod_base_url(POD_IP, namespace="d", pod="p", pod_ip=None) is None


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


PAYLOAD = {
    "version": "4",
    "status": "firing",
    "receiver": "promdemo",
    "groupKey": '{}:{alertname="InventoryNegative"}',
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "InventoryNegative",
                "namespace": "demo",
                "pod": "shop-a",
                "promdemo": "shop",
                "instance": "10.0.0.5:8080",
            },
            "startsAt": "2026-11-22T02:47:53.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "abc",
        },
        {"status": "firing", "labels": {"alertname": "HighLatencyP95", "job": "shop"}},
        {
            "status": "resolved",
            "labels": {"alertname": "InventoryNegative", "instance": "10.0.0.6:8080"},
        },
    ],
}


def test_parse_payload() -> None:
    refs = inventory_alerts(parse_payload(PAYLOAD))
    assert [(r.status, r.pod, r.instance) for r in refs] == [
        ("firing", "shop-a", "10.0.0.5:8080"),
        ("resolved", None, "10.0.0.6:8080"),
    ]
    assert refs[0].promdemo == "shop"
    assert refs[0].starts_at == pytest.approx(parse_time("2026-11-22T02:47:53.123456Z"))
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("2026-11-22T02:47:53+01:00") is not None
    for bad in ([], {"alerts": "x"}, {"alerts": [1]}, {"alerts": [{"labels": 3}]}):
        with pytest.raises(PayloadError):
            parse_payload(bad)


class FakeLoop:
    """A heal loop as the receiver sees it: its PromDemo, its pods (in memory), heal_alert."""

    def __init__(self, namespace: str, name: str, pods: list[PodTarget], outcome: str) -> None:
        self.namespace, self.name, self.pods, self.outcome = namespace, name, pods, outcome
        self.healed: list[AlertRef] = []

    def find_pod(self, ref: AlertRef) -> PodTarget | None:
        for p in self.pods:
            if p.name == ref.pod or (not ref.pod and p.base_url == f"http://{ref.instance}"):
                return p
        return None

    async def heal_alert(self, ref: AlertRef) -> str:
        self.healed.append(ref)
        return self.outcome


def test_find_loop_by_labels() -> None:
    a = FakeLoop("demo", "shop", [PodTarget("shop-a", "http://10.0.0.5:8080")], "reset")
    b = FakeLoop("demo", "other", [PodTarget("other-a", "http://10.0.0.9:8080")], "reset")
    ref = parse_payload(PAYLOAD)[0]
    assert find_loop(ref, [b, a]) is a
    by_instance = AlertRef(
        "firing", "InventoryNegative", None, None, None, "10.0.0.9:8080", None, None
    )
    assert find_loop(by_instance, [a, b]) is b
    wrong_ns = AlertRef("firing", "InventoryNegative", "prod", "shop", "shop-a", None, None, None)
    assert find_loop(wrong_ns, [a, b]) is None


def test_an_alert_without_namespace_matching_two_namespaces_is_ambiguous() -> None:
    demo = FakeLoop("demo", "shop", [PodTarget("shop-a", "http://10.0.0.5:8080")], "reset")
    prod = FakeLoop("prod", "shop", [PodTarget("shop-a", "http://10.0.1.5:8080")], "reset")
    no_ns = AlertRef("firing", "InventoryNegative", None, "shop", "shop-a", None, None, None)
    with pytest.raises(AmbiguousAlert, match="demo/shop, prod/shop"):
        find_loop(no_ns, [demo, prod])
    by_pod = AlertRef("firing", "InventoryNegative", None, None, "shop-a", None, None, None)
    with pytest.raises(AmbiguousAlert):
        find_loop(by_pod, [demo, prod])
    # With the namespace, or when only one namespace has it, it is not.
    assert find_loop(AlertRef("firing", "InventoryNegative", "prod", "shop", "shop-a",
                              None, None, None), [demo, prod]) is prod  # fmt: skip
    assert find_loop(no_ns, [demo]) is demo

    receiver = AlertReceiver("t", loops=lambda: [demo, prod])
    alert = {"status": "firing", "labels": {"alertname": "InventoryNegative", "promdemo": "shop",
                                            "pod": "shop-a"}}  # fmt: skip
    code, answer = asyncio.run(receiver.handle({"alerts": [alert]}))
    assert (code, answer["alerts"][0]["outcome"]) == (200, "ambiguous")
    assert demo.healed == prod.healed == [], "neither tenant's pod was reset"


@pytest.mark.parametrize(
    ("outcome", "status"), [("reset", 200), ("cooldown", 200), ("failed", 500)]
)
def test_receiver_heals_firing_ignores_resolved(outcome: str, status: int) -> None:
    loop = FakeLoop("demo", "shop", [PodTarget("shop-a", "http://10.0.0.5:8080")], outcome)
    receiver = AlertReceiver("t", loops=lambda: [loop])
    code, answer = asyncio.run(receiver.handle(PAYLOAD))
    assert code == status
    assert [a["outcome"] for a in answer["alerts"]] == [outcome, "resolved"]
    assert [r.pod for r in loop.healed] == ["shop-a"]


def test_receiver_unknown_target() -> None:
    loop = FakeLoop("demo", "shop", [], "reset")
    receiver = AlertReceiver("t", loops=lambda: [loop])
    alert = {"status": "firing", "labels": {"alertname": "InventoryNegative", "pod": "gone"}}
    code, answer = asyncio.run(receiver.handle({"alerts": [alert]}))
    assert code == 200
    assert answer["alerts"][0]["outcome"] == "unknown_target"
    assert loop.healed == []
    assert asyncio.run(receiver.handle({"nope": 1}))[0] == 400


def test_bearer_scheme_is_case_insensitive() -> None:
    assert bearer_credentials("Bearer abc") == "abc"
    assert bearer_credentials("bearer abc") == "abc"
    assert bearer_credentials("BEARER   abc ") == "abc"
    assert bearer_credentials("Basic abc") is None
    assert bearer_credentials("Bearer") is None
    assert bearer_credentials("") is None


@pytest.fixture
def receiver_url() -> Iterator[str]:
    """The receiver over HTTP on a free loopback port (token "t"), with one loop."""
    loop_ = asyncio.new_event_loop()
    fake = FakeLoop("demo", "shop", [PodTarget("shop-a", "http://10.0.0.5:8080")], "reset")
    server = WebhookServer(AlertReceiver("t", loops=lambda: [fake]), "127.0.0.1", 0)
    loop_.run_until_complete(server.start())
    thread = threading.Thread(target=loop_.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}/alertmanager"
    asyncio.run_coroutine_threadsafe(server.stop(), loop_).result(timeout=10)
    loop_.call_soon_threadsafe(loop_.stop)
    thread.join(timeout=10)
    loop_.close()


def test_receiver_answers_json_to_every_bad_request(receiver_url: str) -> None:
    def post(body: bytes, auth: str = "Bearer t") -> httpx.Response:
        return httpx.post(receiver_url, content=body, headers={"Authorization": auth}, timeout=10)

    deep = post(b"[" * 100_000 + b"]" * 100_000)
    assert deep.status_code == 400
    assert "nested" in deep.json()["error"]
    assert post(b"{not json").json() == {"error": "body is not JSON"}
    too_big = post(b" " * (2 * 1024 * 1024))
    assert too_big.status_code == 413
    assert "error" in too_big.json()
    assert post(b"{}", auth="Bearer wrong").status_code == 401
    assert post(b"{}", auth="bearer t").status_code == 400  # authorized; not a notification
    ok = post(json.dumps(PAYLOAD).encode(), auth="BEARER t")
    assert ok.status_code == 200
    assert [a["outcome"] for a in ok.json()["alerts"]] == ["reset", "resolved"]
    missing = httpx.get(receiver_url.replace("/alertmanager", "/nothing"), timeout=10)
    assert missing.status_code == 404
    assert "error" in missing.json()


def test_webhook_token_from_env_or_file(tmp_path: Any) -> None:
    assert webhook_token({"PROMDEMO_WEBHOOK_TOKEN": " abc "}) == "abc"
    f = tmp_path / "token"
    f.write_text("from-file\n")
    assert webhook_token({"PROMDEMO_WEBHOOK_TOKEN_FILE": str(f)}) == "from-file"
    assert webhook_token({}) is None
