"""The PromDemo CRD: structural, described, defaulted like spec.py, and it judges the samples.

No API server here, so the API server's checks are replayed in their order:
defaulting (`k8s_default`, compared with `promdemo_operator.spec.apply_defaults`),
then the openAPIV3Schema turned into a JSON schema (x-kubernetes-* keys dropped,
unknown fields refused as kubectl's strict field validation does) checked with
jsonschema, then, when that found nothing, the `x-kubernetes-validations` CEL
rules evaluated with cel-python on the defaulted object (`cel_errors`). The
API server skips CEL rules only after some errors (a wrong type, an enum, a
length); here any schema error skips them, so a sample wrong in one way gives
one error (the API server may add the CEL rule's error for the same field).

The helpers here (`load_crd`, `crd_schema`, `crd_validator`, `k8s_default`,
`schema_errors`) are imported by the other CRD/manifest tests.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from promdemo_operator import promstatus
from promdemo_operator import spec as spec_mod
from promdemo_operator.duration import DURATION_PATTERN
from promdemo_operator.duration import MAX_LENGTH as DURATION_MAX_LENGTH
from tests.support.cel import cel_errors

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "promdemos.promdemo.dev.yaml"
SAMPLES = ROOT / "manifests" / "samples"
VALID_SAMPLES = [*sorted(SAMPLES.glob("*.yaml")), ROOT / "manifests/overlays/prod/promdemo.yaml"]
INVALID_SAMPLES = sorted((SAMPLES / "invalid").glob("*.yaml"))
OPERATOR_REJECTED_SAMPLES = sorted((SAMPLES / "invalid-spec").glob("*.yaml"))

# Keys the API server refuses in a structural schema (or that are not in its OpenAPI subset).
FORBIDDEN_KEYS = {
    "$ref",
    "definitions",
    "patternProperties",
    "dependencies",
    "additionalItems",
    "$schema",
    "id",
}


# --------------------------------------------------------------------------- helpers


@functools.cache
def _crd_text() -> str:
    return CRD_PATH.read_text()


@functools.cache
def _parsed_crd() -> dict[str, Any]:
    return yaml.safe_load(_crd_text())


def load_crd() -> dict[str, Any]:
    """The CRD (a fresh copy: callers may change it)."""
    return copy.deepcopy(_parsed_crd())


def crd_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the served v1alpha1 version."""
    (version,) = load_crd()["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def to_json_schema(node: Any, *, top: bool = True) -> Any:
    """A Kubernetes structural schema as a plain JSON schema.

    x-kubernetes-* keys are dropped; an object with `properties` and without
    x-kubernetes-preserve-unknown-fields refuses other keys (the API server would
    prune them; `kubectl apply`'s strict field validation refuses them). The root
    also allows `metadata`, which a CRD schema leaves to the API server.
    """
    if isinstance(node, list):
        return [to_json_schema(item, top=False) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v, top=False) for k, v in node.items() if not k.startswith("x-")}
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    if top:
        out["properties"] = {**out.get("properties", {}), "metadata": {"type": "object"}}
    return out


@functools.cache
def crd_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(to_json_schema(crd_schema()))


def k8s_default(schema: dict[str, Any], value: Any) -> Any:
    """What the API server's defaulting does to `value`: missing (or null) properties get
    their `default`, then each property is defaulted in turn, so a parent's `default: {}`
    lets its children's defaults apply."""
    if not isinstance(value, dict) or "properties" not in schema:
        return value
    out = copy.deepcopy(value)
    for key, sub in schema["properties"].items():
        if "default" in sub and out.get(key) is None:
            out[key] = copy.deepcopy(sub["default"])
        if key in out:
            out[key] = k8s_default(sub, out[key])
    return out


