"""The emulated API server refuses what kube-apiserver refuses (tests/support/kmock_emulator.py).

One test per rule: each asserts the answer a real API server gives (status code,
reason, the field at fault), so it fails as soon as the emulator lets the request
through. The operator tier's other tests then run the real operator against
these rules.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.api_schemas import CRD_DIR
from tests.support.kmock_cluster import (
    DEPLOYMENTS,
    NAMESPACES,
    PROMDEMOS,
    SECRETS,
    SERVICEMONITORS,
    ApiStatusError,
    KmockCluster,
    operator_log_tail,
    resource_path,
)
from tests.support.processes import wait_until
from tests.support.rendering import is_subset, render_body

pytestmark = pytest.mark.operator

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "manifests" / "samples"
NS = "demo"


def promdemo(name: str = "shop", spec: Any = None, ns: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "promdemo.dev/v1alpha1",
        "kind": "PromDemo",
        "metadata": {"name": name, "namespace": ns},
        "spec": {} if spec is None else spec,
    }


def refused(call: Any, *args: Any, **kwargs: Any) -> ApiStatusError:
    """The ApiStatusError `call(*args, **kwargs)` raises (fails the test if it succeeds)."""
    with pytest.raises(ApiStatusError) as info:
        call(*args, **kwargs)
    return info.value


def causes(error: ApiStatusError) -> list[str]:
    return [c.get("field", "") for c in (error.body.get("details") or {}).get("causes") or []]


def children_of(pd: dict[str, Any]) -> list[dict[str, Any]]:
    """What the operator renders for the stored PromDemo `pd` (its uid in the owner refs)."""
    return render_body(pd, token="a-reset-token")


def crd_default(*path: str) -> Any:
    """The default of spec.<path> in the PromDemo CRD of crds/ (as another change leaves it)."""
    crd = yaml.safe_load((CRD_DIR / "promdemos.promdemo.dev.yaml").read_text())
    node = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for key in path:
        node = node["properties"][key]
    return node["default"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with KmockCluster(tmp_path_factory.mktemp("strict")) as c:
        yield c


# --------------------------------------------------------------------------- authentication


def test_a_request_without_the_kubeconfig_token_is_401(cluster: KmockCluster) -> None:
    path = resource_path(PROMDEMOS, NS)
    anonymous = httpx.get(cluster.url + path, timeout=10)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.json()["reason"] == "Unauthorized"
    wrong = httpx.get(cluster.url + path, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401
    discovery = httpx.get(cluster.url + "/apis", timeout=10)
    assert discovery.status_code == 401
    token = json.loads(cluster.kubeconfig.read_text())["users"][0]["user"]["token"]
    granted = httpx.get(cluster.url + path, headers={"Authorization": f"Bearer {token}"})
    assert granted.status_code == 200, granted.text


def test_an_operator_that_drops_the_token_is_refused_and_stops(
    kmock_cluster: KmockCluster, tmp_path: Path
) -> None:
    """What kopf < 1.44.6 does with kubernetes >= 36.0.1: log in with no token at all."""
    config = json.loads(kmock_cluster.kubeconfig.read_text())
    del config["users"][0]["user"]["token"]
    tokenless = tmp_path / "kubeconfig-without-token"
    tokenless.write_text(json.dumps(config))
    op = kmock_cluster.start_operator(kubeconfig=tokenless, wait=False, log_name="anon.log")
    wait_until(lambda: not op.process.alive(), timeout=90, what="the token-less operator exits")
    assert op.process.proc.returncode != 0, operator_log_tail(op)
    refusals = kmock_cluster.refusals("operator")
    assert refusals, "the emulator refused nothing"
    assert {r.code for r in refusals} == {401}, refusals
    reached = [c for c in kmock_cluster.api_calls() if c.client == "operator"]
    assert not reached, f"unauthenticated requests reached the object API: {reached}"


# --------------------------------------------------------------------------- JSON patch


def test_a_failed_json_patch_test_is_422_and_changes_nothing(cluster: KmockCluster) -> None:
    pd = cluster.create(promdemo("patched"))
    rv = pd["metadata"]["resourceVersion"]
    finalizer = "kopf.zalando.org/KopfFinalizerMarker"
    stale = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]},
    ]
    error = refused(cluster.patch, PROMDEMOS, NS, "patched", stale)
    assert (error.status, error.reason) == (422, "Invalid"), error
    assert cluster.get(PROMDEMOS, NS, "patched")["metadata"]["resourceVersion"] == rv
    fresh = [{**stale[0], "value": rv}, stale[1]]
    after = cluster.patch(PROMDEMOS, NS, "patched", fresh)
    assert after["metadata"]["finalizers"] == [finalizer]


def test_a_merge_patch_with_a_stale_resource_version_is_409(cluster: KmockCluster) -> None:
    cluster.create(promdemo("stale"))
    patch = {"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 2}}
    error = refused(cluster.patch, PROMDEMOS, NS, "stale", patch)
    assert (error.status, error.reason) == (409, "Conflict"), error


# --------------------------------------------------------------------------- the CRD


def test_a_promdemo_is_stored_with_the_crd_defaults(cluster: KmockCluster) -> None:
    stored = cluster.create(promdemo("defaults"))
    spec = stored["spec"]
    assert spec["replicas"] == crd_default("replicas")
    assert spec["image"] == crd_default("image")
    assert spec["autoHeal"]["interval"] == crd_default("autoHeal", "interval")
    alert = ("monitoring", "alerts", "lowSuccessRate", "threshold")
    assert spec["monitoring"]["alerts"]["lowSuccessRate"]["threshold"] == crd_default(*alert)
    # A field removed by a patch comes back with its default, as on a real server.
    after = cluster.patch(PROMDEMOS, NS, "defaults", {"spec": {"replicas": 3}})
    assert after["spec"]["replicas"] == 3
    after = cluster.patch(PROMDEMOS, NS, "defaults", {"spec": {"replicas": None}})
    assert after["spec"]["replicas"] == crd_default("replicas")


# Every invalid sample is judged by the emulator's checks in tests/unit/project/test_samples.py;
# here, one of each answer, through HTTP: an unknown field, the schema, a CEL rule.
REFUSED_SAMPLES = [
    SAMPLES / "invalid" / f"{name}.yaml"
    for name in ("unknown-field", "replicas-above-maximum", "window-shorter-than-two-scrapes")
]


@pytest.mark.parametrize("sample", REFUSED_SAMPLES, ids=[p.stem for p in REFUSED_SAMPLES])
def test_a_promdemo_the_crd_schema_refuses_is_refused(cluster: KmockCluster, sample: Path) -> None:
    body = yaml.safe_load(sample.read_text())
    body["metadata"]["namespace"] = NS
    error = refused(cluster.create, body)
    if sample.stem == "unknown-field":
        assert (error.status, error.reason) == (400, "BadRequest"), error
        assert 'unknown field "spec.replica"' in str(error)
    else:
        assert (error.status, error.reason) == (422, "Invalid"), error
        assert all(f.startswith("spec") for f in causes(error)), causes(error)
    assert cluster.get(PROMDEMOS, NS, body["metadata"]["name"]) is None


def test_a_status_with_two_conditions_of_one_type_is_refused(cluster: KmockCluster) -> None:
    cluster.create(promdemo("conditions"))
    twice = [{"type": "Available", "status": "True"}, {"type": "Available", "status": "False"}]
    error = refused(
        cluster.patch, PROMDEMOS, NS, "conditions", {"status": {"conditions": twice}},
        subresource="status",
    )  # fmt: skip
    assert (error.status, error.reason) == (422, "Invalid"), error
    assert causes(error) == ["status.conditions[1]"]


# --------------------------------------------------------------------------- children


VALID_SAMPLES = [SAMPLES / "minimal.yaml", SAMPLES / "full.yaml"]


@pytest.mark.parametrize("sample", VALID_SAMPLES, ids=[p.stem for p in VALID_SAMPLES])
def test_every_child_promdemo_renders_is_accepted(cluster: KmockCluster, sample: Path) -> None:
    body = yaml.safe_load(sample.read_text())
    body["metadata"]["namespace"] = NS
    body["metadata"]["name"] = f"render-{sample.stem}"
    pd = cluster.create(body)
    kids = children_of(pd)
    assert {k["kind"] for k in kids} >= {"Deployment", "ServiceMonitor", "PrometheusRule"}
    for child in kids:
        stored = cluster.create(child)
        view = {k: v for k, v in child.items() if k != "metadata"}
        assert is_subset(view, stored), f"{child['kind']} was stored differently"


def _rendered(cluster: KmockCluster, name: str) -> dict[str, dict[str, Any]]:
    pd = cluster.create(promdemo(name, {"monitoring": {"labels": {"release": "prometheus"}}}))
    return {k["kind"]: copy.deepcopy(k) for k in children_of(pd)}


def _misspell_container_field(kids: dict) -> dict:
    container = kids["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    container["imagePolicy"] = container.pop("imagePullPolicy")
    return kids["Deployment"]


def _misspell_endpoint_field(kids: dict) -> dict:
    endpoint = kids["ServiceMonitor"]["spec"]["endpoints"][0]
    endpoint["intervall"] = endpoint.pop("interval")
    return kids["ServiceMonitor"]


def _misplace_interval(kids: dict) -> dict:
    sm = kids["ServiceMonitor"]
    sm["spec"]["interval"] = sm["spec"]["endpoints"][0].pop("interval")
    return sm


def _misspell_rule_field(kids: dict) -> dict:
    rule = kids["PrometheusRule"]["spec"]["groups"][1]["rules"][0]
    rule["expression"] = rule.pop("expr")
    return kids["PrometheusRule"]


@pytest.mark.parametrize(
    ("breaks", "field"),
    [
        (_misspell_container_field, "spec.template.spec.containers[0].imagePolicy"),
        (_misspell_endpoint_field, "spec.endpoints[0].intervall"),
        (_misplace_interval, "spec.interval"),
        (_misspell_rule_field, "spec.groups[1].rules[0].expression"),
    ],
    ids=["deployment", "servicemonitor-typo", "servicemonitor-misplaced", "prometheusrule"],
)
def test_a_misspelled_or_misplaced_field_of_a_child_is_400(
    cluster: KmockCluster, breaks: Any, field: str
) -> None:
    child = breaks(_rendered(cluster, f"typo-{len(cluster.api_calls())}"))
    error = refused(cluster.create, child)
    assert (error.status, error.reason) == (400, "BadRequest"), error
    assert f'unknown field "{field}"' in str(error)


def _scheme_upper_case(kids: dict) -> dict:
    kids["ServiceMonitor"]["spec"]["endpoints"][0]["scheme"] = "HTTP"
    return kids["ServiceMonitor"]


def _no_selector(kids: dict) -> dict:
    del kids["ServiceMonitor"]["spec"]["selector"]
    return kids["ServiceMonitor"]


def _for_in_words(kids: dict) -> dict:
    kids["PrometheusRule"]["spec"]["groups"][1]["rules"][0]["for"] = "5 minutes"
    return kids["PrometheusRule"]


def _group_twice(kids: dict) -> dict:
    groups = kids["PrometheusRule"]["spec"]["groups"]
    groups[1]["name"] = groups[0]["name"]
    return kids["PrometheusRule"]


def _port_as_text(kids: dict) -> dict:
    kids["Service"]["spec"]["ports"][0]["port"] = "8080"
    return kids["Service"]


@pytest.mark.parametrize(
    ("breaks", "field"),
    [
        (_scheme_upper_case, "spec.endpoints[0].scheme"),
        (_no_selector, "spec.selector"),
        (_for_in_words, "spec.groups[1].rules[0].for"),
        (_group_twice, "spec.groups[1]"),
        (_port_as_text, "spec.ports[0].port"),
    ],
    ids=["enum", "required", "pattern", "list-map-key", "core-type"],
)
def test_an_invalid_value_in_a_child_is_422(cluster: KmockCluster, breaks: Any, field: str) -> None:
    child = breaks(_rendered(cluster, f"bad-{len(cluster.api_calls())}"))
    error = refused(cluster.create, child)
    assert (error.status, error.reason) == (422, "Invalid"), error
    assert field in causes(error), causes(error)


def test_a_patch_that_breaks_the_schema_is_refused_and_changes_nothing(
    cluster: KmockCluster,
) -> None:
    kids = _rendered(cluster, "patch-typo")
    sm = cluster.create(kids["ServiceMonitor"])
    error = refused(
        cluster.patch, SERVICEMONITORS, NS, "patch-typo", {"spec": {"endpoint": [{"port": "x"}]}}
    )
    assert error.status == 400, error
    assert cluster.get(SERVICEMONITORS, NS, "patch-typo") == sm


# --------------------------------------------------------------------------- metadata


def test_metadata_is_checked_as_the_api_server_checks_it(cluster: KmockCluster) -> None:
    kids = _rendered(cluster, "meta")
    bad_label = copy.deepcopy(kids["PrometheusRule"])
    bad_label["metadata"]["labels"]["release"] = "kube prometheus"
    assert causes(refused(cluster.create, bad_label)) == ["metadata.labels"]

    service = copy.deepcopy(kids["Service"])
    service["metadata"]["name"] = "1shop"  # a Service name is a DNS-1035 label
    assert causes(refused(cluster.create, service)) == ["metadata.name"]

    two_controllers = copy.deepcopy(kids["Secret"])
    ref = two_controllers["metadata"]["ownerReferences"][0]
    two_controllers["metadata"]["ownerReferences"].append({**ref, "uid": "another", "name": "b"})
    assert causes(refused(cluster.create, two_controllers)) == ["metadata.ownerReferences"]


def test_a_patch_that_changes_owner_references_is_recorded_as_such(cluster: KmockCluster) -> None:
    """What OwnerReferencesPermissionEnforcement looks at (RBAC coverage reads the flag)."""
    kids = _rendered(cluster, "adopt")
    secret = kids["Secret"]
    refs = secret["metadata"].pop("ownerReferences")
    cluster.create(secret)
    name = secret["metadata"]["name"]
    cluster.patch(SECRETS, NS, name, {"metadata": {"labels": {"x": "y"}}})
    cluster.patch(SECRETS, NS, name, {"metadata": {"ownerReferences": refs}})
    patches = [c for c in cluster.api_calls() if c.verb == "patch" and c.name == name]
    assert [c.owner_references_changed for c in patches] == [False, True]


def test_a_body_of_another_type_than_the_url_is_400(cluster: KmockCluster) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
    response = cluster.request("POST", resource_path(DEPLOYMENTS, NS), json=secret)
    assert response.status_code == 400, response.text


# --------------------------------------------------------------------------- namespaces


def test_a_create_in_a_missing_namespace_is_404(cluster: KmockCluster) -> None:
    error = refused(cluster.create, promdemo("nowhere", ns="no-such-namespace"))
    assert (error.status, error.reason) == (404, "NotFound"), error
    assert 'namespaces "no-such-namespace" not found' in str(error)


def test_a_terminating_namespace_takes_no_new_objects_and_goes_when_empty(
    cluster: KmockCluster,
) -> None:
    cluster.ensure_namespace("leaving")
    held = promdemo("held", ns="leaving")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    cluster.create(held)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "leaving"},
    }
    cluster.create(secret)

    assert cluster.delete(NAMESPACES, None, "leaving")
    namespace = cluster.get(NAMESPACES, None, "leaving")
    assert namespace is not None, "a namespace with a finalizer-held object is still there"
    assert namespace["status"]["phase"] == "Terminating"
    assert cluster.get(SECRETS, "leaving", "s") is None, "its objects are deleted"
    assert cluster.get(PROMDEMOS, "leaving", "held")["metadata"]["deletionTimestamp"]

    error = refused(cluster.create, {**secret, "metadata": {"name": "t", "namespace": "leaving"}})
    assert (error.status, error.reason) == (403, "Forbidden"), error
    assert "is being terminated" in str(error)

    # Patches still pass (a finalizer must be releasable), and then the namespace goes.
    cluster.patch(PROMDEMOS, "leaving", "held", {"metadata": {"finalizers": None}})
    assert cluster.get(PROMDEMOS, "leaving", "held") is None
    assert cluster.get(NAMESPACES, None, "leaving") is None


def test_the_prod_overlays_servicemonitor_passes_the_strict_schema(cluster: KmockCluster) -> None:
    """The operator's own ServiceMonitor (written by hand) is held to the same schema."""
    sm = yaml.safe_load((ROOT / "manifests/overlays/prod/operator-servicemonitor.yaml").read_text())
    sm["metadata"]["namespace"] = NS
    stored = cluster.create(sm)
    assert stored["spec"] == sm["spec"]
