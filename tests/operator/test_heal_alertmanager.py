"""Event-driven healing end to end: real Prometheus and Alertmanager, the real operator.

Prometheus scrapes the app processes with the rules the operator rendered into
its PrometheusRule (labels `namespace`/`pod` added by relabelling, as
prometheus-operator does); Alertmanager posts `InventoryNegative` to the
operator's webhook receiver (bearer token) and, beside it, to a recording sink.
The operator resets the negative pod once; the recorded notification delivered
twice more yields no second reset; a resolved notification does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from promdemo_operator.prometheus.config import alertmanager_config
from tests.operator.test_heal_operator import (
    NAME,
    NS,
    promdemo,
    reset_token,
    status,
    wait_status,
)
from tests.support.kmock_cluster import (
    PROMETHEUSRULES,
    KmockCluster,
    kmock_cluster,  # noqa: F401 - the fixture
    operator_log_tail,
)
from tests.support.oversold_app import APP_ENV, inventory, oversell, resets_counted
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess, wait_http_ok, wait_until
from tests.support.prometheus import Prometheus, WebhookSink
from tests.support.tools import require_binary

pytestmark = [pytest.mark.operator, pytest.mark.integration]

WEBHOOK_TOKEN = "webhook-test-token"


@contextmanager
def prometheus_for(
    workdir: Path, pods: dict[str, str], rules: dict[str, Any], alertmanager: str
) -> Iterator[Prometheus]:
    """Prometheus scraping `pods` (name → host:port) as job NAME with namespace/pod labels."""
    binary = require_binary("prometheus")
    port = free_port()
    rules_path = workdir / "rules.yml"
    rules_path.write_text(yaml.safe_dump(rules))
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_path)],
        "scrape_configs": [
            {
                "job_name": NAME,
                "static_configs": [
                    {"targets": [addr], "labels": {"namespace": NS, "pod": pod}}
                    for pod, addr in pods.items()
                ],
            }
        ],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    proc = ManagedProcess(
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        log_path=workdir / "prometheus.log",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{url}/-/ready", proc=proc, timeout=30)
        prom = Prometheus(url=url, process=proc, config_path=config_path)
        prom.wait_for_up(len(pods), timeout=60)
        yield prom
    finally:
        proc.stop()


@contextmanager
def alertmanager_to(workdir: Path, operator_url: str, sink_url: str) -> Iterator[str]:
    """Alertmanager posting to the operator (with the bearer token) and to a sink."""
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    config = alertmanager_config(operator_url, bearer_token=WEBHOOK_TOKEN)
    config["receivers"][0]["webhook_configs"].append({"url": sink_url, "send_resolved": True})
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(config))
    proc = ManagedProcess(
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        log_path=workdir / "alertmanager.log",
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/-/ready", proc=proc, timeout=30)
        yield f"127.0.0.1:{port}"
    finally:
        proc.stop()


def _alerting_story(workdir: Path, sink: WebhookSink, app_url: str) -> str:
    """What the alerting chain did, for a failure message: the notifications the sink
    got, the app's inventory now, and the warnings Prometheus and Alertmanager logged."""
    got = [
        (a["status"], a["labels"].get("alertname"), a["labels"].get("pod"))
        for p in sink.payloads
        for a in p.get("alerts", [])
    ]
    logs = {
        name: (workdir / name).read_text(errors="replace")[-3000:]
        for name in ("prometheus.log", "alertmanager.log")
        if (workdir / name).exists()
    }
    parts = [f"sink got: {got}", f"inventory of {app_url}: {inventory(app_url)}"]
    parts += [f"{name}:\n{text}" for name, text in logs.items()]
    return "\n".join(parts)


