"""RBAC coverage: manifests/base/rbac.yaml grants what the operator uses, and no more.

Every scenario of the operator tier runs against one emulated API server, which
records each request as (verb, group, resource[/subresource]). Then:

- every recorded request must be granted by the ClusterRole;
- every grant must be used by a recorded request, or be one of the documented
  needs below that kmock cannot exercise (the heal loop talks to real pods);
- OwnerReferencesPermissionEnforcement (an admission plugin on by default in many
  clusters): a PATCH/UPDATE that changes an object's `metadata.ownerReferences` is
  allowed only with `delete` on that resource. The emulator keeps every version of
  every object: a change of ownerReferences between two versions of a resource
  requires `delete` on it. (The scenarios' own requests never change them.)
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.operator import scenarios as sc
from tests.support.kmock_cluster import ApiCall, KmockCluster
from tests.support.rbac import granted, load_rbac

pytestmark = pytest.mark.operator

#: Granted although the scenarios cannot exercise them here, each with the reason.
DOCUMENTED_NEEDS: dict[tuple[str, str, str], str] = {
    ("", "pods/proxy", "get"): "heal loop (podAccess: apiProxy): scrape a pod's /metrics",
    ("", "pods/proxy", "create"): "heal loop (podAccess: apiProxy): POST /inventory/reset",
    ("promdemo.dev", "promdemos/finalizers", "update"): (
        "OwnerReferencesPermissionEnforcement checks it for blockOwnerDeletion; no request"
    ),
}


def test_rbac_has_no_wildcards_and_binds_the_operator_service_account() -> None:
    role, binding = load_rbac()
    for rule in role["rules"]:
        values = [*rule["apiGroups"], *rule["resources"], *rule["verbs"]]
        assert not any("*" in v for v in values), f"wildcard in {rule}"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "promdemo-operator", "namespace": "promdemo-system"}
    ]
    grants = granted(role)
    for need in DOCUMENTED_NEEDS:
        assert need in grants, f"documented need {need} is not granted"


def owner_reference_changes(cluster: KmockCluster) -> set[tuple[str, str]]:
    """(group, resource) of every object whose ownerReferences changed between two versions."""

    def scan(k: Any) -> set[tuple[str, str]]:
        changed = set()
        for (resource, _, _), obj in k.objects.items():
            versions = [None if v is None else v.raw for v in obj.history]
            for before, after in itertools.pairwise(versions):
                if before is None or after is None:
                    continue  # created or deleted, not changed
                metas = [v.get("metadata") or {} for v in (before, after)]
                if metas[0].get("uid") != metas[1].get("uid"):
                    continue  # deleted and created again under the same name
                if metas[0].get("ownerReferences") != metas[1].get("ownerReferences"):
                    changed.add((resource.group or "", resource.plural))
        return changed

    return cluster.call(scan)


def run_every_scenario(cluster: KmockCluster) -> list[ApiCall]:
    op = cluster.start_operator()
    sc.scenario_monitoring_absent_then_added(cluster, op, "nomon")
    sc.scenario_dropped_labels_pruned(cluster, op, "labels")
    sc.scenario_create(cluster, op, "shop")
    sc.scenario_deployment_ready(cluster, op, "shop")
    sc.scenario_update(cluster, op, "shop")
    sc.scenario_child_deleted(cluster, op, "shop")
    sc.scenario_drift_repaired(cluster, op, "shop")
    sc.scenario_status_preserved(cluster, op, "shop")
    sc.scenario_other_writers(cluster, op, "shop")
    sc.scenario_not_owned(cluster, op, "taken")
    sc.scenario_invalid_spec(cluster, op, "broken", "fine")
    sc.scenario_prometheus_selection(cluster, op, "picked")
    sc.scenario_match_prometheus_auto(cluster, op, "auto")
    op = sc.scenario_restart(cluster, op, ["shop", "nomon"])
    sc.scenario_delete_promdemo(cluster, op, "shop")
    cluster.stop_operator(op)
    return cluster.api_calls()


def test_rbac_grants_exactly_what_the_operator_uses(kmock_cluster_factory) -> None:
    # Prometheus objects are served once the monitoring CRDs are installed.
    cluster = kmock_cluster_factory(monitoring=False, prometheus=True)
    calls = run_every_scenario(cluster)
    # The test's own requests come from httpx; the operator's from kopf (aiohttp)
    # and the kubernetes client (urllib3). Only the operator's count.
    used = {c.rbac_key for c in calls if c.client == "operator"}
    assert used, "no requests were recorded from the operator"

    role, _ = load_rbac()
    grants = granted(role)
    missing = sorted(used - grants)
    assert not missing, f"the operator sent requests its RBAC does not grant: {missing}"
    unused = sorted(grants - used - set(DOCUMENTED_NEEDS))
    assert not unused, f"RBAC grants what the operator never uses: {unused}"

    # OwnerReferencesPermissionEnforcement: changing ownerReferences needs "delete".
    for group, resource in sorted(owner_reference_changes(cluster)):
        assert (group, resource, "delete") in grants, (
            f"ownerReferences of {resource} were changed (adopted), which needs 'delete' on "
            f"{group or 'core'}/{resource} under OwnerReferencesPermissionEnforcement"
        )
