"""Plain Prometheus and Alertmanager configurations (no prometheus-operator).

Used by `promdemo local` and by the tests: scrape a list of `host:port`
targets as one job, load the rules file from `rules.rules_file(...)`, send
alerts to one Alertmanager; and an Alertmanager that posts every alert to one
webhook (the operator's receiver, or a test's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from promdemo_operator.core.duration import parse_duration

DEFAULT_JOB = "promdemo"


def prometheus_config(
    targets: Sequence[str],
    *,
    rule_files: Sequence[str] = (),
    alertmanager: str | None = None,
    scrape_interval: str = "15s",
    evaluation_interval: str = "15s",
    scrape_timeout: str | None = None,
    job: str = DEFAULT_JOB,
    metrics_path: str = "/metrics",
    external_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A prometheus.yml as a dict: one scrape job `job` over `targets` (`host:port`).

    `alertmanager` is `host:port` (or `http://host:port`) of an Alertmanager, or
    None for none. `scrape_timeout` defaults to the scrape interval when that is
    shorter than Prometheus's 10s default (a timeout longer than the interval is
    a configuration error). Durations are read by `duration.parse_duration`; a bad
    one raises its DurationError (a ValueError) naming the argument.
    """
    # Refuse a bad duration here, with the argument's name, rather than as a
    # Prometheus start-up failure in a log.
    scrape_seconds = parse_duration(scrape_interval, field="scrape_interval")
    parse_duration(evaluation_interval, field="evaluation_interval")
    if scrape_timeout is not None:
        parse_duration(scrape_timeout, field="scrape_timeout")
    global_: dict[str, Any] = {
        "scrape_interval": scrape_interval,
        "evaluation_interval": evaluation_interval,
    }
    if scrape_timeout is None and scrape_seconds < 10:
        scrape_timeout = scrape_interval
    if scrape_timeout is not None:
        global_["scrape_timeout"] = scrape_timeout
    if external_labels:
        global_["external_labels"] = dict(external_labels)
    config: dict[str, Any] = {
        "global": global_,
        "rule_files": list(rule_files),
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": metrics_path,
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }
    if alertmanager:
        scheme, address = _split_url(alertmanager)
        config["alerting"] = {
            "alertmanagers": [{"scheme": scheme, "static_configs": [{"targets": [address]}]}]
        }
    return config


def alertmanager_config(
    webhook_url: str,
    *,
    group_wait: str = "0s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
    group_by: Sequence[str] = ("alertname", "instance"),
    send_resolved: bool = True,
    bearer_token: str | None = None,
    receiver: str = "promdemo-webhook",
) -> dict[str, Any]:
    """An alertmanager.yml as a dict: every alert to one webhook.

    Defaults favour a demo (and tests): `group_wait: 0s` posts an alert as soon
    as it fires, grouped per alert and instance so that one pod's alert is one
    notification. `bearer_token` is sent as `Authorization: Bearer ...`.
    """
    webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": send_resolved}
    if bearer_token is not None:
        webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": bearer_token}}
    return {
        "route": {
            "receiver": receiver,
            "group_by": list(group_by),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [{"name": receiver, "webhook_configs": [webhook]}],
    }


def _split_url(address: str) -> tuple[str, str]:
    for scheme in ("http", "https"):
        prefix = f"{scheme}://"
        if address.startswith(prefix):
            return scheme, address[len(prefix) :].rstrip("/")
    return "http", address
