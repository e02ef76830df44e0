"""core/render.py: a PromDemo's children, as plain dicts, for minimal and full specs."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from promdemo_operator.core import render
from promdemo_operator.core.names import labels_for, secret_name, selector_for, selector_string
from promdemo_operator.core.render import new_reset_token, render_children, token_from_secret
from promdemo_operator.core.rules import rule_groups
from promdemo_operator.core.spec import SpecError, parse_spec
from tests.support.rendering import render_body

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "manifests" / "samples"
UID = "6a1e2c3d-0000-4000-8000-000000000001"
TOKEN = "s3cret-token"


def body(spec: dict | None = None, *, name: str = "shop", ns: str = "demo", uid: str | None = UID):
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if uid:
        meta["uid"] = uid
    out: dict[str, Any] = {"apiVersion": "promdemo.dev/v1alpha1", "kind": "PromDemo"}
    out["metadata"] = meta
    if spec is not None:
        out["spec"] = spec
    return out


def by_kind(children: list[dict]) -> dict[str, dict]:
    return {c["kind"]: c for c in children}


def sample(name: str) -> dict:
    doc = yaml.safe_load((SAMPLES / name).read_text())
    doc["metadata"].update(namespace="demo", uid=UID)
    return doc


def env_of(deployment: dict) -> dict[str, str]:
    """The container's plain `value` env (the downward API's are left out)."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


# --------------------------------------------------------------------------- helpers


def test_labels_and_selector():
    assert labels_for("shop") == {
        "app.kubernetes.io/name": "promdemo",
        "app.kubernetes.io/instance": "shop",
        "app.kubernetes.io/managed-by": "promdemo-operator",
    }
    assert selector_for("shop") == {
        "app.kubernetes.io/name": "promdemo",
        "app.kubernetes.io/instance": "shop",
    }
    assert selector_string("shop") == (
        "app.kubernetes.io/name=promdemo,app.kubernetes.io/instance=shop"
    )


def test_new_reset_token_is_random_and_url_safe():
    tokens = {new_reset_token() for _ in range(20)}
    assert len(tokens) == 20
    for token in tokens:
        assert len(token) >= 40
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_token_from_secret_round_trips_the_rendered_secret():
    secret = render_body(body(), token=TOKEN)[0]
    assert token_from_secret(secret) == TOKEN
    assert token_from_secret({"stringData": {"token": "x"}}) == "x"
    assert token_from_secret(None) is None
    assert token_from_secret({}) is None
    assert token_from_secret({"data": {"token": "%%%not base64"}}) is None
    assert token_from_secret({"data": {"other": "eA=="}}) is None


# --------------------------------------------------------------------------- the list


def test_minimal_spec_renders_five_children_in_order():
    children = render_body(body(), token=TOKEN)
    assert [c["kind"] for c in children] == [
        "Secret",
        "Deployment",
        "Service",
        "ServiceMonitor",
        "PrometheusRule",
    ]
    assert [c["apiVersion"] for c in children] == [
        "v1",
        "apps/v1",
        "v1",
        "monitoring.coreos.com/v1",
        "monitoring.coreos.com/v1",
    ]
    names = [c["metadata"]["name"] for c in children]
    assert names == ["shop-reset-token", "shop", "shop", "shop", "shop"]
    assert secret_name("shop") == "shop-reset-token"


def test_spec_may_be_missing_or_null():
    assert render_body(body(), token=TOKEN) == render_body(body({}), token=TOKEN)
    no_spec = body()
    no_spec["spec"] = None
    assert render_body(no_spec, token=TOKEN) == render_body(body({}), token=TOKEN)


def test_every_child_has_name_namespace_labels_and_owner():
    for child in render_body(body(), token=TOKEN):
        meta = child["metadata"]
        assert meta["namespace"] == "demo"
        for key, value in labels_for("shop").items():
            assert meta["labels"][key] == value
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "promdemo.dev/v1alpha1",
                "kind": "PromDemo",
                "name": "shop",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_no_uid_means_no_owner_reference():
    """A file rendered for GitOps has no owner in any cluster yet."""
    for child in render_body(body(uid=None), token=TOKEN):
        assert "ownerReferences" not in child["metadata"]


