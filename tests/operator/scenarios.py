"""The operator-tier scenarios, as functions of a running KmockCluster + operator.

Each test in this folder runs one of them; the RBAC coverage test runs them all
against one cluster and compares the requests the operator sent with the RBAC.
Every wait is a poll with a generous timeout; nothing asserts on timing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from promdemo_operator.core import render
from promdemo_operator.core.apply_plan import LAST_APPLIED_ANNOTATION
from promdemo_operator.core.names import secret_name
from tests.support.kmock_cluster import (
    DEPLOYMENTS,
    PROMDEMOS,
    PROMETHEUSRULES,
    SECRETS,
    SERVICEMONITORS,
    SERVICES,
    KmockCluster,
    OperatorProcess,
    operator_log_tail,
)
from tests.support.processes import wait_until
from tests.support.rendering import is_subset, render_body

NS = "demo"
TIMEOUT = 90.0

CHILD_RESOURCES = {
    "Secret": SECRETS,
    "Deployment": DEPLOYMENTS,
    "Service": SERVICES,
    "ServiceMonitor": SERVICEMONITORS,
    "PrometheusRule": PROMETHEUSRULES,
}
MONITORING_KINDS = ("ServiceMonitor", "PrometheusRule")


def child_name(kind: str, name: str) -> str:
    return secret_name(name) if kind == "Secret" else name


def promdemo(name: str, spec: dict[str, Any] | None = None, ns: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "promdemo.dev/v1alpha1",
        "kind": "PromDemo",
        "metadata": {"name": name, "namespace": ns},
        "spec": copy.deepcopy(spec) if spec is not None else {},
    }


def wait(
    predicate: Callable[[], bool],
    what: str,
    op: OperatorProcess | None = None,
    timeout: float = TIMEOUT,
) -> None:
    try:
        wait_until(predicate, timeout=timeout, interval=0.2, what=what)
    except TimeoutError as e:
        tail = f"\n--- operator log ---\n{operator_log_tail(op)}" if op is not None else ""
        raise AssertionError(f"{e}{tail}") from None


def condition(pd: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in (pd.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return {}


def wait_observed(
    cluster: KmockCluster, name: str, op: OperatorProcess | None = None, ns: str = NS
) -> dict[str, Any]:
    """Wait until status.observedGeneration == metadata.generation; the PromDemo."""
    seen: dict[str, Any] = {}

    def observed() -> bool:
        pd = cluster.get(PROMDEMOS, ns, name) or {}
        seen["pd"] = pd
        status = pd.get("status") or {}
        gen = (pd.get("metadata") or {}).get("generation")
        return gen is not None and status.get("observedGeneration") == gen

    wait(observed, f"PromDemo {ns}/{name} observed", op)
    return seen["pd"]


def children(cluster: KmockCluster, name: str, ns: str = NS) -> dict[str, dict[str, Any]]:
    """The children of PromDemo `name` that exist now, by kind."""
    found = {}
    for kind, res in CHILD_RESOURCES.items():
        for obj in cluster.stored(res, ns) if _served(cluster, res) else []:
            if obj["metadata"]["name"] == child_name(kind, name):
                found[kind] = obj
    return found


def _served(cluster: KmockCluster, res: str) -> bool:
    return cluster.monitoring or res not in (SERVICEMONITORS, PROMETHEUSRULES)


def instance_objects(cluster: KmockCluster, name: str, ns: str = NS) -> dict[str, int]:
    """How many objects of each child resource carry `app.kubernetes.io/instance=name`."""
    counts = {}
    for kind, res in CHILD_RESOURCES.items():
        if _served(cluster, res):
            items = cluster.list(res, ns, label_selector=f"app.kubernetes.io/instance={name}")
            counts[kind] = len(items)
    return counts


def wait_children(
    cluster: KmockCluster,
    name: str,
    kinds: tuple[str, ...],
    op: OperatorProcess | None = None,
    ns: str = NS,
) -> dict[str, dict[str, Any]]:
    wait(lambda: set(kinds) <= set(children(cluster, name, ns)), f"children {kinds} of {name}", op)
    return children(cluster, name, ns)


def token_of(cluster: KmockCluster, name: str, ns: str = NS) -> str | None:
    return render.token_from_secret(cluster.get(SECRETS, ns, secret_name(name)))


def assert_children_match_render(
    cluster: KmockCluster, pd: dict[str, Any], kids: dict[str, dict[str, Any]]
) -> None:
    """Every child holds what `render_children` says (owner references included)."""
    token = token_of(cluster, pd["metadata"]["name"], pd["metadata"]["namespace"])
    assert token, "the reset-token Secret has no token"
    expected = render_body(pd, token=token)
    for want in expected:
        got = kids[want["kind"]]
        view = {k: v for k, v in want.items() if k not in ("metadata", "status")}
        view["metadata"] = {k: want["metadata"][k] for k in ("name", "namespace", "labels")}
        assert is_subset(view, got), f"{want['kind']} differs from the render:\n{got}"
        refs = got["metadata"].get("ownerReferences") or []
        assert [r["uid"] for r in refs] == [pd["metadata"]["uid"]], refs
        assert refs[0]["kind"] == "PromDemo"
        assert refs[0]["controller"] is True


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def event_reasons(cluster: KmockCluster, name: str, ns: str = NS) -> list[tuple[str, str, str]]:
    return [
        (e.get("type", ""), e.get("reason", ""), e.get("message", ""))
        for e in cluster.events_for(ns, name)
    ]


def uids(kids: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {kind: obj["metadata"]["uid"] for kind, obj in kids.items()}


def never_deleted(cluster: KmockCluster, kind: str, name: str, ns: str = NS) -> bool:
    history = cluster.history(CHILD_RESOURCES[kind], ns, child_name(kind, name))
    return bool(history) and None not in history


# --------------------------------------------------------------------------- scenarios

FULL_SPEC: dict[str, Any] = {
    "replicas": 2,
    "app": {"initialInventory": 100, "simulation": {"dependencyFailureRate": 0.1}},
    "monitoring": {"labels": {"release": "prometheus"}, "scrapeInterval": "15s"},
}


def scenario_create(cluster: KmockCluster, op: OperatorProcess, name: str = "shop") -> dict:
    """Create → the five children, owned, with the rendered content; status and events."""
    cluster.create(promdemo(name, FULL_SPEC))
    pd = wait_observed(cluster, name, op)
    kids = wait_children(cluster, name, tuple(CHILD_RESOURCES), op)
    assert_children_match_render(cluster, pd, kids)
    assert kids["ServiceMonitor"]["metadata"]["labels"]["release"] == "prometheus"
    assert kids["PrometheusRule"]["metadata"]["labels"]["release"] == "prometheus"
    assert kids["Deployment"]["spec"]["replicas"] == 2

    status = pd["status"]
    assert status["selector"] == (
        f"app.kubernetes.io/name=promdemo,app.kubernetes.io/instance={name}"
    )
    assert status["readyReplicas"] == 0  # kmock runs no Deployment controller
    assert condition(pd, "SpecValid")["status"] == "True"
    assert condition(pd, "MonitoringReady")["status"] == "True"
    assert condition(pd, "Available")["status"] == "False"
    assert condition(pd, "Available")["reason"] == "ReplicasNotReady"

    def created_events() -> bool:
        msgs = " ".join(
            m for t, r, m in event_reasons(cluster, name) if t == "Normal" and r == "Created"
        )
        return all(f"{kind} {child_name(kind, name)}" in msgs for kind in CHILD_RESOURCES)

    wait(created_events, f"a Created event naming each child of {name}", op)
    assert instance_objects(cluster, name) == dict.fromkeys(CHILD_RESOURCES, 1)
    return pd


def scenario_deployment_ready(cluster: KmockCluster, op: OperatorProcess, name: str) -> None:
    """Play the Deployment controller: readiness reaches status and Available."""
    deployment = cluster.get(DEPLOYMENTS, NS, name)
    assert deployment is not None
    replicas = deployment["spec"]["replicas"]
    cluster.patch(
        DEPLOYMENTS, NS, name,
        {"status": {"replicas": replicas, "readyReplicas": replicas,
                    "availableReplicas": replicas, "observedGeneration": 1}},
        subresource="status",
    )  # fmt: skip

    def available() -> bool:
        pd = cluster.get(PROMDEMOS, NS, name) or {}
        return (pd.get("status") or {}).get("readyReplicas") == replicas and condition(
            pd, "Available"
        ).get("status") == "True"

    wait(available, f"{name} Available with {replicas} ready replicas", op)
    pd = cluster.get(PROMDEMOS, NS, name) or {}
    assert pd["status"]["replicas"] == replicas


def scenario_update(cluster: KmockCluster, op: OperatorProcess, name: str) -> None:
    """Spec changes reach the children by patches: same objects, nothing duplicated."""
    before = children(cluster, name)
    token = token_of(cluster, name)
    cluster.patch(
        PROMDEMOS, NS, name,
        {"spec": {"replicas": 3, "app": {"initialInventory": 50, "oversell": False,
                                         "simulation": {"dependencyMaxSeconds": 0.8}}}},
    )  # fmt: skip
    pd = cluster.get(PROMDEMOS, NS, name) or {}
    assert pd["metadata"]["generation"] >= 2, "the emulator bumps generation on spec changes"
    pd = wait_observed(cluster, name, op)

    def patched() -> bool:
        dep = cluster.get(DEPLOYMENTS, NS, name) or {}
        env = env_of(dep)
        return (
            dep["spec"]["replicas"] == 3
            and env.get("PROMDEMO_INITIAL_INVENTORY") == "50"
            and env.get("PROMDEMO_OVERSELL") == "false"
            and env.get("PROMDEMO_DEPENDENCY_MAX_SECONDS") == "0.8"
        )

    wait(patched, f"Deployment {name} patched to the new spec", op)
    after = children(cluster, name)
    assert uids(after) == uids(before), "children were re-created instead of patched"
    assert instance_objects(cluster, name) == dict.fromkeys(CHILD_RESOURCES, 1)
    assert all(never_deleted(cluster, kind, name) for kind in CHILD_RESOURCES)
    assert token_of(cluster, name) == token, "an update rotated the reset token"
    assert_children_match_render(cluster, pd, after)

    def updated_event() -> bool:
        return any(r == "Updated" and "Deployment" in m for _, r, m in event_reasons(cluster, name))

    wait(updated_event, "an Updated event for the Deployment", op)

    # Switching monitoring objects off removes them (only them); on again brings them back.
    off = {"serviceMonitor": False, "prometheusRule": False}
    cluster.patch(PROMDEMOS, NS, name, {"spec": {"monitoring": off}})
    wait_observed(cluster, name, op)
    wait(
        lambda: set(children(cluster, name)) == set(CHILD_RESOURCES) - set(MONITORING_KINDS),
        "ServiceMonitor and PrometheusRule deleted", op,
    )  # fmt: skip
    pd = cluster.get(PROMDEMOS, NS, name) or {}
    assert condition(pd, "MonitoringReady")["reason"] == "MonitoringDisabled"
    on = {"serviceMonitor": True, "prometheusRule": True}
    cluster.patch(PROMDEMOS, NS, name, {"spec": {"monitoring": on}})
    wait_children(cluster, name, tuple(CHILD_RESOURCES), op)
    wait_observed(cluster, name, op)


def scenario_drift_repaired(cluster: KmockCluster, op: OperatorProcess, name: str) -> None:
    """Hand edits of the children are patched back (same objects); the token is kept."""
    before = uids(children(cluster, name))
    token = token_of(cluster, name)
    managed_by = {"metadata": {"labels": {"app.kubernetes.io/managed-by": None}}}
    cluster.patch(SECRETS, NS, secret_name(name), managed_by)
    cluster.patch(SERVICES, NS, name, {"spec": {"ports": [{"name": "http", "port": 1}]}})
    cluster.patch(DEPLOYMENTS, NS, name, {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "evil:latest"}]}}}})  # fmt: skip
    cluster.patch(SERVICEMONITORS, NS, name, {"spec": {"endpoints": []}})
    cluster.patch(PROMETHEUSRULES, NS, name, {"spec": {"groups": []}, **managed_by})
    pd = cluster.get(PROMDEMOS, NS, name) or {}

    def repaired() -> bool:
        try:
            assert_children_match_render(cluster, pd, children(cluster, name))
        except AssertionError:
            return False
        return True

    wait(repaired, f"children of {name} patched back to the render", op)
    assert uids(children(cluster, name)) == before, "a drifted child was re-created"
    assert token_of(cluster, name) == token


PRUNE_LABELS = {"release": "prometheus", "team": "shop"}
ARGO_LABEL = "argocd.argoproj.io/instance"
HAND_ANNOTATION = "example.com/edited-by-hand"


def operator_gets(cluster: KmockCluster, resource: str, name: str, since: int) -> int:
    """How many GETs of `resource/name` the operator sent since api call number `since`."""
    return sum(
        1
        for c in cluster.api_calls()[since:]
        if c.client == "operator" and c.verb == "get" and c.resource == resource and c.name == name
    )


def wait_resyncs(
    cluster: KmockCluster, op: OperatorProcess, name: str, rounds: int, ns: str = NS
) -> None:
    """Wait until the operator has reconciled PromDemo `name` `rounds` more times."""
    mark = len(cluster.api_calls())
    wait(
        lambda: operator_gets(cluster, "servicemonitors", name, mark) >= rounds,
        f"{rounds} more reconciles of {ns}/{name}", op,
    )  # fmt: skip


def scenario_dropped_labels_pruned(
    cluster: KmockCluster, op: OperatorProcess, name: str = "labels"
) -> None:
    """A label dropped from spec.monitoring.labels leaves both monitoring objects.

    The operator deletes only keys it set itself (recorded in the promdemo.dev/last-applied
    annotation): a label or annotation a third party added by hand stays, the objects are
    patched (not re-created), and once converged a resync writes nothing again.
    """
    cluster.create(promdemo(name, {"monitoring": {"labels": PRUNE_LABELS}}))
    wait_observed(cluster, name, op)
    kids = wait_children(cluster, name, tuple(CHILD_RESOURCES), op)
    for kind in MONITORING_KINDS:
        meta = kids[kind]["metadata"]
        assert {k: meta["labels"].get(k) for k in PRUNE_LABELS} == PRUNE_LABELS, meta
        assert LAST_APPLIED_ANNOTATION in (meta.get("annotations") or {}), meta
    # Third parties: Argo CD's tracking label, and an annotation added with kubectl.
    cluster.patch(SERVICEMONITORS, NS, name, {"metadata": {"labels": {ARGO_LABEL: name}}})
    cluster.patch(
        PROMETHEUSRULES, NS, name, {"metadata": {"annotations": {HAND_ANNOTATION: "yes"}}}
    )
    before = uids(children(cluster, name))

    cluster.patch(PROMDEMOS, NS, name, {"spec": {"monitoring": {"labels": {"release": None}}}})
    pd = wait_observed(cluster, name, op)
    assert pd["spec"]["monitoring"]["labels"] == {"team": "shop"}

    def pruned() -> bool:
        kids = children(cluster, name)
        return all(
            kind in kids and "release" not in kids[kind]["metadata"].get("labels", {})
            for kind in MONITORING_KINDS
        )

    wait(pruned, f"label release removed from the monitoring objects of {name}", op)
    # Let any reconcile that started before the spec change finish, then look.
    wait_resyncs(cluster, op, name, 2)
    wait(pruned, f"label release still removed from the monitoring objects of {name}", op)
    kids = children(cluster, name)
    for kind in MONITORING_KINDS:
        assert kids[kind]["metadata"]["labels"]["team"] == "shop", kind
    assert kids["ServiceMonitor"]["metadata"]["labels"][ARGO_LABEL] == name
    assert kids["PrometheusRule"]["metadata"]["annotations"][HAND_ANNOTATION] == "yes"
    assert_children_match_render(cluster, pd, kids)
    assert uids(kids) == before, "a child was re-created instead of patched"
    assert all(never_deleted(cluster, kind, name) for kind in CHILD_RESOURCES)

    # No loop: the annotation matches what is desired, so resyncs write nothing.
    versions = {k: o["metadata"]["resourceVersion"] for k, o in kids.items()}
    wait_resyncs(cluster, op, name, 3)
    now = {k: o["metadata"]["resourceVersion"] for k, o in children(cluster, name).items()}
    assert now == versions, "converged children were patched again"


def scenario_child_deleted(cluster: KmockCluster, op: OperatorProcess, name: str) -> None:
    """A deleted child comes back (the resync), the others are left alone."""
    before = uids(children(cluster, name))
    assert cluster.delete(DEPLOYMENTS, NS, name)
    assert cluster.delete(SERVICEMONITORS, NS, name)

    def back() -> bool:
        now = uids(children(cluster, name))
        return set(now) == set(CHILD_RESOURCES) and all(
            now[k] != before[k] for k in ("Deployment", "ServiceMonitor")
        )

    wait(back, f"Deployment and ServiceMonitor of {name} re-created", op)
    now = uids(children(cluster, name))
    for kind in ("Secret", "Service", "PrometheusRule"):
        assert now[kind] == before[kind], f"{kind} was re-created although it was not deleted"
    assert instance_objects(cluster, name) == dict.fromkeys(CHILD_RESOURCES, 1)


def containers_of(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def scenario_other_writers(cluster: KmockCluster, op: OperatorProcess, name: str) -> None:
    """The PromDemo owns `replicas`; what other writers add to the Deployment is kept.

    `kubectl scale deploy/NAME` (or an HPA on the Deployment) is set back to
    spec.replicas with a Warning Event saying how to scale instead; scaling the
    PromDemo through its scale subresource (`kubectl scale pd/NAME`) is followed. A
    sidecar container, an env var injected into the app's container and a label
    added by other controllers survive spec changes and drift repairs.
    """
    pd = cluster.get(PROMDEMOS, NS, name) or {}
    replicas = pd["spec"]["replicas"]

    # 1. kubectl scale deploy/NAME --replicas=7: set back, and told so.
    cluster.patch(DEPLOYMENTS, NS, name, {"spec": {"replicas": 7}})
    wait(
        lambda: (cluster.get(DEPLOYMENTS, NS, name) or {})["spec"]["replicas"] == replicas,
        f"Deployment {name} set back to spec.replicas={replicas}", op,
    )  # fmt: skip

    def told() -> list[str]:
        return [m for t, r, m in event_reasons(cluster, name)
                if (t, r) == ("Warning", "ReplicasSetBack")]  # fmt: skip

    wait(lambda: bool(told()), "a ReplicasSetBack warning event", op)
    assert f"kubectl scale promdemo/{name}" in told()[0], told()
    assert "scaled to 7" in told()[0], told()

    # 2. The supported way: the PromDemo's scale subresource. Followed, no warning.
    cluster.patch(PROMDEMOS, NS, name, {"spec": {"replicas": replicas + 1}}, subresource="scale")
    wait(
        lambda: (cluster.get(DEPLOYMENTS, NS, name) or {})["spec"]["replicas"] == replicas + 1,
        "the Deployment follows kubectl scale pd", op,
    )  # fmt: skip
    wait_observed(cluster, name, op)
    assert len(told()) == 1, "scaling the PromDemo was reported as an override"

    # 3. Other controllers add a sidecar, an env var to the app's container, a label.
    cluster.patch(DEPLOYMENTS, NS, name, [
        {"op": "add", "path": "/spec/template/spec/containers/-",
         "value": {"name": "sidecar", "image": "mesh-proxy:1"}},
        {"op": "add", "path": "/spec/template/spec/containers/0/env/-",
         "value": {"name": "INJECTED_BY_WEBHOOK", "value": "1"}},
        {"op": "add", "path": "/metadata/labels/team", "value": "shop"},
    ])  # fmt: skip
    # A spec change and a hand edit of the app's image: both applied, theirs kept.
    cluster.patch(PROMDEMOS, NS, name, {"spec": {"app": {"initialInventory": 42}}})
    cluster.patch(DEPLOYMENTS, NS, name, [
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "evil:1"},
    ])  # fmt: skip
    wait_observed(cluster, name, op)

    def converged() -> bool:
        dep = cluster.get(DEPLOYMENTS, NS, name) or {}
        app = containers_of(dep).get("app") or {}
        return (
            env_of(dep).get("PROMDEMO_INITIAL_INVENTORY") == "42" and app.get("image") != "evil:1"
        )

    wait(converged, f"Deployment {name} patched to the new spec, the image set back", op)
    dep = cluster.get(DEPLOYMENTS, NS, name) or {}
    assert containers_of(dep)["sidecar"] == {"name": "sidecar", "image": "mesh-proxy:1"}
    assert env_of(dep)["INJECTED_BY_WEBHOOK"] == "1"
    assert dep["metadata"]["labels"]["team"] == "shop"
    assert list(containers_of(dep)) == ["app", "sidecar"]


def scenario_not_owned(cluster: KmockCluster, op: OperatorProcess, name: str = "taken") -> None:
    """A Service of the PromDemo's name that someone else made is left alone (no adoption)."""
    theirs = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "someone-else"}},
        "spec": {"selector": {"app": "someone-else"}, "ports": [{"name": "web", "port": 80}]},
    }
    created = cluster.create(theirs)
    cluster.create(promdemo(name, {"replicas": 1}))
    wait_observed(cluster, name, op)
    kinds = tuple(
        k for k in CHILD_RESOURCES if k != "Service" and _served(cluster, CHILD_RESOURCES[k])
    )
    wait_children(cluster, name, kinds, op)

    def warned() -> bool:
        return any(
            (t, r) == ("Warning", "NotOwned") and f"Service {name}" in m
            for t, r, m in event_reasons(cluster, name)
        )

    wait(warned, "a NotOwned warning event", op)
    service = cluster.get(SERVICES, NS, name) or {}
    assert service["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"], (
        "the operator changed a Service it does not own"
    )
    assert not service["metadata"].get("ownerReferences")
    # Once theirs is gone, the PromDemo gets its own.
    assert cluster.delete(SERVICES, NS, name)
    wait(
        lambda: bool((cluster.get(SERVICES, NS, name) or {}).get("metadata", {})
                     .get("ownerReferences")),
        f"the PromDemo's own Service {name}", op,
    )  # fmt: skip


