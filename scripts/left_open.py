"""Emulate Prometheus 3's left-open range selectors in promtool (Prometheus 2.x).

Prometheus 2 selects the samples of `x[5m]` evaluated at t from the closed
interval [t - 5m, t]; Prometheus 3 from the left-open (t - 5m, t]: a sample
exactly at t - 5m no longer counts. promtool's input series sit on a grid
(every `interval`) and rules are evaluated on a grid too, so promtool tests hit
that boundary all the time, while a real Prometheus (scrape and evaluation at
offsets with milliseconds) hardly ever does.

`shorten_ranges(expr)` shortens every range selector and subquery range by
1 ms (`[5m]` -> `[4m59s999ms]`, `[55m:1s]` -> `[54m59s999ms:1s]`): on millisecond
timestamps that is the left-open interval. `left_open_rules(rules_file)` and
`left_open_test(test_file)` apply it to every expression of a rules file and of
a `promtool test rules` file. Used by tests/rules/test_promtool_rules.py and
scripts/alert_timing_table.py, which run everything twice: as written and
left-open.
"""

from __future__ import annotations

import copy
import re
from typing import Any

#: A Prometheus duration, e.g. 5m, 1h30m, 500ms (units as PromQL reads them).
_DURATION = r"(?:\d+(?:ms|[smhdwy]))+"
_RANGE = re.compile(rf"\[\s*({_DURATION})\s*(:\s*(?:{_DURATION})?\s*)?\]")
_PART = re.compile(r"(\d+)(ms|[smhdwy])")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_UNIT_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
    "y": 31_536_000_000,
}


def duration_ms(text: str) -> int:
    """`1h30m` -> 5400000."""
    return sum(int(n) * _UNIT_MS[unit] for n, unit in _PART.findall(text))


def format_ms(total: int) -> str:
    """5399999 -> `1h29m59s999ms` (h, m, s, ms: every Prometheus version reads them)."""
    if total <= 0:
        raise ValueError(f"a range of {total} ms cannot be shortened further")
    parts = []
    for unit in ("h", "m", "s", "ms"):
        value, total = divmod(total, _UNIT_MS[unit])
        if value:
            parts.append(f"{value}{unit}")
    return "".join(parts)


def shorten_ranges(expr: str, by_ms: int = 1) -> str:
    """`expr` with every range selector (and subquery range) `by_ms` shorter.

    String literals (label values, regexes) are left alone; a `[` outside them
    that is not a range is an error, so no range selector is missed.
    """
    out = []
    pos = 0
    for string in _STRING.finditer(expr):
        out.append(_shorten_code(expr[pos : string.start()], by_ms))
        out.append(string.group(0))
        pos = string.end()
    out.append(_shorten_code(expr[pos:], by_ms))
    return "".join(out)


def _shorten_code(code: str, by_ms: int) -> str:
    def replace(match: re.Match[str]) -> str:
        step = match.group(2) or ""
        return f"[{format_ms(duration_ms(match.group(1)) - by_ms)}{step.replace(' ', '')}]"

    result = _RANGE.sub(replace, code)
    leftover = _RANGE.sub("", code)
    if "[" in leftover:
        raise ValueError(f"a range selector not understood in {code!r}")
    return result


def left_open_rules(rules_file: dict[str, Any]) -> dict[str, Any]:
    """A rules file (`groups:`) with every rule's `expr` shortened."""
    result = copy.deepcopy(rules_file)
    for group in result.get("groups", []):
        for rule in group.get("rules", []):
            rule["expr"] = shorten_ranges(str(rule["expr"]))
    return result


def left_open_test(test_file: dict[str, Any]) -> dict[str, Any]:
    """A `promtool test rules` file with every `promql_expr_test` expression shortened."""
    result = copy.deepcopy(test_file)
    for test in result.get("tests", []):
        for expr_test in test.get("promql_expr_test", []):
            expr_test["expr"] = shorten_ranges(str(expr_test["expr"]))
    return result
