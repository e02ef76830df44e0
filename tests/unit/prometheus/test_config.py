"""promdemo_operator.prometheus.config: Prometheus and Alertmanager configurations."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from promdemo_operator.core.duration import DurationError
from promdemo_operator.prometheus.config import alertmanager_config, prometheus_config
from tests.support.tools import require_binary


def test_prometheus_config_shape() -> None:
    config = prometheus_config(
        ["127.0.0.1:8080", "127.0.0.1:8081"],
        rule_files=["/tmp/rules.yml"],
        alertmanager="http://127.0.0.1:9093/",
        scrape_interval="1s",
        evaluation_interval="1s",
    )
    assert config["global"] == {
        "scrape_interval": "1s",
        "evaluation_interval": "1s",
        "scrape_timeout": "1s",
    }
    assert config["rule_files"] == ["/tmp/rules.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "promdemo"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8080", "127.0.0.1:8081"]}]
    (am,) = config["alerting"]["alertmanagers"]
    assert am == {"scheme": "http", "static_configs": [{"targets": ["127.0.0.1:9093"]}]}


def test_defaults_and_no_alertmanager() -> None:
    config = prometheus_config(["a:1"], job="shop")
    assert "alerting" not in config
    assert "scrape_timeout" not in config["global"]  # 15s interval: Prometheus's 10s default
    assert config["scrape_configs"][0]["job_name"] == "shop"


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("scrape_interval", "1 second"),
        ("evaluation_interval", "30s1m"),
        ("scrape_timeout", "1d"),
        ("scrape_interval", "9999999999h"),
    ],
)
def test_a_bad_duration_is_refused_naming_the_argument(argument: str, value: str) -> None:
    """One duration syntax (core/duration.py) for the spec, the CLI and this config."""
    with pytest.raises(ValueError, match=f"^{argument}: ") as caught:
        prometheus_config(["a:1"], **{argument: value})
    assert isinstance(caught.value, DurationError)


def test_alertmanager_config_shape() -> None:
    config = alertmanager_config("http://127.0.0.1:8082/alertmanager", bearer_token="t0k")
    assert config["route"]["group_wait"] == "0s"
    assert config["route"]["group_by"] == ["alertname", "instance"]
    (receiver,) = config["receivers"]
    (hook,) = receiver["webhook_configs"]
    assert hook["url"] == "http://127.0.0.1:8082/alertmanager"
    assert hook["send_resolved"] is True
    assert hook["http_config"]["authorization"] == {"type": "Bearer", "credentials": "t0k"}


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    rules = tmp_path / "rules.yml"
    rules.write_text("groups: []\n")
    path = tmp_path / "prometheus.yml"
    config = prometheus_config(
        ["127.0.0.1:8080"], rule_files=[str(rules)], alertmanager="127.0.0.1:9093"
    )
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_accepts_the_alertmanager_config(tmp_path: Path) -> None:
    amtool = require_binary("amtool")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(alertmanager_config("http://127.0.0.1:1/x", bearer_token="t")))
    result = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