def scenario_status_preserved(cluster: KmockCluster, op: OperatorProcess, name: str) -> None:
    """What the heal loop writes to status survives reconciles."""
    heal = {
        "inventory": {f"{name}-abc": -3},
        "lowestInventory": -3,
        "healCount": 2,
        "lastHeal": {
            "pod": f"{name}-abc",
            "before": -3,
            "after": 100,
            "time": "2026-01-01T00:00:00Z",
        },
    }
    pd = cluster.get(PROMDEMOS, NS, name) or {}
    conditions = [*pd["status"]["conditions"],
                  {"type": "Healing", "status": "False", "reason": "Idle", "message": "",
                   "lastTransitionTime": "2026-01-01T00:00:00Z"}]  # fmt: skip
    cluster.patch(
        PROMDEMOS, NS, name, {"status": {**heal, "conditions": conditions}}, subresource="status"
    )
    cluster.patch(PROMDEMOS, NS, name, {"spec": {"app": {"initialInventory": 70}}})
    pd = wait_observed(cluster, name, op)
    wait(lambda: env_of(cluster.get(DEPLOYMENTS, NS, name) or {}).get(
        "PROMDEMO_INITIAL_INVENTORY") == "70", "the knob reaches the Deployment", op)  # fmt: skip
    pd = cluster.get(PROMDEMOS, NS, name) or {}
    for key, value in heal.items():
        assert pd["status"][key] == value, f"status.{key} was clobbered"
    assert condition(pd, "Healing") == conditions[-1], "a foreign condition was clobbered"


