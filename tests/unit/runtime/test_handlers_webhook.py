"""The Alertmanager receiver (runtime/handlers/webhook.py): alert → heal loop, answers, token.

Large and hostile notifications: test_handlers_webhook_batches.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from promdemo_operator.heal.alertmanager import AlertRef, parse_payload
from promdemo_operator.heal.engine import PodTarget
from promdemo_operator.runtime.handlers.webhook import (
    AlertReceiver,
    AmbiguousAlert,
    WebhookServer,
    bearer_credentials,
    find_loop,
    webhook_token,
)
from tests.support.alertmanager_payload import PAYLOAD


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
