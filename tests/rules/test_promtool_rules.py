"""Run promtool's rule unit tests (tests/rules/*.test.yml) against the rules
core/rules.py renders now.

The rules files are never checked in: each is generated from `rules_file(...)`
into tmp_path next to a copy of the test files, so the tests cannot drift from
promdemo_operator.core.rules. A promtool failure fails pytest with promtool's output.

Every test runs on both promtools, and its id says which
(tests/support/prometheus_versions.py):

- `promtool2`: Debian's promtool 2.42, whose range selectors are closed,
  [t - 5m, t], and whose lookback is closed too;
- `promtool3`: promtool 3.x built from the Go module, left-open: (t - 5m, t],
  for range selectors, subqueries and the 5m lookback of an instant selector.

Both must pass. Where the answer differs, the difference is part of a lesson:
`X.prometheus3.test.yml` holds Prometheus 3's expectations, says why, and names
its lesson on a `# Lesson: docs/<page>.md#<heading>` line;
the promtool3 run uses it instead of `X.test.yml`, and
`test_prometheus3_variants_state_a_real_difference` checks that each variant is
needed (X fails on promtool 3, the variant fails on promtool 2).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from promdemo_operator.core.rules import rule_groups, rules_file
from promdemo_operator.core.spec import parse_spec
from tests.support.prometheus_versions import params, promtool

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VARIANT_SUFFIX = ".prometheus3.test.yml"
ALL_FILES = sorted(HERE.glob("*.test.yml"))
TEST_FILES = [p for p in ALL_FILES if not p.name.endswith(VARIANT_SUFFIX)]
VARIANTS = {
    p.name.removesuffix(VARIANT_SUFFIX) + ".test.yml": p
    for p in ALL_FILES
    if p.name.endswith(VARIANT_SUFFIX)
}
LESSON_LINE = re.compile(r"^# Lesson: (docs/[\w.-]+\.md)#([\w-]+)$", re.MULTILINE)

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
    # the same with keep_firing_for, which promdemo does not render: what a user's
    # PrometheusRule can add (keep-firing.test.yml)
    "rules-nso-window1m-keep5m.yml": {
        "monitoring": {"alerts": {"noSuccessOrders": {"window": "1m"}}},
        "selector": {"job": "promdemo"},
        "keep_firing_for": {"NoSuccessOrders": "5m"},
    },
}


def write_rules(directory: Path) -> None:
    for name, kwargs in RULESETS.items():
        args = dict(kwargs)
        monitoring = args.pop("monitoring")
        keep_firing_for = args.pop("keep_firing_for", {})
        rules = rules_file(parse_spec({"monitoring": monitoring}).monitoring.alerts, **args)
        for group in rules["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") in keep_firing_for:
                    rule["keep_firing_for"] = keep_firing_for[rule["alert"]]
        (directory / name).write_text(yaml.safe_dump(rules))


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def run_promtool(tmp_path: Path, test_file: Path, major: int) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` of `test_file` on promtool `major`, with freshly generated rules."""
    binary = promtool(major)
    write_rules(tmp_path)
    shutil.copy(test_file, tmp_path / test_file.name)
    return subprocess.run(
        [binary, "test", "rules", test_file.name],
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
    # generated files are never checked in (they would drift from core/rules.py)
    assert not list(HERE.glob("rules-*.yml"))
    # a variant belongs to a test file
    assert {name for name in VARIANTS} <= {p.name for p in TEST_FILES}


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the page's headings."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


@pytest.mark.parametrize("name", sorted(VARIANTS), ids=str)
def test_prometheus3_variants_name_their_lesson(name: str) -> None:
    """Both the 2.x file and its 3.x variant name the lesson the difference teaches."""
    for path in (HERE / name, VARIANTS[name]):
        lessons = LESSON_LINE.findall(path.read_text())
        assert lessons, f"{path.name} has no '# Lesson: docs/<page>.md#<heading>' line"
        for page, anchor in lessons:
            assert anchor in _anchors((ROOT / page).read_text(encoding="utf-8")), (
                f"{path.name}: {page} has no heading #{anchor}"
            )


@pytest.mark.parametrize("major", params("promtool"))
@pytest.mark.parametrize("name", sorted(RULESETS))
def test_promtool_check_rules(tmp_path: Path, name: str, major: int) -> None:
    binary = promtool(major)
    write_rules(tmp_path)
    result = subprocess.run(
        [binary, "check", "rules", str(tmp_path / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 12 rules found" in result.stdout


@pytest.mark.parametrize("major", params("promtool"))
@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules(tmp_path: Path, test_file: Path, major: int) -> None:
    run = VARIANTS.get(test_file.name, test_file) if major == 3 else test_file
    result = run_promtool(tmp_path, run, major)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {major} test rules {run.name}:\n{output}"


@pytest.mark.parametrize("original", sorted(VARIANTS), ids=str)
def test_prometheus3_variants_state_a_real_difference(tmp_path: Path, original: str) -> None:
    """A variant is only there because Prometheus 3 really computes something else."""
    variant = VARIANTS[original]
    (tmp_path / "p3").mkdir()
    (tmp_path / "p2").mkdir()
    on_3 = run_promtool(tmp_path / "p3", HERE / original, 3)
    assert on_3.returncode != 0, f"{original} passes on promtool 3: {variant.name} is not needed"
    on_2 = run_promtool(tmp_path / "p2", variant, 2)
    assert on_2.returncode != 0, f"{variant.name} passes on promtool 2: it states no difference"


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