def _arg(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_alertmanager_notification_resets_once(
    kmock_cluster: KmockCluster,  # noqa: F811
    start_app: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = kmock_cluster
    monkeypatch.setenv("PROMDEMO_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
    op = cluster.start_operator()
    webhook = f"http://127.0.0.1:{_arg(op.process.argv, '--webhook-port')}/alertmanager"
    wait_http_ok(webhook.replace("/alertmanager", "/healthz"), proc=op.process, timeout=30)

    cluster.create(
        promdemo(
            {
                "source": "alertmanager",
                "interval": "1s",
                "cooldown": "10m",
                "podAccess": "podIP",
            }
        )
    )
    token = reset_token(cluster)
    wait_until(
        lambda: cluster.get(PROMETHEUSRULES, NS, NAME) is not None,
        timeout=60,
        what="the rendered PrometheusRule",
    )
    rule = cluster.get(PROMETHEUSRULES, NS, NAME)
    assert rule is not None
    rules = {"groups": rule["spec"]["groups"]}

    env = {**APP_ENV, "PROMDEMO_RESET_TOKEN": token}
    _, url_a = start_app(env=env, host="127.0.0.2")
    _, url_b = start_app(env=env, host="127.0.0.3")
    cluster.store_pod(NS, NAME, "shop-a", url_a)
    cluster.store_pod(NS, NAME, "shop-b", url_b)
    wait_status(
        cluster, op, lambda s: set(s.get("inventory") or {}) == {"shop-a", "shop-b"}, "inventory"
    )
    pods = {"shop-a": url_a.removeprefix("http://"), "shop-b": url_b.removeprefix("http://")}

    # Unauthenticated notifications are refused.
    assert httpx.post(webhook, json={"alerts": []}, timeout=10).status_code == 401

    with (
        WebhookSink() as sink,
        alertmanager_to(tmp_path, webhook, sink.url) as am,
        prometheus_for(tmp_path, pods, rules, am),
    ):
        before_a, before_b = resets_counted(url_a), resets_counted(url_b)
        oversell(url_a, token=token)
        healed = wait_status(cluster, op, lambda s: s.get("healCount") == 1, "healCount 1")
        assert healed["lastHeal"]["pod"] == "shop-a"
        assert healed["lastHeal"]["before"] < 0

        def firing_for_a() -> list[dict[str, Any]]:
            return [
                p
                for p in sink.payloads
                for a in p.get("alerts", [])
                if a["status"] == "firing"
                and a["labels"].get("alertname") == "InventoryNegative"
                and a["labels"].get("pod") == "shop-a"
            ]

        wait_until(lambda: firing_for_a(), timeout=60, what="the firing notification at the sink")
        payload = firing_for_a()[0]
        labels = next(a["labels"] for a in payload["alerts"])
        assert labels.get("promdemo") == NAME
        assert labels.get("namespace") == NS

        # The same notification delivered twice more: no second reset.
        headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
        for _ in range(2):
            answer = httpx.post(webhook, json=payload, headers=headers, timeout=30)
            assert answer.status_code == 200, answer.text
            outcomes = {a["outcome"] for a in answer.json()["alerts"]}
            assert outcomes <= {"cooldown", "recovered"}, answer.json()

        # And Alertmanager's own resolved notification changes nothing either. Generous:
        # a send from Prometheus to Alertmanager that is lost on a busy machine is only
        # sent again after Prometheus's resend delay (1m).
        try:
            wait_until(
                lambda: any(
                    a["status"] == "resolved" and a["labels"].get("pod") == "shop-a"
                    for p in sink.payloads
                    for a in p.get("alerts", [])
                ),
                timeout=150,
                what="the resolved notification",
            )
        except TimeoutError as e:
            raise AssertionError(f"{e}\n{_alerting_story(tmp_path, sink, url_a)}") from e

    assert resets_counted(url_a) == before_a + 1, operator_log_tail(op)
    assert resets_counted(url_b) == before_b == 0
    assert inventory(url_b) == 5
    assert status(cluster)["healCount"] == 1
    reset_events = [e for e in cluster.events_for(NS, NAME) if e.get("reason") == "InventoryReset"]
    assert len(reset_events) == 1
    assert "alertmanager" in reset_events[0]["message"]
    assert op.metric_value("promdemo_alertmanager_alerts_total", {"outcome": "reset"}) == 1