def scenario_restart(
    cluster: KmockCluster, op: OperatorProcess, names: list[str]
) -> OperatorProcess:
    """Restart the operator: nothing re-created, nothing duplicated, nothing rewritten."""
    before = {n: children(cluster, n) for n in names}
    assert cluster.stop_operator(op) == 0, "the operator did not stop cleanly on SIGTERM"
    mark = len(cluster.api_calls())
    new_op = cluster.start_operator(log_name="operator-restarted.log")

    def resumed_and_resynced() -> bool:
        gets = [
            c for c in cluster.api_calls()[mark:]
            if c.verb == "get" and c.resource == "deployments" and c.name in names
        ]  # fmt: skip
        # resume + at least two resync rounds for each PromDemo
        return all(sum(1 for c in gets if c.name == n) >= 3 for n in names)

    wait(resumed_and_resynced, "the restarted operator reconciled every PromDemo", new_op)
    after_calls = cluster.api_calls()[mark:]
    creates = [c for c in after_calls if c.verb == "create" and c.resource != "events"]
    assert not creates, f"the restarted operator created objects: {creates}"
    for n in names:
        now = children(cluster, n)
        assert uids(now) == uids(before[n]), f"children of {n} re-created"
        versions = {k: o["metadata"]["resourceVersion"] for k, o in now.items()}
        old_versions = {k: o["metadata"]["resourceVersion"] for k, o in before[n].items()}
        assert versions == old_versions, f"children of {n} rewritten after the restart"
        assert instance_objects(cluster, n) == dict.fromkeys(CHILD_RESOURCES, 1)
    return new_op


