"""Who may reset: the policy chosen at start-up, and the line that says which it is."""

from __future__ import annotations

import pytest
from flask import Flask
from prometheus_client import CollectorRegistry

from promdemo_app.reset import (
    EXPECTED_POD_UID_HEADER,
    POD_UID_HEADER,
    ResetPolicy,
    describe_reset_policy,
    is_loopback,
    reset_policy,
)
from promdemo_app.settings import Settings, SettingsError, load_settings
from promdemo_app.web import create_app


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("shop.example", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("settings", "policy", "says"),
    [
        (Settings(reset_token="s3cret-token"), ResetPolicy.TOKEN, "needs the reset token"),
        (
            Settings(host="127.0.0.1", reset_token="s3cret-token"),
            ResetPolicy.TOKEN,
            "needs the reset token",
        ),
        (Settings(host="127.0.0.1"), ResetPolicy.OPEN_ON_LOOPBACK, "open without a token"),
        (Settings(reset_open=True), ResetPolicy.OPEN_BY_SETTING, "OPEN to anyone"),
        (Settings(), ResetPolicy.DISABLED, "disabled (answers 403)"),
    ],
)
def test_policy_and_its_start_up_line(settings: Settings, policy: ResetPolicy, says: str) -> None:
    assert reset_policy(settings) is policy
    line = describe_reset_policy(settings)
    assert says in line
    assert "\n" not in line
    # The token itself is never logged.
    assert "s3cret-token" not in line


# -- the pod-UID guard: a reset meant for another pod is refused -----------------

UID_A = "0b6c7a0e-aaaa-4c36-9d43-1f2a3b4c5d6e"
UID_B = "5f1e2d3c-bbbb-4a9b-8c7d-6e5f4a3b2c1d"


def pod_app(uid: str) -> Flask:
    settings = Settings(host="127.0.0.1", simulation=False, pod_uid=uid)
    return create_app(settings, CollectorRegistry())


def test_metrics_answer_names_the_pod() -> None:
    client = pod_app(UID_B).test_client()
    assert client.get("/metrics").headers[POD_UID_HEADER] == UID_B
    filtered = client.get("/metrics?name[]=product_inventory")
    assert filtered.headers[POD_UID_HEADER] == UID_B
    # Outside Kubernetes there is no UID, and no header.
    assert POD_UID_HEADER not in pod_app("").test_client().get("/metrics").headers


def test_a_reset_meant_for_another_pod_is_refused_409_and_resets_nothing() -> None:
    app = pod_app(UID_B)
    client = app.test_client()
    client.post("/order")
    response = client.post("/inventory/reset", headers={EXPECTED_POD_UID_HEADER: UID_A})
    assert response.status_code == 409
    body = response.get_json()
    assert "another pod" in body["error"]
    assert (body["expected_pod_uid"], body["pod_uid"]) == (UID_A, UID_B)
    assert app.extensions["promdemo"].inventory.level == 99
    registry = app.extensions["promdemo"].registry
    assert registry.get_sample_value("inventory_resets_total") == 0
    labels = {"method": "POST", "route": "/inventory/reset", "status": "409"}
    assert registry.get_sample_value("http_requests_total", labels) == 1


def test_a_huge_expected_uid_is_refused_without_being_echoed() -> None:
    client = pod_app(UID_B).test_client()
    response = client.post("/inventory/reset", headers={EXPECTED_POD_UID_HEADER: "x" * 4000})
    assert response.status_code == 409
    assert len(response.get_json()["expected_pod_uid"]) <= len(UID_B) + 8


@pytest.mark.parametrize(
    ("own", "expected"),
    [(UID_B, UID_B), (UID_B, ""), ("", UID_A)],
    ids=["same-pod", "no-expectation", "pod-without-uid"],
)
def test_a_reset_for_this_pod_or_without_a_uid_goes_through(own: str, expected: str) -> None:
    app = pod_app(own)
    client = app.test_client()
    client.post("/order")
    headers = {EXPECTED_POD_UID_HEADER: expected} if expected else {}
    assert client.post("/inventory/reset", headers=headers).get_json() == {"inventory": 100}
    assert app.extensions["promdemo"].inventory.level == 100


def test_pod_uid_setting_is_bounded() -> None:
    assert load_settings({"PROMDEMO_POD_UID": f" {UID_A} "}).pod_uid == UID_A
    assert load_settings({}).pod_uid == ""
    for bad in ("x" * 129, "a b", "uid\x00"):
        with pytest.raises(SettingsError, match="PROMDEMO_POD_UID"):
            load_settings({"PROMDEMO_POD_UID": bad})
