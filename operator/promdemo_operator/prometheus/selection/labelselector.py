"""Kubernetes label selectors (`metav1.LabelSelector`) as prometheus-operator evaluates them.

`LabelSelector.parse(raw)` reads a selector as it appears in an object
(`{matchLabels: ..., matchExpressions: [...]}`), with the semantics of
apimachinery's `LabelSelectorAsSelector`, which prometheus-operator calls:

- `None` (the field is absent or null) selects **nothing**;
- `{}` (no matchLabels, no matchExpressions) selects **everything**;
- otherwise every requirement must hold (AND): `matchLabels` `k: v` is `k = v`;
  `In` needs the key with one of the values, `NotIn` needs the key absent or
  with none of them, `Exists` / `DoesNotExist` test the key only;
- an unknown operator, `In`/`NotIn` without values, `Exists`/`DoesNotExist`
  with values, or a key/value Kubernetes would refuse is an error
  (`SelectorError`): the operator fails to convert such a selector.

`LabelSelector.plan(labels, fixed=...)` answers the inverse question: which
labels would have to be added (or removed) so that the selector matches,
without touching the keys in `fixed` (labels another party owns).

Plain Python: no kopf, no kubernetes client.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from promdemo_operator.core.spec import LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN

__all__ = [
    "OPERATORS",
    "LabelPlan",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "format_labels",
]

#: The operators of `matchExpressions` (metav1.LabelSelectorOperator).
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")

_KEY_RE = re.compile(LABEL_KEY_PATTERN)
_VALUE_RE = re.compile(LABEL_VALUE_PATTERN)


class SelectorError(ValueError):
    """A selector Kubernetes (and so prometheus-operator) cannot convert; one-line message."""


def _check_key(key: Any, where: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise SelectorError(f"{where}: {key!r} is not a valid label key")
    prefix, _, name = key.rpartition("/")
    if len(name) > 63 or len(prefix) > 253:
        raise SelectorError(f"{where}: label key {key!r} is too long")
    return key


def _check_value(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SelectorError(f"{where}: label value {value!r} must be a string")
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise SelectorError(f"{where}: {value!r} is not a valid label value")
    return value


@dataclass(frozen=True)
class Requirement:
    """One condition on one label key. A matchLabels entry is `In` with one value."""

    key: str
    operator: str  # one of OPERATORS
    values: tuple[str, ...] = ()
    from_match_labels: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        """apimachinery's labels.Requirement.Matches for the four selector operators."""
        present = self.key in labels
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            return not present or labels[self.key] not in self.values
        if self.operator == "Exists":
            return present
        return not present  # DoesNotExist

    def __str__(self) -> str:
        """kubectl's form: `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`."""
        if self.operator == "In" and len(self.values) == 1:
            return f"{self.key}={self.values[0]}"
        if self.operator in ("In", "NotIn"):
            return f"{self.key} {self.operator.lower()} ({','.join(self.values)})"
        return self.key if self.operator == "Exists" else f"!{self.key}"