def scenario_monitoring_absent_then_added(
    cluster: KmockCluster, op: OperatorProcess, name: str = "nomon"
) -> None:
    """No monitoring CRDs: the app is deployed, MonitoringReady=False; CRDs added → objects."""
    assert not cluster.monitoring, "start this scenario on a cluster without monitoring CRDs"
    cluster.create(promdemo(name, {"monitoring": {"labels": {"release": "prometheus"}}}))
    pd = wait_observed(cluster, name, op)
    kids = wait_children(cluster, name, ("Secret", "Deployment", "Service"), op)
    assert set(kids) == {"Secret", "Deployment", "Service"}
    c = condition(pd, "MonitoringReady")
    assert (c["status"], c["reason"]) == ("False", "MonitoringCRDsMissing"), c
    assert "servicemonitors" in c["message"]
    assert "prometheusrules" in c["message"]
    assert condition(pd, "SpecValid")["status"] == "True"
    # Whether a Prometheus would select them cannot be told: Unknown, not False.
    for type_ in ("PrometheusSelected", "TargetsUp", "RulesLoaded"):
        c = condition(pd, type_)
        assert (c["status"], c["reason"]) == ("Unknown", "MonitoringCRDsMissing"), c
    wait(
        lambda: ("Warning", "MonitoringCRDsMissing") in
        {(t, r) for t, r, _ in event_reasons(cluster, name)},
        "a MonitoringCRDsMissing warning event", op,
    )  # fmt: skip

    cluster.install_monitoring_crds()
    kids = wait_children(cluster, name, tuple(CHILD_RESOURCES), op)
    wait(
        lambda: condition(cluster.get(PROMDEMOS, NS, name) or {}, "MonitoringReady").get("status")
        == "True",
        "MonitoringReady=True once the CRDs exist", op,
    )  # fmt: skip
    pd = cluster.get(PROMDEMOS, NS, name) or {}
    assert_children_match_render(cluster, pd, kids)
    if cluster.prometheus:  # Prometheus objects served, none created yet
        wait_condition(cluster, name, "PrometheusSelected", "False", "NoPrometheus", op)
    else:  # prometheus-operator's CRDs without the Prometheus one
        wait_condition(cluster, name, "PrometheusSelected", "Unknown", "PrometheusCRDMissing", op)
        c = wait_condition(cluster, name, "TargetsUp", "Unknown", "PrometheusCRDMissing", op)
        assert "prometheus-operator is not installed" in c["message"], c


