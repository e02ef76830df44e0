"""PromDemo -> its children, as plain dicts (the operator's desired state).

`render_children(name, namespace, spec, token=..., owner=...)` returns, in this
order: the reset-token Secret, the Deployment, the Service, the ServiceMonitor
and the PrometheusRule (the last two only when `spec.monitoring` enables them).
It takes the typed spec that `spec.parse_spec` produced, and is a pure function
of its arguments: rendering twice gives equal lists, and it never
makes up a token, so a caller that reads the existing Secret's token
(`token_from_secret`) and passes it back never rotates it by accident. A new
PromDemo gets `new_reset_token()`.

Names and labels are the contract of docs/architecture.md: every child is
named after the PromDemo (the Secret `<name>-reset-token`), carries the
`app.kubernetes.io/{name,instance,managed-by}` labels and, when the PromDemo
has a uid, a controller owner reference to it (`owner_reference(body)`;
deleting the PromDemo deletes them). Without a uid (`promdemo render` of a
file) there is no owner to point at, so no owner reference is written.

Plain Python: no kopf, no kubernetes client.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping
from typing import Any

from promdemo_operator.core.names import (
    API_VERSION,
    KIND,
    MONITORING_API_VERSION,
    labels_for,
    secret_name,
    selector_for,
)
from promdemo_operator.core.rules import rule_groups
from promdemo_operator.core.spec import PromDemoSpec, SpecError

__all__ = [
    "APP_PORT",
    "CONTAINER_NAME",
    "PORT_NAME",
    "RESET_TOKEN_KEY",
    "check_name",
    "monitoring_labels",
    "new_reset_token",
    "owner_reference",
    "render_children",
    "token_from_secret",
]

CONTAINER_NAME = "app"
PORT_NAME = "http"
APP_PORT = 8080
# The app's /healthz and /readyz on a port of their own, so that no traffic to
# the service port can delay kubelet's probes (docs/app.md, "Probes").
PROBE_PORT_NAME = "probes"
PROBE_PORT = 8081
RESET_TOKEN_KEY = "token"  # noqa: S105 - the key name in the Secret, not a token
RESET_TOKEN_DIR = "/var/run/secrets/promdemo"  # noqa: S105 - a mount path
RESET_TOKEN_FILE = f"{RESET_TOKEN_DIR}/{RESET_TOKEN_KEY}"
APP_UID = 10001
#: What PROMDEMO_SHUTDOWN_TIMEOUT tells the app; the pod's grace period is longer.
SHUTDOWN_TIMEOUT_SECONDS = 25
# The env the app reads its pod UID from, filled by the downward API.
POD_UID_ENV = "PROMDEMO_POD_UID"
POD_UID_FIELD = {"apiVersion": "v1", "fieldPath": "metadata.uid"}
TERMINATION_GRACE_PERIOD_SECONDS = 30

RESOURCES = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"cpu": "1", "memory": "256Mi"},
}

# A PromDemo's name becomes a Service name (DNS-1035 label) and a label value.
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
NAME_MAX = 63


def new_reset_token() -> str:
    """A fresh random reset token (URL-safe, 256 bits)."""
    return secrets.token_urlsafe(32)


def token_from_secret(secret: Mapping[str, Any] | None) -> str | None:
    """The token held by an existing reset-token Secret (`data` or `stringData`), or None."""
    if not secret:
        return None
    string_data = secret.get("stringData") or {}
    if string_data.get(RESET_TOKEN_KEY):
        return str(string_data[RESET_TOKEN_KEY])
    encoded = (secret.get("data") or {}).get(RESET_TOKEN_KEY)
    if not encoded:
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8") or None
    except (binascii.Error, UnicodeDecodeError):
        return None


# --------------------------------------------------------------------------- helpers


def _env_number(value: float) -> str:
    """A number as an environment variable's value: `1` not `1.0`, `0.05` not `5e-02`."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _env_bool(value: bool) -> str:
    """A boolean as the app's settings read it (`true`/`false`)."""
    return "true" if value else "false"


