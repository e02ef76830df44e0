"""Label selectors as apimachinery evaluates them (selection/labelselector)."""

from __future__ import annotations

from typing import Any

import pytest

from promdemo_operator.prometheus.selection import LabelSelector, SelectorError, format_labels


def sel(raw: Any) -> LabelSelector:
    return LabelSelector.parse(raw)


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    body: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        body["values"] = list(values)
    return {"matchExpressions": [body]}


# --------------------------------------------------------------------------- nil and {}


@pytest.mark.parametrize("labels", [{}, {"release": "kps"}, {"a": "b", "c": "d"}])
def test_nil_selects_nothing(labels: dict[str, str]) -> None:
    selector = sel(None)
    assert selector.nothing
    assert not selector.matches(labels)
    assert str(selector) == "<nothing>"


@pytest.mark.parametrize(
    "raw", [{}, {"matchLabels": {}}, {"matchLabels": {}, "matchExpressions": []}]
)
@pytest.mark.parametrize("labels", [{}, {"release": "kps"}])
def test_empty_selects_everything(raw: dict[str, Any], labels: dict[str, str]) -> None:
    selector = sel(raw)
    assert selector.everything
    assert selector.matches(labels)
    assert str(selector) == "<everything>"


# --------------------------------------------------------------------------- requirements


def test_match_labels_needs_every_pair() -> None:
    selector = sel({"matchLabels": {"release": "kps", "team": "a"}})
    assert selector.matches({"release": "kps", "team": "a", "more": "x"})
    assert not selector.matches({"release": "kps"})
    assert not selector.matches({"release": "other", "team": "a"})
    assert str(selector) == "release=kps,team=a"


def test_match_labels_and_expressions_are_anded() -> None:
    selector = sel(
        {
            "matchLabels": {"release": "kps"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}],
        }
    )
    assert selector.matches({"release": "kps", "tier": "gold"})
    assert not selector.matches({"release": "kps", "tier": "silver"})
    assert not selector.matches({"tier": "gold"})


@pytest.mark.parametrize(
    ("labels", "expected"),
    [({"team": "a"}, True), ({"team": "b"}, True), ({"team": "c"}, False), ({}, False)],
)
def test_in(labels: dict[str, str], expected: bool) -> None:
    selector = sel(expr("team", "In", "a", "b"))
    assert selector.matches(labels) is expected
    assert str(selector) == "team in (a,b)"


@pytest.mark.parametrize(
    ("labels", "expected"),
    # NotIn matches an object WITHOUT the label: Kubernetes' rule, easy to forget
    [({"team": "a"}, False), ({"team": "c"}, True), ({}, True)],
)
def test_not_in(labels: dict[str, str], expected: bool) -> None:
    selector = sel(expr("team", "NotIn", "a", "b"))
    assert selector.matches(labels) is expected
    assert str(selector) == "team notin (a,b)"


@pytest.mark.parametrize(
    ("labels", "expected"), [({"team": ""}, True), ({"team": "x"}, True), ({}, False)]
)
def test_exists(labels: dict[str, str], expected: bool) -> None:
    selector = sel(expr("team", "Exists"))
    assert selector.matches(labels) is expected
    assert str(selector) == "team"


@pytest.mark.parametrize(("labels", "expected"), [({"team": "x"}, False), ({}, True)])
def test_does_not_exist(labels: dict[str, str], expected: bool) -> None:
    selector = sel(expr("team", "DoesNotExist"))
    assert selector.matches(labels) is expected
    assert str(selector) == "!team"


def test_unmet_names_the_failing_requirements() -> None:
    selector = sel({"matchLabels": {"release": "kps"}, **expr("team", "Exists")})
    assert [str(r) for r in selector.unmet({"team": "a"})] == ["release=kps"]
    assert [str(r) for r in selector.unmet({})] == ["release=kps", "team"]


