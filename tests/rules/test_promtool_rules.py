"""Run promtool's rule unit tests (tests/rules/*.test.yml) against the rules rules.py renders now.

The rules files are never checked in: each is generated from `rules_file(...)`
into tmp_path next to a copy of the test files, so the tests cannot drift from
promdemo_operator.rules. A promtool failure fails pytest with promtool's output.

Every test file runs twice (promtool is Prometheus 2):

- `as-written`: Prometheus 2's closed range selectors, [t - 5m, t];
- `left-open`: every range selector of the rules and of the test's expressions
  shortened by 1 ms (scripts/left_open.py), which is Prometheus 3's left-open
  (t - 5m, t] on promtool's millisecond timestamps.

Both must pass. Where the outcome differs by design, because the difference is
part of the lesson, `X.left-open.test.yml` holds Prometheus 3's expectations
and says why; the left-open run uses it instead of `X.test.yml`, and
`test_left_open_variants_state_a_real_difference` checks that each variant is
needed (X fails left-open, the variant fails as written).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from promdemo_operator.rules import rule_groups, rules_file
from promdemo_operator.spec import parse_spec
from tests.support.tools import require_binary

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VARIANT_SUFFIX = ".left-open.test.yml"
ALL_FILES = sorted(HERE.glob("*.test.yml"))
TEST_FILES = [p for p in ALL_FILES if not p.name.endswith(VARIANT_SUFFIX)]
VARIANTS = {
    p.name.removesuffix(VARIANT_SUFFIX) + ".test.yml": p
    for p in ALL_FILES
    if p.name.endswith(VARIANT_SUFFIX)
}
MODES = ("as-written", "left-open")

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


def left_open() -> ModuleType:
    """scripts/left_open.py (scripts/ is not a package)."""
    path = ROOT / "scripts" / "left_open.py"
    spec = importlib.util.spec_from_file_location("left_open", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def write_rules(directory: Path, mode: str = "as-written") -> None:
    for name, kwargs in RULESETS.items():
        args = dict(kwargs)
        monitoring = args.pop("monitoring")
        rules = rules_file(parse_spec({"monitoring": monitoring}).monitoring.alerts, **args)
        if mode == "left-open":
            rules = left_open().left_open_rules(rules)
        (directory / name).write_text(yaml.safe_dump(rules))


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def run_promtool(tmp_path: Path, test_file: Path, mode: str) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` of `test_file` in `mode`, with freshly generated rules."""
    promtool = require_binary("promtool")
    write_rules(tmp_path, mode)
    if mode == "left-open":
        text = yaml.safe_dump(left_open().left_open_test(_load(test_file)), sort_keys=False)
        (tmp_path / test_file.name).write_text(text)
    else:
        shutil.copy(test_file, tmp_path / test_file.name)
    return subprocess.run(
        [promtool, "test", "rules", test_file.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_test_files_exist_and_name_generated_rules_only() -> None:
    assert TEST_FILES, "no tests/rules/*.test.yml"
    for path in ALL_FILES:
        for rule_file in _load(path)["rule_files"]:
            assert rule_file in RULESETS, f"{path.name} names {rule_file}, not a generated ruleset"
    # generated files are never checked in (they would drift from rules.py)
    assert not list(HERE.glob("rules-*.yml"))
    # a variant belongs to a test file
    assert {name for name in VARIANTS} <= {p.name for p in TEST_FILES}


@pytest.mark.parametrize("name", sorted(RULESETS))
@pytest.mark.parametrize("mode", MODES)
def test_promtool_check_rules(tmp_path: Path, name: str, mode: str) -> None:
    promtool = require_binary("promtool")
    write_rules(tmp_path, mode)
    result = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 12 rules found" in result.stdout


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules(tmp_path: Path, test_file: Path, mode: str) -> None:
    run = VARIANTS.get(test_file.name, test_file) if mode == "left-open" else test_file
    result = run_promtool(tmp_path, run, mode)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool test rules {run.name} ({mode}):\n{output}"


@pytest.mark.parametrize("original", sorted(VARIANTS), ids=str)
def test_left_open_variants_state_a_real_difference(tmp_path: Path, original: str) -> None:
    """A variant is only there because Prometheus 3 really computes something else."""
    variant = VARIANTS[original]
    (tmp_path / "p3").mkdir()
    (tmp_path / "p2").mkdir()
    as_p3 = run_promtool(tmp_path / "p3", HERE / original, "left-open")
    assert as_p3.returncode != 0, f"{original} passes left-open: {variant.name} is not needed"
    as_p2 = run_promtool(tmp_path / "p2", variant, "as-written")
    assert as_p2.returncode != 0, f"{variant.name} passes as written: it states no difference"


def test_left_open_rewrites_every_range() -> None:
    lo = left_open()
    assert lo.shorten_ranges('increase(orders_total{result="success"}[30m]) < 100') == (
        'increase(orders_total{result="success"}[29m59s999ms]) < 100'
    )
    assert lo.shorten_ranges("min_over_time(timestamp(ALERTS)[55m:1s])") == (
        "min_over_time(timestamp(ALERTS)[54m59s999ms:1s])"
    )
    assert lo.shorten_ranges("rate(x[1h30m]) / rate(y[5s])") == (
        "rate(x[1h29m59s999ms]) / rate(y[4s999ms])"
    )
    # brackets inside a label value or regex are not ranges
    assert lo.shorten_ranges('x{a=~"[0-9]+"}[1m]') == 'x{a=~"[0-9]+"}[59s999ms]'
    assert lo.shorten_ranges("up == 0") == "up == 0"
    with pytest.raises(ValueError, match="not understood"):
        lo.shorten_ranges("rate(x[$window])")


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