INVALID_SIMULATION = {"app": {"simulation": {"dependencyMinSeconds": 2, "dependencyMaxSeconds": 1}}}


def scenario_invalid_spec(
    cluster: KmockCluster, op: OperatorProcess, bad: str = "broken", good: str = "fine"
) -> None:
    """An invalid spec: SpecValid=False with the reason; another PromDemo is unaffected."""
    cluster.create(promdemo(bad, INVALID_SIMULATION))
    cluster.create(promdemo(good, {"replicas": 1}))
    pd_bad = wait_observed(cluster, bad, op)
    c = condition(pd_bad, "SpecValid")
    assert (c["status"], c["reason"]) == ("False", "InvalidSpec"), c
    assert "dependencyMinSeconds" in c["message"], c
    # Not retried hot: the status was written once, and is not written again while the
    # spec stays as it is (checked below, once the other PromDemo is fully served).
    status_writes = _status_versions(cluster, bad)
    assert status_writes >= 1

    pd_good = wait_observed(cluster, good, op)
    kinds = tuple(k for k in CHILD_RESOURCES if cluster.monitoring or k not in MONITORING_KINDS)
    kids = wait_children(cluster, good, kinds, op)
    assert_children_match_render(cluster, pd_good, kids)
    assert condition(pd_good, "SpecValid")["status"] == "True"
    assert children(cluster, bad) == {}, "children were created for an invalid spec"
    assert _status_versions(cluster, bad) == status_writes, "the invalid spec was retried"
    wait(
        lambda: ("Warning", "InvalidSpec") in {(t, r) for t, r, _ in event_reasons(cluster, bad)},
        "an InvalidSpec warning event", op,
    )  # fmt: skip

    # Fixed → reconciled like any other.
    cluster.patch(
        PROMDEMOS, NS, bad, {"spec": {"app": {"simulation": {"dependencyMinSeconds": 0.5}}}}
    )
    pd_bad = wait_observed(cluster, bad, op)
    assert condition(pd_bad, "SpecValid")["status"] == "True"
    wait_children(cluster, bad, ("Secret", "Deployment", "Service"), op)