@dataclass(frozen=True)
class LabelPlan:
    """How to make a selector match: labels to set and keys to remove, or why not.

    `blockers` are one-line reasons the selector cannot match by changing the
    free labels alone (a requirement on a fixed key, contradictory
    requirements, a key that needs a value no one can choose).
    """

    add: Mapping[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    blockers: tuple[str, ...] = ()

    @property
    def possible(self) -> bool:
        return not self.blockers

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove and not self.blockers


@dataclass(frozen=True)
class LabelSelector:
    """A parsed selector. `nothing` is a nil selector; no requirements is `{}` (everything)."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    @classmethod
    def parse(cls, raw: Any, *, where: str = "selector") -> LabelSelector:
        """The selector `raw` (a dict; None is nil); SelectorError when Kubernetes refuses it."""
        if raw is None:
            return cls(nothing=True)
        if not isinstance(raw, Mapping):
            raise SelectorError(f"{where}: expected an object, got {type(raw).__name__}")
        unknown = sorted(set(raw) - {"matchLabels", "matchExpressions"})
        if unknown:
            raise SelectorError(f"{where}: unknown field {unknown[0]!r}")
        requirements: list[Requirement] = []
        match_labels = raw.get("matchLabels") or {}
        if not isinstance(match_labels, Mapping):
            raise SelectorError(f"{where}.matchLabels: expected an object")
        for key, value in match_labels.items():
            here = f"{where}.matchLabels"
            requirements.append(
                Requirement(
                    _check_key(key, here),
                    "In",
                    (_check_value(value, f"{here}[{key!r}]"),),
                    from_match_labels=True,
                )
            )
        expressions = raw.get("matchExpressions") or []
        if not isinstance(expressions, list):
            raise SelectorError(f"{where}.matchExpressions: expected a list")
        for i, expr in enumerate(expressions):
            requirements.append(_expression(expr, f"{where}.matchExpressions[{i}]"))
        return cls(tuple(requirements))

    @property
    def everything(self) -> bool:
        return not self.nothing and not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.nothing:
            return False
        return all(r.matches(labels) for r in self.requirements)

    def unmet(self, labels: Mapping[str, str]) -> list[Requirement]:
        """The requirements `labels` fail (empty for a nil selector: it has none to fail)."""
        return [r for r in self.requirements if not r.matches(labels)]

    def __str__(self) -> str:
        if self.nothing:
            return "<nothing>"
        if not self.requirements:
            return "<everything>"
        return ",".join(str(r) for r in self.requirements)

    def plan(self, labels: Mapping[str, str], *, fixed: Iterable[str] = ()) -> LabelPlan:
        """The least change to `labels` that makes this selector match.

        Keys in `fixed` cannot change. A required value is the first value of the
        first `In` (matchLabels first) that every other requirement on the key
        allows; a key that only has to exist gets no invented value (a blocker).
        A nil selector matches nothing whatever the labels: a blocker.
        """
        if self.nothing:
            return LabelPlan(blockers=("the selector is not set: it selects nothing",))
        fixed_keys = set(fixed)
        add: dict[str, str] = {}
        remove: list[str] = []
        blockers: list[str] = []
        by_key: dict[str, list[Requirement]] = {}
        for requirement in self.requirements:
            by_key.setdefault(requirement.key, []).append(requirement)
        for key, reqs in by_key.items():
            if all(r.matches(labels) for r in reqs):
                continue
            needs = ", ".join(str(r) for r in reqs)
            if key in fixed_keys:
                have = f"{key}={labels[key]}" if key in labels else f"no label {key}"
                blockers.append(f"needs {needs}, but {have} cannot change")
                continue
            must_exist = any(r.operator in ("In", "Exists") for r in reqs)
            must_not_exist = any(r.operator == "DoesNotExist" for r in reqs)
            if must_exist and must_not_exist:
                blockers.append(f"needs {needs}: no label can meet both")
                continue
            if must_not_exist or not must_exist:
                # DoesNotExist, or only NotIn failing: the label's value is refused.
                remove.append(key)
                continue
            value = _value_for(reqs)
            if value is None:
                allowed = [r for r in reqs if r.operator == "In"]
                if allowed:
                    blockers.append(f"needs {needs}: no value meets all of them")
                else:
                    blockers.append(f"needs a label {key} with a value of your choice ({needs})")
                continue
            add[key] = value
        return LabelPlan(add=add, remove=tuple(remove), blockers=tuple(blockers))


def _expression(expr: Any, where: str) -> Requirement:
    if not isinstance(expr, Mapping):
        raise SelectorError(f"{where}: expected an object")
    key = _check_key(expr.get("key"), f"{where}.key")
    operator = expr.get("operator")
    if operator not in OPERATORS:
        raise SelectorError(f"{where}.operator: {operator!r} is not a label selector operator")
    values = expr.get("values") or []
    if not isinstance(values, list):
        raise SelectorError(f"{where}.values: expected a list")
    checked = tuple(_check_value(v, f"{where}.values") for v in values)
    if operator in ("In", "NotIn") and not checked:
        raise SelectorError(f"{where}: {operator} needs at least one value")
    if operator in ("Exists", "DoesNotExist") and checked:
        raise SelectorError(f"{where}: {operator} takes no values")
    return Requirement(key, operator, checked)


def _value_for(reqs: list[Requirement]) -> str | None:
    """A value meeting every In and NotIn of one key, or None."""
    allowed: list[str] | None = None
    for r in sorted(reqs, key=lambda r: not r.from_match_labels):
        if r.operator == "In":
            allowed = list(r.values) if allowed is None else [v for v in allowed if v in r.values]
    if allowed is None:
        return None
    refused = {v for r in reqs if r.operator == "NotIn" for v in r.values}
    for value in allowed:
        if value not in refused:
            return value
    return None


def format_labels(labels: Mapping[str, str]) -> str:
    """`{release: kps}`: labels as YAML flow (quoted where YAML would read another type)."""
    import yaml

    if not labels:
        return "{}"
    text = yaml.safe_dump(dict(labels), default_flow_style=True, sort_keys=False, width=10_000)
    return text.strip()
