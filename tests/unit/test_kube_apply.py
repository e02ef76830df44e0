"""kube.py's apply: the merge patch it computes, and pruning of keys a later spec drops."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from promdemo_operator.kube import (
    KINDS,
    LAST_APPLIED_ANNOTATION,
    Kube,
    KubeError,
    decode_managed_keys,
    encode_managed_keys,
    managed_keys,
    plan_patch,
    stale_keys,
    with_last_applied,
)
from tests.support.rendering import render_body

UID = "6a1e2c3d-0000-4000-8000-000000000002"
TOKEN = "s3cret-token"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as an API server applies it (null deletes; lists and scalars replace)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


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


def test_managed_keys_records_maps_and_treats_lists_and_scalars_as_leaves() -> None:
    view = {"metadata": {"labels": {"a": "1"}}, "spec": {"ports": [{"x": 1}], "n": 2, "m": {}}}
    tree = managed_keys(view)
    assert tree == {"metadata": {"labels": {"a": 1}}, "spec": {"ports": 1, "n": 1, "m": {}}}
    assert decode_managed_keys(encode_managed_keys(tree)) == tree
    assert encode_managed_keys({"b": 1, "a": 1}) == encode_managed_keys({"a": 1, "b": 1})


def test_decode_tolerates_absent_or_garbled_annotations() -> None:
    assert decode_managed_keys(None) == {}
    assert decode_managed_keys("") == {}
    assert decode_managed_keys("{not json") == {}
    assert decode_managed_keys("[1, 2]") == {}
    assert decode_managed_keys('{"a": [1], "b": {"c": "x"}}') == {"a": 1, "b": {"c": 1}}


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


# --------------------------------------------------------------------------- stale keys


def test_stale_keys_deletes_only_what_we_set_and_dropped() -> None:
    last = {"metadata": {"labels": {"release": 1, "team": 1}}}
    desired = {"metadata": {"labels": {"team": "shop"}}}
    actual = {"metadata": {"labels": {"release": "prometheus", "team": "shop", "argo": "x"}}}
    assert stale_keys(last, desired, actual) == {"metadata": {"labels": {"release": None}}}
    # Already gone: nothing to do.
    assert stale_keys(last, desired, {"metadata": {"labels": {"team": "shop"}}}) == {}
    # Never set by us: never deleted.
    assert stale_keys({}, desired, actual) == {}


def test_a_dropped_map_goes_whole_only_when_it_holds_nothing_foreign() -> None:
    last = {"spec": {"strategy": {"type": 1, "rollingUpdate": {"maxSurge": 1}}}}
    desired = {"spec": {"strategy": {"type": "Recreate"}}}
    ours = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    assert stale_keys(last, desired, ours) == {"spec": {"strategy": {"rollingUpdate": None}}}
    foreign = copy.deepcopy(ours)
    foreign["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = 0  # a server default
    assert stale_keys(last, desired, foreign) == {
        "spec": {"strategy": {"rollingUpdate": {"maxSurge": None}}}
    }


def test_a_value_that_changes_type_is_left_to_the_patch() -> None:
    # A map that became a list/scalar (or the other way) is replaced by the patch itself.
    assert stale_keys({"a": {"b": 1}}, {"a": [1]}, {"a": {"b": 2, "c": 3}}) == {}
    assert stale_keys({"a": 1}, {"a": {"b": 1}}, {"a": 5}) == {}


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
    assert patch["metadata"]["labels"] == {"team": "shop", "release": None}
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
    assert "release" not in patch["metadata"]["labels"]
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
    """Kube over an in-memory store that applies merge patches like an API server."""

    def __init__(self) -> None:
        super().__init__(api_client=object())  # type: ignore[arg-type]
        self.store: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, Any]] = []

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
            self.store[f"{path}/{obj['metadata']['name']}"] = obj
            return copy.deepcopy(obj)
        if method == "PATCH":
            assert content_type == "application/merge-patch+json"
            self.store[path] = merge_patch(self.store[path], body)
            return copy.deepcopy(self.store[path])
        raise AssertionError(method)


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