def _metadata(name: str, namespace: str, owner: Mapping[str, Any] | None, **extra: Any) -> dict:
    labels = dict(extra.pop("labels", None) or {})
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    meta.update(extra)
    if owner is not None:
        meta["ownerReferences"] = [dict(owner)]
    return meta


def monitoring_labels(name: str, spec: PromDemoSpec) -> dict[str, str]:
    """The ServiceMonitor's and PrometheusRule's labels: spec.monitoring.labels plus ours.

    Ours win: they are how the operator finds its objects.
    """
    return {**spec.monitoring.labels, **labels_for(name)}


def _app_env(spec: PromDemoSpec) -> list[dict[str, Any]]:
    app = spec.app
    sim = app.simulation
    pairs = [
        ("PROMDEMO_HOST", "0.0.0.0"),
        ("PROMDEMO_PORT", str(APP_PORT)),
        ("PROMDEMO_PROBE_PORT", str(PROBE_PORT)),
        ("PROMDEMO_INITIAL_INVENTORY", str(app.initial_inventory)),
        ("PROMDEMO_OVERSELL", _env_bool(app.oversell)),
        ("PROMDEMO_SIMULATION", "on" if sim.enabled else "off"),
        ("PROMDEMO_DEPENDENCY_MIN_SECONDS", _env_number(sim.dependency_min_seconds)),
        ("PROMDEMO_DEPENDENCY_MAX_SECONDS", _env_number(sim.dependency_max_seconds)),
        ("PROMDEMO_DEPENDENCY_FAILURE_RATE", _env_number(sim.dependency_failure_rate)),
        ("PROMDEMO_PROCESSING_MIN_SECONDS", _env_number(sim.processing_min_seconds)),
        ("PROMDEMO_PROCESSING_MAX_SECONDS", _env_number(sim.processing_max_seconds)),
        ("PROMDEMO_RESET_TOKEN_FILE", RESET_TOKEN_FILE),
        ("PROMDEMO_SHUTDOWN_TIMEOUT", str(SHUTDOWN_TIMEOUT_SECONDS)),
    ]
    env: list[dict[str, Any]] = [{"name": key, "value": value} for key, value in pairs]
    # The pod's own UID, from the downward API: the app names itself on /metrics and
    # refuses a reset meant for another pod (a pod IP is reused once its pod is gone).
    # `apiVersion` as the API server defaults it, so the applied child does not differ.
    env.append({"name": POD_UID_ENV, "valueFrom": {"fieldRef": dict(POD_UID_FIELD)}})
    return env


def _probe(path: str, *, period: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PROBE_PORT_NAME, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
        "successThreshold": 1,
    }


# --------------------------------------------------------------------------- children


def _secret(name: str, ns: str, owner: Mapping | None, token: str) -> dict[str, Any]:
    encoded = base64.b64encode(token.encode("utf-8")).decode("ascii")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(secret_name(name), ns, owner, labels=labels_for(name)),
        "type": "Opaque",
        "data": {RESET_TOKEN_KEY: encoded},
    }