def _status_versions(cluster: KmockCluster, name: str, ns: str = NS) -> int:
    """How many different statuses PromDemo `name` has had."""
    statuses = []
    for version in cluster.history(PROMDEMOS, ns, name):
        status = (version or {}).get("status")
        if status and (not statuses or statuses[-1] != status):
            statuses.append(status)
    return len(statuses)


def scenario_delete_promdemo(cluster: KmockCluster, op: OperatorProcess, name: str) -> None:
    """Deleting a PromDemo: kopf releases its finalizer; the owned children go with it."""
    assert cluster.delete(PROMDEMOS, NS, name)
    wait(lambda: cluster.get(PROMDEMOS, NS, name) is None, f"PromDemo {name} gone", op)
    wait(lambda: children(cluster, name) == {}, f"children of {name} garbage-collected", op)


# --------------------------------------------------------------------------- Prometheus objects

#: kube-prometheus-stack's Prometheus object with the chart's defaults (release `prometheus`).
KPS_FIXTURE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "prometheus" / ("kube-prometheus-stack.yaml")
)
KPS = "monitoring/prometheus-kube-prometheus-prometheus"
PROMETHEUS_NS = "monitoring"


def kps_prometheus(release: str = "prometheus", name: str | None = None) -> dict[str, Any]:
    """kube-prometheus-stack's Prometheus object, selecting objects labelled release=`release`."""
    obj = next(d for d in yaml.safe_load_all(KPS_FIXTURE.read_text()) if d)
    for field in ("serviceMonitorSelector", "ruleSelector"):
        obj["spec"][field] = {"matchLabels": {"release": release}}
    if name is not None:
        obj["metadata"]["name"] = name
    return obj


