"""`kube.Kube.apply` (runtime/kube.py): create, patch, or nothing, through the plan of
core/apply_plan.py, against an in-memory store that answers as an API server."""

from __future__ import annotations

import copy
from typing import Any

from promdemo_operator.core.apply_plan import (
    LAST_APPLIED_ANNOTATION,
    plan_patch,
    with_last_applied,
)
from promdemo_operator.runtime.kube import KINDS, Kube, KubeError, MonitoringSupport
from tests.support.child_objects import service_monitor
from tests.support.merge_patch import merge_patch

UID = "6a1e2c3d-0000-4000-8000-000000000002"


class FakeKube(Kube):
    """Kube over an in-memory store that applies merge patches like an API server
    (resourceVersion bumped on every change, a stale one in a patch answers 409)."""

    def __init__(self) -> None:
        super().__init__(api_client=object())  # type: ignore[arg-type]
        self.store: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, Any]] = []
        self.version = 0

    def _bump(self, obj: dict[str, Any]) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)

    def request(
        self, method: str, path: str, body: Any = None, *, content_type: str = "application/json"
    ) -> dict[str, Any]:
        self.calls.append((method, path, copy.deepcopy(body)))
        if method == "GET":
            if path not in self.store:
                raise KubeError(404, "NotFound", path)
            return copy.deepcopy(self.store[path])
        if method == "POST":
            obj = copy.deepcopy(body)
            key = f"{path}/{obj['metadata']['name']}"
            if key in self.store:
                raise KubeError(409, "AlreadyExists", key)
            self._bump(obj)
            self.store[key] = obj
            return copy.deepcopy(obj)
        if method == "PATCH":
            assert content_type == "application/merge-patch+json"
            if path not in self.store:
                raise KubeError(404, "NotFound", path)
            wanted = (body.get("metadata") or {}).get("resourceVersion")
            have = self.store[path]["metadata"]["resourceVersion"]
            if wanted is not None and wanted != have:
                raise KubeError(409, "Conflict", "the object has been modified")
            self.store[path] = merge_patch(self.store[path], body)
            self._bump(self.store[path])
            return copy.deepcopy(self.store[path])
        raise AssertionError(method)

    def methods(self) -> list[str]:
        return [c[0] for c in self.calls]


def test_apply_creates_with_the_annotation_then_prunes_a_dropped_label() -> None:
    kube = FakeKube()
    path = KINDS["ServiceMonitor"].path("demo", "shop")
    first = kube.apply(service_monitor({"release": "prometheus", "team": "shop"}))
    assert first.action == "created"
    assert LAST_APPLIED_ANNOTATION in kube.store[path]["metadata"]["annotations"]
    assert kube.apply(service_monitor({"release": "prometheus", "team": "shop"})).action == (
        "unchanged"
    )

    kube.store[path]["metadata"]["labels"]["argocd.argoproj.io/instance"] = "shop"
    assert kube.apply(service_monitor({"release": "prometheus", "team": "shop"})).action == (
        "unchanged"
    ), "a third party's label is no drift"

    result = kube.apply(service_monitor({"team": "shop"}))
    assert result.action == "patched"
    assert kube.calls[-1][0] == "PATCH"
    assert kube.calls[-1][2]["metadata"]["labels"]["release"] is None
    assert kube.store[path]["metadata"]["labels"] == {
        "team": "shop",
        "argocd.argoproj.io/instance": "shop",
    }
    patches = sum(1 for c in kube.calls if c[0] == "PATCH")
    assert kube.apply(service_monitor({"team": "shop"})).action == "unchanged"
    assert sum(1 for c in kube.calls if c[0] == "PATCH") == patches, "patched again: a loop"


OWNER = {
    "apiVersion": "promdemo.dev/v1alpha1",
    "kind": "PromDemo",
    "name": "shop",
    "uid": UID,
    "controller": True,
    "blockOwnerDeletion": True,
}


def owned_deployment(image: str = "promdemo:1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop", "namespace": "demo", "ownerReferences": [dict(OWNER)]},
        "spec": {
            "replicas": 2,
            "template": {"spec": {"containers": [{"name": "app", "image": image}]}},
        },
    }


def test_apply_with_the_object_known_sends_nothing_when_converged() -> None:
    kube = FakeKube()
    created = kube.apply(owned_deployment(), actual=None, owner_uid=UID)
    assert created.action == "created"
    assert kube.methods() == ["POST"], "known to be absent: created without a read"
    result = kube.apply(owned_deployment(), actual=created.object, owner_uid=UID)
    assert result.action == "unchanged"
    assert kube.methods() == ["POST"], "a converged child costs no request"


def test_apply_keeps_a_container_another_writer_added() -> None:
    kube = FakeKube()
    path = KINDS["Deployment"].path("demo", "shop")
    kube.apply(owned_deployment(), owner_uid=UID)
    containers = kube.store[path]["spec"]["template"]["spec"]["containers"]
    containers.append({"name": "sidecar", "image": "mesh"})
    containers[0]["env"] = [{"name": "INJECTED", "value": "1"}]
    assert kube.apply(owned_deployment(), owner_uid=UID).action == "unchanged"
    result = kube.apply(owned_deployment("promdemo:2"), owner_uid=UID)
    assert result.action == "patched"
    assert kube.store[path]["spec"]["template"]["spec"]["containers"] == [
        {"name": "app", "image": "promdemo:2", "env": [{"name": "INJECTED", "value": "1"}]},
        {"name": "sidecar", "image": "mesh"},
    ]