@pytest.mark.parametrize(
    ("monitoring", "kinds"),
    [
        ({"serviceMonitor": False}, ["Secret", "Deployment", "Service", "PrometheusRule"]),
        ({"prometheusRule": False}, ["Secret", "Deployment", "Service", "ServiceMonitor"]),
        ({"serviceMonitor": False, "prometheusRule": False}, ["Secret", "Deployment", "Service"]),
    ],
)
def test_monitoring_switches_omit_children(monitoring: dict, kinds: list[str]):
    children = render_body(body({"monitoring": monitoring}), token=TOKEN)
    assert [c["kind"] for c in children] == kinds


# --------------------------------------------------------------------------- token


def test_rendering_twice_with_the_same_token_is_identical():
    spec = yaml.safe_load((SAMPLES / "full.yaml").read_text())["spec"]
    first = render_body(body(spec), token=TOKEN)
    second = render_body(body(copy.deepcopy(spec)), token=TOKEN)
    assert first == second
    assert yaml.safe_dump_all(first) == yaml.safe_dump_all(second)


def test_render_never_invents_a_token():
    secret = render_body(body(), token=TOKEN)[0]
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["token"]).decode() == TOKEN
    assert "stringData" not in secret
    with pytest.raises(ValueError, match="token"):
        render_body(body(), token="")
    with pytest.raises(TypeError):
        render_children("shop", "demo", parse_spec({}))  # type: ignore[call-arg]


def test_only_the_secret_depends_on_the_token():
    a = render_body(body(), token="a")
    b = render_body(body(), token="b")
    assert a[0] != b[0]
    assert a[1:] == b[1:]


def test_render_does_not_mutate_the_body():
    b = body({"monitoring": {"labels": {"release": "prometheus"}}})
    before = copy.deepcopy(b)
    children = render_body(b, token=TOKEN)
    children[3]["metadata"]["labels"]["x"] = "y"
    assert b == before


# --------------------------------------------------------------------------- Deployment


def test_deployment_minimal():
    dep = by_kind(render_body(body(), token=TOKEN))["Deployment"]
    spec = dep["spec"]
    assert spec["replicas"] == 1
    assert spec["selector"] == {"matchLabels": selector_for("shop")}
    template = spec["template"]
    assert template["metadata"]["labels"] == labels_for("shop")
    pod = template["spec"]
    (container,) = pod["containers"]
    assert container["name"] == "app"
    assert container["image"] == "ghcr.io/promdemo/promdemo:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "probes", "containerPort": 8081, "protocol": "TCP"},
    ]
    # The probes on the app's probe port, which nothing on the service port can delay.
    env = env_of(dep)
    assert env["PROMDEMO_PROBE_PORT"] == "8081"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["readinessProbe"]["httpGet"]["port"] == "probes"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["port"] == "probes"
    assert set(container["resources"]) == {"requests", "limits"}
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}


def test_deployment_env_defaults():
    env = env_of(by_kind(render_body(body(), token=TOKEN))["Deployment"])
    assert env == {
        "PROMDEMO_HOST": "0.0.0.0",
        "PROMDEMO_PORT": "8080",
        "PROMDEMO_PROBE_PORT": "8081",
        "PROMDEMO_INITIAL_INVENTORY": "100",
        "PROMDEMO_OVERSELL": "true",
        "PROMDEMO_SIMULATION": "on",
        "PROMDEMO_DEPENDENCY_MIN_SECONDS": "0.05",
        "PROMDEMO_DEPENDENCY_MAX_SECONDS": "1.5",
        "PROMDEMO_DEPENDENCY_FAILURE_RATE": "0.1",
        "PROMDEMO_PROCESSING_MIN_SECONDS": "0.1",
        "PROMDEMO_PROCESSING_MAX_SECONDS": "0.5",
        "PROMDEMO_RESET_TOKEN_FILE": "/var/run/secrets/promdemo/token",
        "PROMDEMO_SHUTDOWN_TIMEOUT": "25",
    }