def wait_condition(
    cluster: KmockCluster,
    name: str,
    type_: str,
    status: str,
    reason: str | None = None,
    op: OperatorProcess | None = None,
    ns: str = NS,
) -> dict[str, Any]:
    """Wait until condition `type_` of PromDemo `name` has `status` (and `reason`); it."""
    seen: dict[str, Any] = {}

    def holds() -> bool:
        c = condition(cluster.get(PROMDEMOS, ns, name) or {}, type_)
        seen["c"] = c
        return c.get("status") == status and reason in (None, c.get("reason"))

    try:
        wait(holds, f"{type_}={status} ({reason or 'any reason'}) on {name}", op)
    except AssertionError as e:
        raise AssertionError(f"{e}\nlast {type_}: {seen.get('c')}") from None
    return seen["c"]


def has_event(cluster: KmockCluster, name: str, type_: str, reason: str, ns: str = NS) -> bool:
    return any((t, r) == (type_, reason) for t, r, _ in event_reasons(cluster, name, ns))


def scenario_prometheus_selection(
    cluster: KmockCluster, op: OperatorProcess, name: str = "picked"
) -> None:
    """PrometheusSelected follows the PromDemo's labels, the Prometheus object and namespaces.

    kube-prometheus-stack's Prometheus (no Prometheus process behind it: its service
    proxy answers 503): not selected, with the exact label; the label added → selected,
    and the operator asks that Prometheus (TargetsUp says why it cannot); its selector
    changed, then a namespace selector and the namespace's label: each re-evaluated at
    once, with an Event when the condition changes.
    """
    cluster.ensure_namespace(PROMETHEUS_NS)
    if cluster.get("monitoring.coreos.com/v1/prometheuses", PROMETHEUS_NS, KPS.split("/")[1]):
        raise AssertionError("start this scenario without the kube-prometheus-stack object")
    cluster.add_prometheus(kps_prometheus())
    cluster.create(promdemo(name, {"autoHeal": {"enabled": False}}))
    c = wait_condition(cluster, name, "PrometheusSelected", "False", "LabelsNotMatched", op)
    assert c["message"] == (
        f"Prometheus {KPS} selects ServiceMonitors and PrometheusRules labelled"
        " release=prometheus; add spec.monitoring.labels: {release: prometheus}"
    ), c
    wait(lambda: has_event(cluster, name, "Warning", "PrometheusNotSelected"),
         "a PrometheusNotSelected event", op)  # fmt: skip
    for type_ in ("TargetsUp", "RulesLoaded"):
        wait_condition(cluster, name, type_, "Unknown", "NotSelected", op)

    cluster.patch(
        PROMDEMOS, NS, name, {"spec": {"monitoring": {"labels": {"release": "prometheus"}}}}
    )
    c = wait_condition(cluster, name, "PrometheusSelected", "True", "Selected", op)
    assert c["message"] == f"selected by Prometheus {KPS} (ServiceMonitor and PrometheusRule)"
    wait(lambda: has_event(cluster, name, "Normal", "PrometheusSelected"),
         "a PrometheusSelected event", op)  # fmt: skip
    # Asked through prometheus-operated:web, which has no endpoints here: 503, and the fix.
    c = wait_condition(cluster, name, "TargetsUp", "False", "PrometheusUnreachable", op)
    assert "HTTP 503" in c["message"], c
    assert (
        f"no Prometheus pod answers behind Service {PROMETHEUS_NS}/prometheus-operated"
        in (c["message"])
    ), c

    # The Prometheus object changes: re-evaluated at once (the resync may be hours away).
    prom = KPS.split("/")[1]
    resource = "monitoring.coreos.com/v1/prometheuses"
    other = {"matchLabels": {"release": "other"}}
    cluster.patch(resource, PROMETHEUS_NS, prom,
                  {"spec": {"serviceMonitorSelector": other, "ruleSelector": other}})  # fmt: skip
    c = wait_condition(cluster, name, "PrometheusSelected", "False", "LabelsNotMatched", op)
    assert c["message"].endswith("add spec.monitoring.labels: {release: other}"), c
    for type_ in ("TargetsUp", "RulesLoaded"):
        wait_condition(cluster, name, type_, "Unknown", "NotSelected", op)

    # A namespace selector: the namespace's labels decide, and their change is seen at once.
    team = {"matchLabels": {"team": "shop"}}
    cluster.patch(resource, PROMETHEUS_NS, prom, {"spec": {
        # {} selects every object: JSON merge patch empties the selector by deleting its key.
        "serviceMonitorSelector": {"matchLabels": None}, "ruleSelector": {"matchLabels": None},
        "serviceMonitorNamespaceSelector": team, "ruleNamespaceSelector": team,
    }})  # fmt: skip
    c = wait_condition(cluster, name, "PrometheusSelected", "False", "NamespaceNotSelected", op)
    assert f"kubectl label namespace {NS} team=shop" in c["message"], c
    cluster.patch("v1/namespaces", None, NS, {"metadata": {"labels": {"team": "shop"}}})
    wait_condition(cluster, name, "PrometheusSelected", "True", "Selected", op)
    # Put things back for whatever runs next on this cluster.
    cluster.patch("v1/namespaces", None, NS, {"metadata": {"labels": {"team": None}}})
    cluster.delete(resource, PROMETHEUS_NS, prom)
    c = wait_condition(cluster, name, "PrometheusSelected", "False", "NoPrometheus", op)


