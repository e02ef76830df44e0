"""The apply plan (core/apply_plan.py): a three-way merge that keeps what other writers
added and prunes what a later spec drops. `Kube.apply` itself: runtime/test_kube.py."""

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
from tests.support.child_objects import service_monitor
from tests.support.merge_patch import merge_patch
from tests.support.rendering import render_body

UID = "6a1e2c3d-0000-4000-8000-000000000002"
TOKEN = "s3cret-token"


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
