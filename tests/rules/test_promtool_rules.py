"""Run promtool's rule unit tests (tests/rules/*.test.yml) against the rules rules.py renders now.

The rules files are never checked in: each is generated from `rules_file(...)`
into tmp_path next to a copy of the test files, so the tests cannot drift from
promdemo_operator.rules. A promtool failure fails pytest with promtool's output.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from promdemo_operator.rules import rule_groups, rules_file
from promdemo_operator.spec import parse_spec
from tests.support.tools import require_binary

HERE = Path(__file__).resolve().parent
TEST_FILES = sorted(HERE.glob("*.test.yml"))

#: rules file name (as the test files' rule_files name it) -> rules_file(...) arguments
RULESETS: dict[str, dict[str, Any]] = {
    "rules-default.yml": {"monitoring": {}, "selector": {"job": "promdemo"}},
    "rules-operator.yml": {
        "monitoring": {
            "alerts": {
                "inventoryNegative": {"for": "1m"},
                "noSuccessOrders": {"minOrders": 10, "window": "10m", "for": "2m"},
                "highLatencyP95": {"thresholdSeconds": 0.5, "window": "1m", "for": "1m"},
                "lowSuccessRate": {"threshold": 0.99, "window": "2m", "for": "0s"},
                "dependencyErrors": {"ratePerSecond": 1, "window": "1m", "for": "0s"},
            }
        },
        "selector": {"namespace": "shop", "job": "shop"},
        "alert_labels": {"team": "shop"},
    },
    "rules-nso-window1m.yml": {
        "monitoring": {"alerts": {"noSuccessOrders": {"window": "1m"}}},
        "selector": {"job": "promdemo"},
    },
}


def write_rules(directory: Path) -> None:
    for name, kwargs in RULESETS.items():
        args = dict(kwargs)
        monitoring = args.pop("monitoring")
        (directory / name).write_text(
            yaml.safe_dump(
                rules_file(parse_spec({"monitoring": monitoring}).monitoring.alerts, **args)
            )
        )


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def test_test_files_exist_and_name_generated_rules_only() -> None:
    assert TEST_FILES, "no tests/rules/*.test.yml"
    for path in TEST_FILES:
        for rule_file in _load(path)["rule_files"]:
            assert rule_file in RULESETS, f"{path.name} names {rule_file}, not a generated ruleset"
    # generated files are never checked in (they would drift from rules.py)
    assert not list(HERE.glob("rules-*.yml"))


@pytest.mark.parametrize("name", sorted(RULESETS))
def test_promtool_check_rules(tmp_path: Path, name: str) -> None:
    promtool = require_binary("promtool")
    write_rules(tmp_path)
    result = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules(tmp_path: Path, test_file: Path) -> None:
    promtool = require_binary("promtool")
    write_rules(tmp_path)
    shutil.copy(test_file, tmp_path / test_file.name)
    result = subprocess.run(
        [promtool, "test", "rules", test_file.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool test rules {test_file.name}:\n{output}"


def test_every_rule_is_unit_tested() -> None:
    """Each alert fires in some alert_rule_test; each recording rule is queried in one."""
    fired: set[str] = set()
    queried = ""
    for path in TEST_FILES:
        for test in _load(path)["tests"]:
            for alert_test in test.get("alert_rule_test", []):
                if alert_test.get("exp_alerts"):
                    fired.add(alert_test["alertname"])
            for expr_test in test.get("promql_expr_test", []):
                queried += expr_test["expr"] + "\n"
    rules = [
        r
        for g in rule_groups(parse_spec({}).monitoring.alerts, selector={"job": "promdemo"})
        for r in g["rules"]
    ]
    alerts = {r["alert"] for r in rules if "alert" in r}
    records = [r["record"] for r in rules if "record" in r]
    assert alerts - fired == set(), "alerts never seen firing in tests/rules"
    assert [r for r in records if r not in queried] == [], "recording rules never queried"
