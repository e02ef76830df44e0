"""The standby's webhook port (leader/standby_webhook.py): what Alertmanager hears when the
Service sends a notification to the replica that does not hold the Lease."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from promdemo_operator.runtime.leader.standby_webhook import StandbyWebhook

NOTIFICATION = json.dumps(
    {"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {
        "alertname": "InventoryNegative", "namespace": "shop", "promdemo": "shop"}}]}
).encode()  # fmt: skip


@pytest.fixture
def standby() -> Iterator[tuple[StandbyWebhook, list[str], list[int]]]:
    holder = ["promdemo-operator-7d9f-abcde"]
    refused: list[int] = []
    server = StandbyWebhook("127.0.0.1", 0, holder=lambda: holder[0],
                            refused=lambda: refused.append(1))  # fmt: skip
    yield server, holder, refused
    server.close()


Answer = tuple[http.client.HTTPResponse, dict, http.client.HTTPConnection]


def post(port: int, body: bytes) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer x"}
    conn.request("POST", "/alertmanager", body=body, headers=headers)
    answer = conn.getresponse()
    return answer, json.loads(answer.read()), conn


def test_a_notification_gets_503_naming_the_leader_so_alertmanager_retries(standby) -> None:
    server, _, refused = standby
    answer, body, conn = post(server.port, NOTIFICATION)
    assert answer.status == 503  # Alertmanager retries a 5xx, never a 4xx
    assert body["leader"] == "promdemo-operator-7d9f-abcde"
    assert "standby" in body["error"]
    assert answer.getheader("Retry-After") == "1"
    assert refused == [1]
    conn.close()


def test_the_answer_closes_the_connection_so_the_retry_is_balanced_again(standby) -> None:
    """A kept-alive connection would carry Alertmanager's retry back to this standby."""
    server, _, _ = standby
    answer, _, conn = post(server.port, NOTIFICATION)
    assert answer.getheader("Connection") == "close"
    assert answer.will_close
    conn.close()


def test_the_leader_named_is_the_current_holder_or_says_there_is_none(standby) -> None:
    server, holder, _ = standby
    holder[0] = "promdemo-operator-7d9f-zzzzz"
    assert post(server.port, NOTIFICATION)[1]["leader"] == "promdemo-operator-7d9f-zzzzz"
    holder[0] = None
    assert post(server.port, NOTIFICATION)[1]["leader"].startswith("nobody")


def test_a_large_body_is_read_before_the_answer(standby) -> None:
    """Unread bytes at close would reset the connection: the client would see no 503."""
    server, _, _ = standby
    answer, _, conn = post(server.port, b"x" * 500_000)
    assert answer.status == 503
    conn.close()


def test_close_frees_the_port_for_the_leaders_receiver() -> None:
    server = StandbyWebhook("127.0.0.1", 0, holder=lambda: None)
    port = server.port
    server.close()
    again = StandbyWebhook("127.0.0.1", port, holder=lambda: None)  # the receiver's bind
    again.close()