# --------------------------------------------------------------------------- invalid


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (expr("team", "Gt", "1"), "'Gt' is not a label selector operator"),
        (expr("team", "in", "a"), "'in' is not a label selector operator"),
        (expr("team", "In"), "In needs at least one value"),
        (expr("team", "NotIn"), "NotIn needs at least one value"),
        (expr("team", "Exists", "a"), "Exists takes no values"),
        (expr("team", "DoesNotExist", "a"), "DoesNotExist takes no values"),
        ({"matchLabels": {"bad key!": "x"}}, "not a valid label key"),
        ({"matchLabels": {"release": 1}}, "must be a string"),
        ({"matchLabels": {"release": "-x"}}, "not a valid label value"),
        ({"matchLabels": {"x" * 64: "v"}}, "too long"),
        ({"matchLabel": {"release": "kps"}}, "unknown field 'matchLabel'"),
        ({"matchExpressions": {"key": "a"}}, "expected a list"),
        ("release=kps", "expected an object"),
    ],
)
def test_selectors_kubernetes_refuses(raw: Any, message: str) -> None:
    with pytest.raises(SelectorError, match=message):
        LabelSelector.parse(raw, where="serviceMonitorSelector")


# --------------------------------------------------------------------------- plan


def test_plan_adds_match_labels() -> None:
    plan = sel({"matchLabels": {"release": "kps"}}).plan({"app": "x"})
    assert dict(plan.add) == {"release": "kps"}
    assert plan.possible
    assert plan.remove == ()


def test_plan_is_empty_when_already_matching() -> None:
    assert sel({"matchLabels": {"release": "kps"}}).plan({"release": "kps"}).empty


def test_plan_picks_the_first_value_every_requirement_allows() -> None:
    raw = {
        "matchExpressions": [
            {"key": "team", "operator": "In", "values": ["a", "b", "c"]},
            {"key": "team", "operator": "NotIn", "values": ["a"]},
        ]
    }
    assert dict(sel(raw).plan({}).add) == {"team": "b"}


def test_plan_prefers_match_labels_value() -> None:
    raw = {"matchLabels": {"team": "c"}, **expr("team", "In", "a", "c")}
    assert dict(sel(raw).plan({}).add) == {"team": "c"}


def test_plan_changes_a_free_label_with_a_wrong_value() -> None:
    plan = sel({"matchLabels": {"release": "kps"}}).plan({"release": "old"})
    assert dict(plan.add) == {"release": "kps"}


def test_plan_removes_a_label_that_must_not_exist_or_has_a_refused_value() -> None:
    assert sel(expr("team", "DoesNotExist")).plan({"team": "a"}).remove == ("team",)
    assert sel(expr("team", "NotIn", "a")).plan({"team": "a"}).remove == ("team",)


def test_plan_cannot_touch_fixed_labels() -> None:
    plan = sel({"matchLabels": {"app.kubernetes.io/name": "other"}}).plan(
        {"app.kubernetes.io/name": "promdemo"}, fixed={"app.kubernetes.io/name"}
    )
    assert not plan.possible
    assert plan.blockers == (
        "needs app.kubernetes.io/name=other, but app.kubernetes.io/name=promdemo cannot change",
    )


def test_plan_does_not_invent_a_value_for_exists() -> None:
    plan = sel(expr("team", "Exists")).plan({})
    assert not plan.possible
    assert "team with a value of your choice" in plan.blockers[0]


def test_plan_refuses_contradictions() -> None:
    contradictory = {
        "matchExpressions": [
            {"key": "team", "operator": "In", "values": ["a"]},
            {"key": "team", "operator": "DoesNotExist"},
        ]
    }
    assert "no label can meet both" in sel(contradictory).plan({}).blockers[0]
    disjoint = {"matchLabels": {"team": "a"}, **expr("team", "NotIn", "a")}
    assert "no value meets all of them" in sel(disjoint).plan({}).blockers[0]


def test_plan_of_nil_selector_is_impossible() -> None:
    assert not sel(None).plan({"release": "kps"}).possible


@pytest.mark.parametrize(
    ("labels", "text"),
    [
        ({"release": "kps"}, "{release: kps}"),
        ({"release": "1", "on": "true"}, "{release: '1', 'on': 'true'}"),
        ({}, "{}"),
    ],
)
def test_format_labels_is_yaml_that_reads_back_as_strings(labels: dict, text: str) -> None:
    import yaml

    assert format_labels(labels) == text
    assert yaml.safe_load(text) == labels