def test_a_patch_planned_against_a_stale_object_is_planned_again() -> None:
    kube = FakeKube()
    path = KINDS["Deployment"].path("demo", "shop")
    stale = kube.apply(owned_deployment(), owner_uid=UID).object
    # Another writer adds a sidecar after the caller's view of the object was taken.
    kube.store[path]["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})
    kube._bump(kube.store[path])
    result = kube.apply(owned_deployment("promdemo:2"), actual=stale, owner_uid=UID)
    assert result.action == "patched"
    assert kube.methods()[-3:] == ["PATCH", "GET", "PATCH"], "409, read again, planned again"
    names = [c["name"] for c in kube.store[path]["spec"]["template"]["spec"]["containers"]]
    assert names == ["app", "sidecar"], "the stale plan would have dropped the sidecar"


def test_an_object_this_promdemo_does_not_control_is_left_alone() -> None:
    kube = FakeKube()
    path = KINDS["Deployment"].path("demo", "shop")
    theirs = owned_deployment("theirs:1")
    del theirs["metadata"]["ownerReferences"]
    kube.apply(theirs)
    before = copy.deepcopy(kube.store[path])
    result = kube.apply(owned_deployment(), owner_uid=UID)
    assert result.action == "not_owned"
    assert kube.store[path] == before
    assert "PATCH" not in kube.methods()


def test_owner_references_are_set_at_creation_and_never_patched() -> None:
    desired = owned_deployment()
    actual = with_last_applied(desired)
    actual["metadata"]["resourceVersion"] = "1"
    actual["metadata"]["ownerReferences"].append({"kind": "Other", "uid": "o", "name": "x"})
    assert plan_patch(desired, actual) is None


def test_a_child_deleted_behind_the_callers_back_is_created_not_failed() -> None:
    """The watches missed a deletion (a 410 Gone re-list keeps it in kopf's index): the
    patch planned against that copy answers 404, and apply creates the child instead of
    failing the reconcile until the next resync."""
    kube = FakeKube()
    path = KINDS["Deployment"].path("demo", "shop")
    ghost = kube.apply(owned_deployment(), owner_uid=UID).object
    del kube.store[path]
    result = kube.apply(owned_deployment("promdemo:2"), actual=ghost, owner_uid=UID)
    assert result.action == "created"
    assert kube.methods()[-2:] == ["PATCH", "POST"]
    assert kube.store[path]["spec"]["template"]["spec"]["containers"][0]["image"] == "promdemo:2"


class DroppingKube(FakeKube):
    """A server that drops a field it does not know, as kube-apiserver does (it warns)."""

    def request(
        self, method: str, path: str, body: Any = None, *, content_type: str = "application/json"
    ) -> dict[str, Any]:
        def strip(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: strip(v) for k, v in value.items() if k != "bogusField"}
            if isinstance(value, list):
                return [strip(v) for v in value]
            return value

        return super().request(method, path, strip(body), content_type=content_type)


def with_bogus_field(deployment: dict[str, Any]) -> dict[str, Any]:
    deployment["spec"]["template"]["spec"]["containers"][0]["bogusField"] = "typo"
    return deployment


def test_a_field_the_server_drops_is_not_patched_at_every_reconcile() -> None:
    kube = DroppingKube()
    desired = with_bogus_field(owned_deployment())
    assert kube.apply(desired, owner_uid=UID).action == "created"
    for _ in range(3):
        assert kube.apply(desired, owner_uid=UID).action == "unchanged"
    assert "PATCH" not in kube.methods(), "the server never keeps it: patching is a loop"
    # A real change is still made (once), the dropped field still not chased.
    changed = with_bogus_field(owned_deployment("promdemo:2"))
    assert kube.apply(changed, owner_uid=UID).action == "patched"
    assert kube.apply(changed, owner_uid=UID).action == "unchanged"
    assert kube.methods().count("PATCH") == 1
    # Someone else changes the object: planned again (and patched back) once.
    path = KINDS["Deployment"].path("demo", "shop")
    kube.store[path]["spec"]["replicas"] = 7
    kube._bump(kube.store[path])
    assert kube.apply(changed, owner_uid=UID).action == "patched"
    assert kube.store[path]["spec"]["replicas"] == 2
    assert kube.apply(changed, owner_uid=UID).action == "unchanged"


def test_monitoring_support_and_paths() -> None:
    assert MonitoringSupport(frozenset({"ServiceMonitor"})).missing() == ["PrometheusRule"]
    assert KINDS["Deployment"].path("ns", "x") == "/apis/apps/v1/namespaces/ns/deployments/x"
    assert KINDS["Secret"].path("ns") == "/api/v1/namespaces/ns/secrets"
