"""The apply: the plan (`apply_plan`: a three-way merge that keeps what other writers added
and prunes what a later spec drops) and `kube.Kube.apply` (create, patch, or nothing)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from promdemo_operator.core.apply_plan import (
    LAST_APPLIED_ANNOTATION,
    controlled_by,
    decode_managed_keys,
    encode_managed_keys,
    managed_keys,
    merge_desired,
    plan_patch,
    with_last_applied,
)
from promdemo_operator.runtime.kube import KINDS, Kube, KubeError
from tests.support.merge_patch import merge_patch
from tests.support.rendering import render_body

UID = "6a1e2c3d-0000-4000-8000-000000000002"
TOKEN = "s3cret-token"


def service_monitor(labels: dict[str, str], **extra_meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "shop", "namespace": "demo", "labels": labels, **extra_meta},
        "spec": {
            "selector": {"matchLabels": {"app": "shop"}},
            "endpoints": [{"port": "http"}],
        },
    }


def stored(desired: Mapping[str, Any]) -> dict[str, Any]:
    """What the server holds after creating `desired` as apply does (plus server fields)."""
    obj = with_last_applied(desired)
    obj = copy.deepcopy(obj)
    obj["metadata"].update(uid="u-1", resourceVersion="1", generation=1)
    return obj


# --------------------------------------------------------------------------- the key tree


def test_managed_keys_records_maps_named_list_items_and_treats_the_rest_as_leaves() -> None:
    view = {
        "metadata": {"labels": {"a": "1"}},
        "spec": {"ports": [{"x": 1}], "n": 2, "m": {}, "env": [{"name": "A", "value": "1"}]},
    }
    tree = managed_keys(view)
    assert tree == {
        "metadata": {"labels": {"a": 1}},
        "spec": {"ports": 1, "n": 1, "m": {}, "env": {"$named": {"A": {"name": 1, "value": 1}}}},
    }
    assert decode_managed_keys(encode_managed_keys(tree)) == tree
    assert encode_managed_keys({"b": 1, "a": 1}) == encode_managed_keys({"a": 1, "b": 1})


def test_decode_tolerates_absent_or_garbled_annotations() -> None:
    assert decode_managed_keys(None) == {}
    assert decode_managed_keys("") == {}
    assert decode_managed_keys("{not json") == {}
    assert decode_managed_keys("[1, 2]") == {}
    assert decode_managed_keys('{"a": [1], "b": {"c": "x"}}') == {"a": 1, "b": {"c": 1}}


def test_controlled_by_needs_a_controller_reference_with_the_uid() -> None:
    ref = {"apiVersion": "promdemo.dev/v1alpha1", "kind": "PromDemo", "name": "shop", "uid": UID}
    assert controlled_by({"metadata": {"ownerReferences": [{**ref, "controller": True}]}}, UID)
    assert not controlled_by({"metadata": {"ownerReferences": [ref]}}, UID)
    assert not controlled_by({"metadata": {"ownerReferences": [{**ref, "uid": "x"}]}}, UID)
    assert not controlled_by({"metadata": {}}, UID)


def test_with_last_applied_records_the_keys_without_itself() -> None:
    obj = with_last_applied(service_monitor({"release": "prometheus", "team": "shop"}))
    recorded = json.loads(obj["metadata"]["annotations"][LAST_APPLIED_ANNOTATION])
    assert recorded["metadata"] == {"labels": {"release": 1, "team": 1}}
    assert recorded["spec"] == {"selector": {"matchLabels": {"app": 1}}, "endpoints": 1}
    assert set(obj["metadata"]["annotations"]) == {LAST_APPLIED_ANNOTATION}
    # Idempotent: applying it to its own output gives the same annotation.
    assert with_last_applied(obj) == obj


def test_secret_data_is_never_recorded() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "demo", "labels": {"a": "b"}},
        "type": "Opaque",
        "data": {"token": "dG9r"},
    }
    annotation = with_last_applied(secret)["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
    assert "data" not in json.loads(annotation)
    assert "dG9r" not in annotation


# --------------------------------------------------------------------------- the merge


def test_merge_deletes_only_what_we_set_and_dropped() -> None:
    last = {"metadata": {"labels": {"release": 1, "team": 1}}}
    desired = {"metadata": {"labels": {"team": "shop"}}}
    actual = {"metadata": {"labels": {"release": "prometheus", "team": "shop", "argo": "x"}}}
    assert merge_desired(actual, desired, last) == {
        "metadata": {"labels": {"team": "shop", "argo": "x"}}
    }
    # Never set by us: never deleted.
    assert merge_desired(actual, desired, {}) == actual


def test_a_dropped_map_goes_whole_only_when_it_holds_nothing_foreign() -> None:
    last = {"spec": {"strategy": {"type": 1, "rollingUpdate": {"maxSurge": 1}}}}
    desired = {"spec": {"strategy": {"type": "Recreate"}}}
    ours = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    assert merge_desired(ours, desired, last) == {"spec": {"strategy": {"type": "Recreate"}}}
    foreign = copy.deepcopy(ours)
    foreign["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = 0  # a server default
    assert merge_desired(foreign, desired, last) == {
        "spec": {"strategy": {"type": "Recreate", "rollingUpdate": {"maxUnavailable": 0}}}
    }


def test_a_value_that_changes_type_is_replaced() -> None:
    assert merge_desired({"a": {"b": 2, "c": 3}}, {"a": [1]}, {"a": {"b": 1}}) == {"a": [1]}
    assert merge_desired({"a": 5}, {"a": {"b": 1}}, {"a": 1}) == {"a": {"b": 1}}


def test_named_lists_merge_by_name_and_keep_other_writers_items() -> None:
    desired = [{"name": "app", "image": "new", "env": [{"name": "A", "value": "1"}]}]
    last = managed_keys([{"name": "app", "image": "old", "env": [{"name": "A", "value": "0"}]}])
    actual = [
        {
            "name": "app",
            "image": "old",
            "terminationMessagePath": "/dev/termination-log",  # a server default
            "env": [{"name": "A", "value": "0"}, {"name": "INJECTED", "value": "x"}],
        },
        {"name": "sidecar", "image": "mesh"},  # another controller's container
    ]
    assert merge_desired(actual, desired, last) == [
        {
            "name": "app",
            "image": "new",
            "terminationMessagePath": "/dev/termination-log",
            "env": [{"name": "A", "value": "1"}, {"name": "INJECTED", "value": "x"}],
        },
        {"name": "sidecar", "image": "mesh"},
    ]
    # An item we set and no longer want goes; a missing one of ours is appended.
    last = managed_keys([{"name": "old"}, {"name": "app"}])
    merged = merge_desired([{"name": "old"}, {"name": "x"}], [{"name": "app"}], last)
    assert merged == [{"name": "x"}, {"name": "app"}]
    # An unnamed list (a ServiceMonitor's endpoints) is ours whole.
    assert merge_desired([{"port": "a"}, {"port": "b"}], [{"port": "http"}], 1) == [
        {"port": "http"}
    ]


# --------------------------------------------------------------------------- plan_patch


def test_steady_state_plans_no_patch() -> None:
    desired = service_monitor({"release": "prometheus", "team": "shop"})
    assert plan_patch(desired, stored(desired)) is None


def test_dropping_a_label_nulls_it_and_keeps_third_party_keys() -> None:
    before = service_monitor({"release": "prometheus", "team": "shop"})
    actual = stored(before)
    actual["metadata"]["labels"]["argocd.argoproj.io/instance"] = "shop"
    actual["metadata"]["annotations"]["kubectl.kubernetes.io/note"] = "hi"
    after = service_monitor({"team": "shop"})

    patch = plan_patch(after, actual)
    assert patch is not None
    assert patch["metadata"]["labels"] == {"release": None}  # only what changes
    new = merge_patch(actual, patch)
    assert new["metadata"]["labels"] == {"team": "shop", "argocd.argoproj.io/instance": "shop"}
    assert new["metadata"]["annotations"]["kubectl.kubernetes.io/note"] == "hi"
    # Converged: the annotation now records the new keys, and nothing is patched again.
    assert plan_patch(after, new) is None
    recorded = decode_managed_keys(new["metadata"]["annotations"][LAST_APPLIED_ANNOTATION])
    assert recorded["metadata"]["labels"] == {"team": 1}


def test_a_map_inside_spec_is_pruned_too() -> None:
    before = service_monitor({"team": "shop"})
    before["spec"]["selector"]["matchLabels"]["old"] = "x"
    actual = stored(before)
    after = service_monitor({"team": "shop"})
    new = merge_patch(actual, plan_patch(after, actual))
    assert new["spec"]["selector"] == {"matchLabels": {"app": "shop"}}
    assert plan_patch(after, new) is None


def test_objects_without_the_annotation_get_it_and_lose_nothing() -> None:
    # Created by an operator without the annotation: what it set is unknown, so no key
    # is deleted; the annotation is added once, and drops are pruned from then on.
    desired = service_monitor({"team": "shop"})
    actual = copy.deepcopy(desired)
    actual["metadata"]["labels"]["release"] = "prometheus"
    patch = plan_patch(desired, actual)
    assert patch is not None
    assert "labels" not in patch["metadata"], "no label is touched"
    new = merge_patch(actual, patch)
    assert new["metadata"]["labels"]["release"] == "prometheus"
    assert LAST_APPLIED_ANNOTATION in new["metadata"]["annotations"]
    assert plan_patch(desired, new) is None


def test_a_hand_edit_of_the_annotation_is_patched_back() -> None:
    desired = service_monitor({"team": "shop"})
    actual = stored(desired)
    actual["metadata"]["annotations"][LAST_APPLIED_ANNOTATION] = "garbage"
    patch = plan_patch(desired, actual)
    assert patch is not None
    assert plan_patch(desired, merge_patch(actual, patch)) is None


def test_the_secret_data_is_never_rewritten_nor_pruned() -> None:
    name = "shop"
    pd = {"metadata": {"name": name, "namespace": "demo", "uid": UID}, "spec": {}}
    secret = render_body(pd, token=TOKEN)[0]
    assert secret["kind"] == "Secret"
    actual = stored(secret)
    actual["data"] = {"token": "b3RoZXI=", "extra": "eA=="}  # rotated by hand, a key added
    # Even an annotation that claims the data keys does not make them prunable.
    annotations = actual["metadata"]["annotations"]
    annotations[LAST_APPLIED_ANNOTATION] = json.dumps({"data": {"token": 1, "extra": 1}})
    patch = plan_patch(secret, actual)
    assert patch is not None  # the annotation differs
    assert "data" not in patch
    assert "stringData" not in patch
    new = merge_patch(actual, patch)
    assert new["data"] == actual["data"]
    assert plan_patch(secret, new) is None


def test_every_rendered_child_converges_in_one_patch() -> None:
    pd = {
        "metadata": {"name": "shop", "namespace": "demo", "uid": UID},
        "spec": {"monitoring": {"labels": {"release": "prometheus", "team": "shop"}}},
    }
    dropped = copy.deepcopy(pd)
    dropped["spec"]["monitoring"]["labels"] = {"team": "shop"}
    for before, after in zip(
        render_body(pd, token=TOKEN),
        render_body(dropped, token=TOKEN),
        strict=True,
    ):
        actual = stored(before)
        assert plan_patch(before, actual) is None, before["kind"]
        patch = plan_patch(after, actual)
        if before["kind"] in ("ServiceMonitor", "PrometheusRule"):
            assert patch is not None
            assert patch["metadata"]["labels"]["release"] is None
        new = merge_patch(actual, patch) if patch is not None else actual
        assert "release" not in new["metadata"]["labels"], before["kind"]
        assert plan_patch(after, new) is None, before["kind"]


# --------------------------------------------------------------------------- Kube.apply


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
