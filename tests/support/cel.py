"""The CRD's `x-kubernetes-validations` rules, evaluated with cel-python as the API server
evaluates them with CEL: each rule on the node it sits on, with that node's value as `self`.

Shared by the CRD tests (tests/support/crd.py) and the emulated API server
(tests/support/api_schemas.py), so both refuse what a real API server refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import celpy

_CEL = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}


def rule_holds(rule: str, value: Any) -> bool:
    """Whether a CEL rule holds for `value` as `self`; an evaluation error (a duration
    Go cannot hold, a missing field) fails the rule, as on the API server."""
    if rule not in _PROGRAMS:
        _PROGRAMS[rule] = _CEL.program(_CEL.compile(rule))
    try:
        result = _PROGRAMS[rule].evaluate({"self": celpy.json_to_cel(value)})
    except celpy.CELEvalError:
        return False
    return result is True or result == celpy.celtypes.BoolType(True)


def cel_errors(node: Mapping[str, Any], value: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    """(path, message) of every x-kubernetes-validations rule that fails under `node`."""
    errors = [
        (path, rule["message"])
        for rule in node.get("x-kubernetes-validations") or ()
        if not rule_holds(rule["rule"], value)
    ]
    if isinstance(value, Mapping):
        for key, sub in (node.get("properties") or {}).items():
            if key in value:
                errors += cel_errors(sub, value[key], (*path, key))
    return errors
