"""The committed PromDemo CRD as the tests read it, and what an API server would say of a
PromDemo: `schema_errors(doc)`.

No API server here, so its checks are replayed in their order, with the emulated API
server's own steps (tests/support/api_schemas.py): structural defaulting, then the
openAPIV3Schema as a closed JSON schema (unknown fields refused, as kubectl's strict
field validation does), then, when that found nothing, the `x-kubernetes-validations`
CEL rules evaluated with cel-python on the defaulted object (tests/support/cel.py). The
API server skips CEL rules only after some errors (a wrong type, an enum, a length);
here any schema error skips them, so an object wrong in one way gives one error (the
API server may add the CEL rule's error for the same field).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.support.api_schemas import apply_defaults, openapi_to_jsonschema
from tests.support.cel import cel_errors

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "promdemos.promdemo.dev.yaml"


@functools.cache
def _parsed_crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def load_crd() -> dict[str, Any]:
    """The committed CRD (a fresh copy: callers may change it)."""
    return copy.deepcopy(_parsed_crd())


def crd_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the served v1alpha1 version."""
    (version,) = load_crd()["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


@functools.cache
def crd_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(openapi_to_jsonschema(crd_schema(), root=True))


def k8s_default(schema: dict[str, Any], value: Any) -> Any:
    """A copy of `value` defaulted as the API server defaults it by `schema`."""
    out = copy.deepcopy(value)
    apply_defaults(out, schema)
    return out


def schema_errors(doc: dict[str, Any]) -> list[tuple[tuple, str]]:
    """(path, message) of what the API server would refuse in PromDemo `doc`."""
    schema = crd_schema()
    defaulted = k8s_default(schema, doc)
    found = [(tuple(e.absolute_path), e.message) for e in crd_validator().iter_errors(defaulted)]
    if found:
        return found
    return cel_errors(schema, defaulted)


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path (`.spec.autoHeal.for`, `.status.conditions[]`)."""
    yield path, node
    for key, sub in (node.get("properties") or {}).items():
        yield from walk(sub, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def node_at(path: str) -> dict[str, Any]:
    """The schema node at `.spec.autoHeal.for`."""
    node = crd_schema()
    for part in path.strip(".").split("."):
        node = node["properties"][part]
    return node
