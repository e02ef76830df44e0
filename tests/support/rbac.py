"""manifests/base/rbac.yaml as the RBAC coverage tests read it (the cluster tier's):
the operator's ClusterRole and its grants."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RBAC = ROOT / "manifests" / "base" / "rbac.yaml"


def load_rbac() -> tuple[dict, dict]:
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    roles = [d for d in docs if d["kind"] == "ClusterRole"]
    bindings = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert len(roles) == 1, "one ClusterRole"
    assert len(bindings) == 1, "one ClusterRoleBinding"
    return roles[0], bindings[0]


def leader_election_role() -> dict:
    """The namespaced Role for the leader-election Lease (in the operator's namespace)."""
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    (role,) = [d for d in docs if d["kind"] == "Role"]
    return role


def granted(role: dict) -> set[tuple[str, str, str]]:
    grants = set()
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule, rule
        assert "resourceNames" not in rule, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    grants.add((group, resource, verb))
    return grants