def schema_errors(doc: dict[str, Any]) -> list[tuple[tuple, str]]:
    """(path, message) of what the API server would refuse in PromDemo `doc`."""
    found = [(tuple(e.absolute_path), e.message) for e in crd_validator().iter_errors(doc)]
    if found:
        return found
    schema = crd_schema()
    return cel_errors(schema, k8s_default(schema, doc))


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
    node = crd_schema()
    for part in path.strip(".").split("."):
        node = node["properties"][part]
    return node


def load_doc(path: Path) -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return doc


def sample_id(path: Path) -> str:
    return path.relative_to(ROOT / "manifests").as_posix()


# --------------------------------------------------------------------------- the CRD itself


def test_crd_names_and_scope():
    crd = load_crd()
    assert crd["metadata"]["name"] == "promdemos.promdemo.dev"
    spec = crd["spec"]
    assert spec["group"] == "promdemo.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "PromDemo"
    assert spec["names"]["plural"] == "promdemos"
    assert spec["names"]["singular"] == "promdemo"
    assert spec["names"]["shortNames"] == ["pd"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"] is True
    assert version["storage"] is True


def test_crd_validates_against_the_kubernetes_api_schema():
    kubernetes_validate.validate(load_crd(), "1.30", strict=True)


def test_schema_is_structural():
    """The rules of a structural schema the API server enforces (the ones we can check)."""
    for path, node in walk(crd_schema()):
        assert not FORBIDDEN_KEYS & node.keys(), f"{path}: {FORBIDDEN_KEYS & node.keys()}"
        preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
        assert "type" in node or preserve, f"{path}: every node needs a type"
        assert not ("properties" in node and "additionalProperties" in node), path
        if node.get("type") == "array":
            assert isinstance(node.get("items"), dict), f"{path}: arrays need one items schema"
        if "default" in node:
            assert not path.startswith(".metadata"), f"{path}: no defaults under metadata"
            # A default must itself be valid (the API server checks it, pruned).
            jsonschema.Draft7Validator(to_json_schema(node, top=False)).validate(node["default"])


def test_every_property_has_a_description():
    """`kubectl explain promdemo.spec.autoHeal` reads these."""
    missing = []
    for path, node in walk(crd_schema()):
        if path.endswith("{}") or path == "":
            continue  # map values; the root has its own check below
        if not (node.get("description") or "").strip():
            missing.append(path)
    assert missing == []
    assert crd_schema()["description"].strip()


def test_every_spec_field_has_a_default():
    for path, node in walk(node_at(".spec"), ".spec"):
        if path.endswith("{}"):
            continue
        assert "default" in node, f"{path} has no default"


def test_schema_defaults_equal_apply_defaults():
    """The CRD and spec.py must not drift: the API server's defaults == apply_defaults({})."""
    defaulted = k8s_default(
        crd_schema(), {"apiVersion": "promdemo.dev/v1alpha1", "kind": "PromDemo"}
    )
    assert defaulted["spec"] == spec_mod.apply_defaults({})
    assert defaulted["spec"] == spec_mod.DEFAULTS


@pytest.mark.parametrize("path", VALID_SAMPLES, ids=sample_id)
def test_schema_defaults_equal_apply_defaults_on_samples(path: Path):
    doc = load_doc(path)
    defaulted = k8s_default(crd_schema(), doc)
    assert defaulted["spec"] == spec_mod.apply_defaults(doc.get("spec") or {})


def test_schema_limits_match_spec_py():
    """Enums, patterns and bounds are written twice (YAML, Python): keep them equal."""
    s = spec_mod
    assert node_at(".spec.imagePullPolicy")["enum"] == list(s.IMAGE_PULL_POLICIES)
    assert node_at(".spec.autoHeal.source")["enum"] == list(s.HEAL_SOURCES)
    assert node_at(".spec.autoHeal.podAccess")["enum"] == list(s.POD_ACCESS_MODES)
    assert node_at(".spec.monitoring.matchPrometheus")["enum"] == list(s.MATCH_PROMETHEUS_MODES)
    assert node_at(".spec.image")["maxLength"] == s.IMAGE_MAX_LENGTH
    labels = node_at(".spec.monitoring.labels")
    assert labels["maxProperties"] == s.MAX_MONITORING_LABELS
    assert labels["additionalProperties"]["pattern"] == s.LABEL_VALUE_PATTERN


def test_every_number_has_the_bounds_of_spec_py():
    numbers = {
        path.lstrip("."): node
        for path, node in walk(node_at(".spec"), ".spec")
        if node.get("type") in {"integer", "number"}
    }
    assert numbers.keys() == set(spec_mod.NUMBER_BOUNDS)
    for path, node in numbers.items():
        bounds = spec_mod.NUMBER_BOUNDS[path]
        assert (node["minimum"], node["maximum"]) == (bounds.low, bounds.high), path


def test_every_duration_has_the_pattern_length_and_one_bounds_rule():
    durations = {
        path.lstrip("."): node
        for path, node in walk(node_at(".spec"), ".spec")
        if node.get("pattern") == DURATION_PATTERN
    }
    assert len(durations) == 13  # autoHeal 3, scrapeInterval, 1 + 4 x 2 in alerts
    assert durations.keys() == set(spec_mod.DURATION_BOUNDS)
    for path, node in durations.items():
        assert node["type"] == "string", path
        assert node["maxLength"] == DURATION_MAX_LENGTH, path
        (rule,) = node["x-kubernetes-validations"]
        assert "\n" not in rule["message"], path  # the API server refuses multi-line messages
    # Whether each rule holds the floor and ceiling of spec.py: tests/unit/test_spec_limits.py.


def test_scale_subresource_paths_exist_with_the_right_types():
    (version,) = load_crd()["spec"]["versions"]
    sub = version["subresources"]
    assert sub["status"] == {}
    scale = sub["scale"]
    assert scale["specReplicasPath"] == ".spec.replicas"
    assert scale["statusReplicasPath"] == ".status.replicas"
    assert scale["labelSelectorPath"] == ".status.selector"
    assert node_at(".spec.replicas")["type"] == "integer"
    assert node_at(".status.replicas")["type"] == "integer"
    # The scale subresource wants a label selector *string* there.
    assert node_at(".status.selector")["type"] == "string"


def test_printer_columns():
    (version,) = load_crd()["spec"]["versions"]
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    default_view = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert default_view == [
        "Replicas", "Ready", "Lowest-Inventory", "Heals",
        "Selected", "Scraped", "Evaluated", "P95", "Success", "Age",
    ]  # fmt: skip
    assert columns["Age"] == {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
    }
    # The status of a condition the operator writes (kubectl shows True, False or Unknown).
    of_condition = {
        "Selected": promstatus.SELECTED,
        "Scraped": promstatus.TARGETS_UP,
        "Evaluated": promstatus.RULES_LOADED,
    }
    for column, type_ in of_condition.items():
        assert columns[column]["type"] == "string"
        assert columns[column]["jsonPath"] == f'.status.conditions[?(@.type=="{type_}")].status'
    for column in columns.values():
        if column["name"] == "Age":
            continue
        assert column.get("description")
        if column["name"] in of_condition:
            continue
        node = node_at(column["jsonPath"])
        assert node["type"] == column["type"], column["name"]


def test_status_schema_keeps_what_the_operator_writes():
    status = node_at(".status")
    assert status["x-kubernetes-preserve-unknown-fields"] is True  # kopf's own bookkeeping
    for key in (
        "observedGeneration",
        "replicas",
        "readyReplicas",
        "selector",
        "lowestInventory",
        "inventory",
        "healCount",
        "lastHeal",
        "targets",
        "lessons",
        "conditions",
    ):
        assert key in status["properties"], key
    assert status["properties"]["inventory"]["x-kubernetes-preserve-unknown-fields"] is True
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) == {"type", "status"}


