"""Helpers of the cluster tier (tests/cluster): waits, kubectl as JSON, the operator
installed from install.yaml and running as its own Deployment's pod.

Every wait is a bounded poll that says, when it times out, what it waited for and
what the operator pod and the kubelet stand-in said.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.support.controlplane import ControlPlane
from tests.support.kubelet import Kubelet
from tests.support.processes import wait_until

ROOT = Path(__file__).resolve().parents[2]
INSTALL_YAML = ROOT / "install.yaml"
OPERATOR_NAMESPACE = "promdemo-system"
OPERATOR_NAME = "promdemo-operator"
TIMEOUT = 90.0


def operator_logs(kubelet: Kubelet | None, cp: ControlPlane | None = None) -> str:
    if kubelet is None:
        return ""
    cp = cp or kubelet.cp
    try:
        pods = get_json(cp, "pods", "-n", OPERATOR_NAMESPACE)["items"]
    except AssertionError:
        pods = []
    out = [kubelet.logs(OPERATOR_NAMESPACE, p["metadata"]["name"])[-6000:] for p in pods]
    return "\n".join(out)


def wait(
    predicate: Callable[[], bool],
    what: str,
    *,
    kubelet: Kubelet | None = None,
    timeout: float = TIMEOUT,
) -> None:
    """Poll `predicate`; on timeout fail with `what`, the operator's log, the kubelet's errors."""
    try:
        wait_until(predicate, timeout=timeout, interval=0.25, what=what)
    except TimeoutError as e:
        extra = ""
        if kubelet is not None:
            extra = (
                f"\n--- operator pod log ---\n{operator_logs(kubelet)}"
                f"\n--- kubelet errors ---\n{kubelet.errors[-5:]}"
            )
        raise AssertionError(f"{e}{extra}") from None


def get_json(cp: ControlPlane, *args: str) -> dict[str, Any]:
    """`kubectl get ARGS -o json`, decoded."""
    return json.loads(cp.kubectl("get", *args, "-o", "json").stdout)


def render_children(name: str, namespace: str, spec_file: Path | None = None) -> str:
    """`promdemo render` of a PromDemo: its Secret, Deployment and Service (YAML documents).

    The ServiceMonitor and PrometheusRule are left out: the test cluster has no
    monitoring.coreos.com CRDs.
    """
    sample = spec_file or ROOT / "manifests" / "samples" / "minimal.yaml"
    promdemo = str(Path(sys.executable).parent / "promdemo")
    out = subprocess.run(
        [promdemo, "render", "-f", str(sample), "-n", namespace],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    docs = [d for d in out.split("\n---\n") if d.strip()]
    keep = [d for d in docs if "kind: ServiceMonitor" not in d and "kind: PrometheusRule" not in d]
    return "\n---\n".join(keep).replace("name: shop", f"name: {name}")


def apply_children_of(cp: ControlPlane, name: str, namespace: str) -> None:
    """The children the operator would make for the minimal sample, applied by hand."""
    cp.kubectl("apply", "-n", namespace, "-f", "-", input=render_children(name, namespace))


def ready(obj: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return {}


#: Lease settings that outlast an API server restart (10-17 s here), for tests of a
#: watch gap: with install.yaml's 10 s renew deadline the leader would stop and a
#: fresh process list everything, so the gap would go untested.
LONG_LEASE = ["--leader-elect-lease-duration=120s", "--leader-elect-renew-deadline=90s"]


def operator_pods(cp: ControlPlane) -> list[dict]:
    return [
        p
        for p in get_json(cp, "pods", "-n", OPERATOR_NAMESPACE)["items"]
        if ready(p) and not p["metadata"].get("deletionTimestamp")
    ]


def operator_processes(cp: ControlPlane) -> dict[str, int]:
    """Each ready operator pod's restart count: equal before and after a gap means the
    same processes lived through it (none relisted by starting afresh)."""
    return {
        p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"]
        for p in operator_pods(cp)
    }


def set_operator_args(cp: ControlPlane, kubelet: Kubelet, args: list[str]) -> None:
    """Roll the operator's Deployment to `args` and wait for two ready pods running them."""
    patch = [{"op": "replace", "path": "/spec/template/spec/containers/0/args", "value": args}]
    cp.kubectl("patch", "deployment", "promdemo-operator", "-n", OPERATOR_NAMESPACE,
               "--type", "json", "-p", json.dumps(patch))  # fmt: skip

    def rolled() -> bool:
        pods = operator_pods(cp)
        return len(pods) == 2 and all(p["spec"]["containers"][0]["args"] == args for p in pods)

    wait(rolled, f"two operator pods running {args}", kubelet=kubelet, timeout=180)


@contextlib.contextmanager
def lease_outlasting_restarts(cp: ControlPlane, kubelet: Kubelet) -> Iterator[None]:
    """The operator runs with LONG_LEASE inside the block, install.yaml's args after."""
    deployment = get_json(cp, "deployment", "promdemo-operator", "-n", OPERATOR_NAMESPACE)
    original = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    set_operator_args(cp, kubelet, [*original, *LONG_LEASE])
    try:
        yield
    finally:
        set_operator_args(cp, kubelet, original)