def test_the_pod_uid_comes_from_the_downward_api():
    # The app answers with it and refuses a reset meant for another pod (docs/app.md).
    (container,) = by_kind(render_body(body(), token=TOKEN))["Deployment"]["spec"]["template"][
        "spec"
    ]["containers"]
    from_api = [e for e in container["env"] if "value" not in e]
    assert from_api == [
        {
            "name": "PROMDEMO_POD_UID",
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.uid"}},
        }
    ]


def test_deployment_env_follows_the_spec():
    spec = {
        "replicas": 3,
        "image": "registry.example/promdemo:9",
        "imagePullPolicy": "Always",
        "app": {
            "initialInventory": 7,
            "oversell": False,
            "simulation": {
                "enabled": False,
                "dependencyMinSeconds": 0,
                "dependencyMaxSeconds": 2,
                "dependencyFailureRate": 0.25,
                "processingMinSeconds": 0.001,
                "processingMaxSeconds": 10,
            },
        },
    }
    dep = by_kind(render_body(body(spec), token=TOKEN))["Deployment"]
    assert dep["spec"]["replicas"] == 3
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example/promdemo:9"
    assert container["imagePullPolicy"] == "Always"
    env = env_of(dep)
    assert env["PROMDEMO_INITIAL_INVENTORY"] == "7"
    assert env["PROMDEMO_OVERSELL"] == "false"
    assert env["PROMDEMO_SIMULATION"] == "off"
    assert env["PROMDEMO_DEPENDENCY_MIN_SECONDS"] == "0"
    assert env["PROMDEMO_DEPENDENCY_MAX_SECONDS"] == "2"
    assert env["PROMDEMO_DEPENDENCY_FAILURE_RATE"] == "0.25"
    assert env["PROMDEMO_PROCESSING_MIN_SECONDS"] == "0.001"
    assert env["PROMDEMO_PROCESSING_MAX_SECONDS"] == "10"
    assert all(isinstance(value, str) for value in env.values())


def test_reset_token_is_a_read_only_mounted_secret():
    dep = by_kind(render_body(body(), token=TOKEN))["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    token_file = env_of(dep)["PROMDEMO_RESET_TOKEN_FILE"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mount = next(
        m for m in container["volumeMounts"] if token_file.startswith(m["mountPath"] + "/")
    )
    assert mount["readOnly"] is True
    volume = volumes[mount["name"]]
    assert volume["secret"]["secretName"] == "shop-reset-token"
    (item,) = volume["secret"]["items"]
    assert item["key"] == "token"
    assert f"{mount['mountPath']}/{item['path']}" == token_file
    # The token is never in the environment or the pod spec itself.
    assert TOKEN not in yaml.safe_dump(dep)
    assert "PROMDEMO_RESET_TOKEN" not in env_of(dep)


def test_security_context_meets_pod_security_restricted():
    pod = by_kind(render_body(body(), token=TOKEN))["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in sc
    assert pod["automountServiceAccountToken"] is False
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= {"secret", "emptyDir", "configMap", "projected"}


def test_grace_period_outlasts_the_apps_shutdown_timeout():
    dep = by_kind(render_body(body(), token=TOKEN))["Deployment"]
    grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > int(env_of(dep)["PROMDEMO_SHUTDOWN_TIMEOUT"])


def test_no_service_links_so_no_stray_promdemo_variables():
    """A Service called `promdemo` would otherwise inject PROMDEMO_PORT=tcp://..."""
    pod = by_kind(render_body(body(name="promdemo"), token=TOKEN))["Deployment"]
    assert pod["spec"]["template"]["spec"]["enableServiceLinks"] is False


# --------------------------------------------------------------------------- Service


def test_service():
    svc = by_kind(render_body(body(), token=TOKEN))["Service"]
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == selector_for("shop")
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]