def test_a_written_status_validates():
    status = {
        "observedGeneration": 3,
        "replicas": 2,
        "readyReplicas": 2,
        "selector": "app.kubernetes.io/name=promdemo,app.kubernetes.io/instance=shop",
        "lowestInventory": -12,
        "inventory": {"shop-7d9f-abcde": -12, "shop-7d9f-fghij": 40.0},
        "healCount": 4,
        "lastHeal": {"pod": "shop-7d9f-abcde", "before": -12, "after": 100,
                     "time": "2026-01-01T00:00:00Z"},
        "targets": {"up": 1, "total": 2, "lastError": "connection refused"},
        "lessons": {"p95Seconds": 1.9, "successRatio": 0.9, "requestsPerSecond": 3.5},
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "message": "2/2 ready", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "TargetsUp", "status": "Unknown", "reason": "NotSelected",
             "message": "no Prometheus selects the PromDemo",
             "lastTransitionTime": "2026-01-01T00:00:00Z"},
        ],
        "kopf": {"progress": {}},
    }  # fmt: skip
    body = {"apiVersion": "promdemo.dev/v1alpha1", "kind": "PromDemo", "metadata": {}}
    crd_validator().validate({**body, "status": status})


# --------------------------------------------------------------------------- samples


@pytest.mark.parametrize("path", VALID_SAMPLES, ids=sample_id)
def test_valid_samples_pass_the_schema_and_the_operator(path: Path):
    doc = load_doc(path)
    assert doc["apiVersion"] == "promdemo.dev/v1alpha1"
    assert doc["kind"] == "PromDemo"
    assert schema_errors(doc) == []
    spec_mod.parse_spec(doc.get("spec"))