def _deployment(name: str, ns: str, owner: Mapping | None, spec: PromDemoSpec) -> dict[str, Any]:
    container = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "ports": [
            {"name": PORT_NAME, "containerPort": APP_PORT, "protocol": "TCP"},
            {"name": PROBE_PORT_NAME, "containerPort": PROBE_PORT, "protocol": "TCP"},
        ],
        "env": _app_env(spec),
        "readinessProbe": _probe("/readyz", period=5),
        "livenessProbe": {**_probe("/healthz", period=10), "initialDelaySeconds": 5},
        "resources": {key: dict(value) for key, value in RESOURCES.items()},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "reset-token", "mountPath": RESET_TOKEN_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir, not the host's
        ],
    }
    pod_spec = {
        "automountServiceAccountToken": False,
        # Service links would inject variables such as PROMDEMO_PORT=tcp://... into the
        # app when a Service is called `promdemo`: the app reads PROMDEMO_* itself.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_PERIOD_SECONDS,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": APP_UID,
            "runAsGroup": APP_UID,
            "fsGroup": APP_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {
                "name": "reset-token",
                "secret": {
                    "secretName": secret_name(name),
                    "defaultMode": 0o440,
                    "items": [{"key": RESET_TOKEN_KEY, "path": RESET_TOKEN_KEY}],
                },
            },
            {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, ns, owner, labels=labels_for(name)),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector_for(name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": labels_for(name),
                    # For a Prometheus that discovers pods by annotation (no operator).
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(APP_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def _service(name: str, ns: str, owner: Mapping | None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, ns, owner, labels=labels_for(name)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_for(name),
            "ports": [
                {"name": PORT_NAME, "port": APP_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }


def _service_monitor(name: str, ns: str, owner: Mapping | None, spec: PromDemoSpec) -> dict:
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": _metadata(name, ns, owner, labels=monitoring_labels(name, spec)),
        "spec": {
            "selector": {"matchLabels": labels_for(name)},
            "namespaceSelector": {"matchNames": [ns]},
            "endpoints": [
                {
                    "port": PORT_NAME,
                    "path": "/metrics",
                    "scheme": "http",
                    "interval": spec.monitoring.scrape_interval,
                }
            ],
        },
    }


def _prometheus_rule(name: str, ns: str, owner: Mapping | None, spec: PromDemoSpec) -> dict:
    try:
        groups = rule_groups(
            spec.monitoring.alerts,
            selector={"namespace": ns, "job": name},
            alert_labels={"promdemo": name},
        )
    except ValueError as exc:  # only a name that is no Prometheus label value gets here
        raise SpecError("InvalidRules", f"spec.monitoring.alerts: {exc}") from exc
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "PrometheusRule",
        "metadata": _metadata(name, ns, owner, labels=monitoring_labels(name, spec)),
        "spec": {"groups": groups},
    }


def check_name(name: Any) -> str:
    """`name` when it can name a PromDemo's children; SpecError(InvalidName) otherwise."""
    if not isinstance(name, str) or not name:
        raise SpecError("InvalidName", "metadata.name: missing", field="metadata.name")
    if len(name) > NAME_MAX or not _NAME_RE.match(name):
        raise SpecError(
            "InvalidName",
            f"metadata.name: {name!r} must be at most {NAME_MAX} characters of a-z, 0-9 and '-',"
            " starting with a letter (it names the Service and is a label value)",
            field="metadata.name",
        )
    return name


def owner_reference(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The controller owner reference to the PromDemo `body`, or None when it has no uid."""
    meta = body.get("metadata") or {}
    uid = meta.get("uid")
    if not uid:
        return None
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def render_children(
    name: str,
    namespace: str,
    spec: PromDemoSpec,
    *,
    token: str,
    owner: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The children of PromDemo `namespace/name`: Secret, Deployment, Service, ServiceMonitor,
    PrometheusRule (the last two left out when `spec.monitoring` turns them off).

    `spec` is the PromDemo's parsed spec (`spec.parse_spec`): it is read once, by the
    caller. `token` is the reset token to put in the Secret: the existing Secret's
    (`token_from_secret`) or, for a new PromDemo, `new_reset_token()`. `owner` is
    `owner_reference(body)`; None (a file rendered offline) writes no owner reference.
    Raises SpecError(InvalidName) for a name or namespace that cannot name the children.
    """
    if not isinstance(token, str) or not token:
        raise ValueError("render_children: token must be a non-empty string")
    name = check_name(name)
    if not isinstance(namespace, str) or not namespace:
        raise SpecError("InvalidName", "metadata.namespace: missing", field="metadata.namespace")

    children = [
        _secret(name, namespace, owner, token),
        _deployment(name, namespace, owner, spec),
        _service(name, namespace, owner),
    ]
    if spec.monitoring.service_monitor:
        children.append(_service_monitor(name, namespace, owner, spec))
    if spec.monitoring.prometheus_rule:
        children.append(_prometheus_rule(name, namespace, owner, spec))
    return children