def scenario_match_prometheus_auto(
    cluster: KmockCluster, op: OperatorProcess, name: str = "auto"
) -> None:
    """matchPrometheus: auto adds the release label of the one able Prometheus; two: no guess."""
    cluster.ensure_namespace(PROMETHEUS_NS)
    cluster.add_prometheus(kps_prometheus())
    cluster.create(promdemo(name, {"autoHeal": {"enabled": False},
                                   "monitoring": {"matchPrometheus": "auto",
                                                  "labels": {"team": "shop"}}}))  # fmt: skip
    c = wait_condition(cluster, name, "PrometheusSelected", "True", "Selected", op)
    assert c["message"] == (
        f"selected by Prometheus {KPS} (ServiceMonitor and PrometheusRule);"
        " matchPrometheus: auto added {release: prometheus}"
    ), c
    for kind in MONITORING_KINDS:
        labels = cluster.get(CHILD_RESOURCES[kind], NS, name)["metadata"]["labels"]
        assert (labels.get("release"), labels.get("team")) == ("prometheus", "shop"), labels

    # A second Prometheus wanting another release: the operator does not guess, and takes
    # back the label it added (the user's stay).
    cluster.add_prometheus(kps_prometheus("kps", "kps-kube-prometheus-stack-prometheus"))
    c = wait_condition(cluster, name, "PrometheusSelected", "False", "AmbiguousPrometheus", op)
    assert "set spec.monitoring.labels to the one you mean" in c["message"], c

    def label_taken_back() -> bool:
        labels = cluster.get(SERVICEMONITORS, NS, name)["metadata"]["labels"]
        return "release" not in labels and labels.get("team") == "shop"

    wait(label_taken_back, "the auto label taken back, the user's kept", op)
    cluster.delete("monitoring.coreos.com/v1/prometheuses", PROMETHEUS_NS,
                   "kps-kube-prometheus-stack-prometheus")  # fmt: skip
    wait_condition(cluster, name, "PrometheusSelected", "True", "Selected", op)
    cluster.delete("monitoring.coreos.com/v1/prometheuses", PROMETHEUS_NS, KPS.split("/")[1])
