"""The PromDemo CRD: generated from the typed spec, structural, described, and it defaults
a PromDemo as `promdemo render` does.

The committed file is what `make crd` writes (`promdemo_operator.core.crd`); the API
server's checks are replayed by tests/support/crd.py. Each sample of manifests/samples
is judged in tests/unit/project/test_samples.py; each bound in tests/unit/core/test_spec_limits.py.
"""

from __future__ import annotations

import re

import jsonschema
import kubernetes_validate

from promdemo_operator.core import crd as crd_mod
from promdemo_operator.core.spec import apply_defaults
from promdemo_operator.prometheus import status as promstatus
from tests.support.api_schemas import openapi_to_jsonschema
from tests.support.cel import cel_errors
from tests.support.crd import (
    CRD_PATH,
    crd_schema,
    crd_validator,
    k8s_default,
    load_crd,
    node_at,
    walk,
)

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


# --------------------------------------------------------------------------- generated


def test_the_committed_crd_is_what_make_crd_writes():
    assert CRD_PATH.read_text() == crd_mod.crd_text(), (
        f"{CRD_PATH.name} is stale: run `make crd` (then `make install.yaml`) and commit both"
    )


def test_the_api_server_defaults_a_promdemo_as_promdemo_render_does():
    """Without a spec, the API server stores the spec that parse_spec reads from a file."""
    for given in ({}, {"spec": {"monitoring": {"labels": {"a": "b"}, "alerts": None}}}):
        doc = {"apiVersion": "promdemo.dev/v1alpha1", "kind": "PromDemo", **given}
        stored = k8s_default(crd_schema(), doc)
        assert stored["spec"] == apply_defaults(given.get("spec"))


def test_every_cel_message_is_one_line():
    """The API server refuses a CRD whose rule message spans lines."""
    rules = [r for _, node in walk(crd_schema()) for r in node.get("x-kubernetes-validations", ())]
    assert len(rules) == 17  # 13 durations, 4 alert windows
    for rule in rules:
        assert "\n" not in rule["message"], rule


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
            jsonschema.Draft7Validator(openapi_to_jsonschema(node)).validate(node["default"])


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


def test_the_defaults_pass_every_cel_rule():
    doc = {"apiVersion": "promdemo.dev/v1alpha1", "kind": "PromDemo", "metadata": {}}
    assert cel_errors(crd_schema(), k8s_default(crd_schema(), doc)) == []


def test_description_mentions_env_var_for_every_app_knob():
    """The app knobs say which PROMDEMO_* variable they become (docs for `kubectl explain`)."""
    for path, node in walk(node_at(".spec.app"), ".spec.app"):
        if node.get("type") in {"object", None}:
            continue
        assert re.search(r"PROMDEMO_[A-Z_]+", node["description"]), path