def test_the_defaults_pass_every_cel_rule():
    doc = {"apiVersion": "promdemo.dev/v1alpha1", "kind": "PromDemo", "metadata": {}}
    assert cel_errors(crd_schema(), k8s_default(crd_schema(), doc)) == []


def test_full_sample_sets_every_field():
    doc = load_doc(SAMPLES / "full.yaml")

    def leaves(d: Any, prefix: str = "") -> set[str]:
        if isinstance(d, dict) and d and prefix != ".monitoring.labels":
            return set().union(*(leaves(v, f"{prefix}.{k}") for k, v in d.items()))
        return {prefix}

    assert leaves(doc["spec"]) == leaves(spec_mod.DEFAULTS)


def test_minimal_sample_sets_nothing():
    assert "spec" not in load_doc(SAMPLES / "minimal.yaml")


def test_there_are_several_invalid_samples():
    assert len(INVALID_SAMPLES) >= 8
    assert len(OPERATOR_REJECTED_SAMPLES) >= 3


@pytest.mark.parametrize("path", INVALID_SAMPLES, ids=sample_id)
def test_invalid_samples_fail_the_schema_and_the_operator(path: Path):
    doc = load_doc(path)
    errors = schema_errors(doc)
    assert errors, f"{path.name} passed the CRD schema"
    # Each file is wrong in one way: one error, under .spec.
    assert len(errors) == 1, errors
    assert errors[0][0][:1] == ("spec",)
    with pytest.raises(spec_mod.SpecError):
        spec_mod.parse_spec(doc["spec"])


@pytest.mark.parametrize("path", OPERATOR_REJECTED_SAMPLES, ids=sample_id)
def test_operator_rejected_samples_pass_the_schema_but_not_parse_spec(path: Path):
    """What only the operator can catch: it reports SpecValid=False with the message."""
    doc = load_doc(path)
    assert schema_errors(doc) == []
    with pytest.raises(spec_mod.SpecError) as caught:
        spec_mod.parse_spec(doc["spec"])
    assert "\n" not in caught.value.message


def test_description_mentions_env_var_for_every_app_knob():
    """The app knobs say which PROMDEMO_* variable they become (docs for `kubectl explain`)."""
    for path, node in walk(node_at(".spec.app"), ".spec.app"):
        if node.get("type") in {"object", None}:
            continue
        assert re.search(r"PROMDEMO_[A-Z_]+", node["description"]), path