# --------------------------------------------------------------------------- monitoring


def test_service_monitor():
    spec = {"monitoring": {"scrapeInterval": "30s", "labels": {"release": "prometheus"}}}
    children = render_body(body(spec), token=TOKEN)
    sm = by_kind(children)["ServiceMonitor"]
    svc = by_kind(children)["Service"]
    assert sm["metadata"]["labels"] == {**labels_for("shop"), "release": "prometheus"}
    assert sm["spec"]["selector"] == {"matchLabels": svc["metadata"]["labels"]}
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["demo"]}
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == "http"
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "30s"
    # The endpoint port is the Service's port name.
    assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}


def test_prometheus_rule_is_rules_py_with_the_namespace_and_job_selector():
    spec = {
        "monitoring": {
            "labels": {"release": "prometheus"},
            "alerts": {"noSuccessOrders": {"minOrders": 7, "window": "10m"}},
        }
    }
    pr = by_kind(render_body(body(spec), token=TOKEN))["PrometheusRule"]
    assert pr["metadata"]["labels"] == {**labels_for("shop"), "release": "prometheus"}
    expected = rule_groups(
        parse_spec(spec).monitoring.alerts,
        selector={"namespace": "demo", "job": "shop"},
        alert_labels={"promdemo": "shop"},
    )
    assert pr["spec"]["groups"] == expected
    text = yaml.safe_dump(pr)
    assert 'namespace="demo"' in text
    assert 'job="shop"' in text
    assert "[10m]" in text
    alerts = [r for g in pr["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert "InventoryNegative" in {a["alert"] for a in alerts}
    for alert in alerts:
        assert alert["labels"]["promdemo"] == "shop"


def test_our_labels_win_over_monitoring_labels():
    spec = {"monitoring": {"labels": {"app.kubernetes.io/instance": "other", "release": "p"}}}
    for child in render_body(body(spec), token=TOKEN)[3:]:
        assert child["metadata"]["labels"]["app.kubernetes.io/instance"] == "shop"
        assert child["metadata"]["labels"]["release"] == "p"


def test_monitoring_labels_stay_off_the_other_children():
    spec = {"monitoring": {"labels": {"release": "prometheus"}}}
    for child in render_body(body(spec), token=TOKEN)[:3]:
        assert child["metadata"]["labels"] == labels_for("shop")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("name", "ns"),
    [("", "demo"), ("Shop", "demo"), ("1shop", "demo"), ("shop_1", "demo"), ("s" * 64, "demo"),
     ("shop", ""), ("shop", None)],
)  # fmt: skip
def test_bad_names_are_spec_errors(name: str, ns: str | None):
    b = body()
    b["metadata"]["name"] = name
    b["metadata"]["namespace"] = ns
    with pytest.raises(SpecError) as caught:
        render_body(b, token=TOKEN)
    assert caught.value.reason == "InvalidName"


def test_invalid_spec_is_a_spec_error():
    with pytest.raises(SpecError) as caught:
        render_body(body({"autoHeal": {"podAccess": "nope"}}), token=TOKEN)
    assert caught.value.reason == "InvalidValue"


# --------------------------------------------------------------------------- the full sample


def test_full_sample_renders_its_values():
    children = by_kind(render_body(sample("full.yaml"), token=TOKEN))
    assert children["Deployment"]["spec"]["replicas"] == 2
    assert children["ServiceMonitor"]["metadata"]["labels"]["release"] == "prometheus"
    assert children["PrometheusRule"]["metadata"]["labels"]["release"] == "prometheus"


def test_module_has_no_kopf_import():
    core = ROOT / "operator" / "promdemo_operator"
    for module in (
        "core/render.py",
        "core/spec.py",
        "core/rules.py",
        "core/names.py",
        "core/duration.py",
        "core/timefmt.py",
    ):
        text = (core / module).read_text()
        assert "import kopf" not in text
        assert "from kopf" not in text
        assert "import kubernetes" not in text
    assert render.APP_PORT == 8080
