"""Helpers of the e2e suite: kind clusters, kubectl with a pinned context, port-forwards.

Every kubectl call names its context (`kind-<cluster>`), so the suite never
touches whatever cluster the user's current context points at. Clusters, the
image and the operator are set up by the same hack/ scripts as `make kind-up`,
`make image`, `make kind-load` and `make deploy`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.support.ports import free_port, port_is_listening

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("PROMDEMO_E2E_IMAGE", "ghcr.io/promdemo/promdemo:0.1.0")
#: What a cluster the suite creates gets (hack/install-stack.sh's STACK).
STACK = os.environ.get("PROMDEMO_E2E_STACK", "kube-prometheus-stack")
OPERATOR_NAMESPACE = "promdemo-system"
OPERATOR_DEPLOYMENT = "promdemo-operator"


def unavailable_reason() -> str | None:
    """Why the e2e suite cannot run here (None when every tool it needs works)."""
    tools = ["kind", "docker", "kubectl"]
    if STACK == "kube-prometheus-stack" and not os.environ.get("PROMDEMO_KIND_CLUSTER"):
        tools.append("helm")  # for the cluster it creates
    for tool in tools:
        if shutil.which(tool) is None:
            return f"e2e needs {tool}: it is not on PATH (see docs/kind.md)"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "e2e needs a Docker engine: `docker info` did not answer within 30s"
    if info.returncode != 0:
        detail = " ".join((info.stderr or info.stdout).split())[:200]
        return f"e2e needs a Docker engine: `docker info` failed ({detail})"
    return None


def run(
    argv: Sequence[str],
    *,
    timeout: float = 300,
    check: bool = True,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise with its output (not just the exit code)."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        input=input,
        env=full_env,
        cwd=ROOT,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


def kind_clusters() -> list[str]:
    out = run(["kind", "get", "clusters"], timeout=60, check=False).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def hack(script: str, cluster: str, *, timeout: float, **env: str) -> None:
    """Run hack/SCRIPT for `cluster` with IMAGE (what the Makefile's targets do)."""
    run(["bash", f"hack/{script}"], env={"CLUSTER": cluster, "IMAGE": IMAGE, **env},
        timeout=timeout)  # fmt: skip


def create_cluster(name: str) -> None:
    """`make kind-up`: the cluster of hack/kind.yaml and STACK (Grafana off)."""
    hack("kind-up.sh", name, timeout=1500, STACK=STACK,
         KPS_EXTRA_ARGS="--set grafana.enabled=false")  # fmt: skip


def build_and_load(name: str) -> None:
    """`make image kind-load`."""
    hack("image.sh", name, timeout=1200)
    hack("kind-load.sh", name, timeout=600)


def deploy(name: str) -> None:
    """`make deploy`: the kind overlay with IMAGE; waits for the operator."""
    hack("deploy.sh", name, timeout=420)


def operator_manifests() -> str:
    """What `make deploy` applies (the kind overlay with IMAGE), for deleting it."""
    script = '. hack/lib.sh && kustomize_with_image kind "$IMAGE"'
    return run(["bash", "-c", script], env={"IMAGE": IMAGE}, timeout=120).stdout


def delete_cluster(name: str) -> None:
    """`make kind-down`."""
    run(["bash", "hack/kind-down.sh"], env={"CLUSTER": name}, timeout=300, check=False)


class Kube:
    """kubectl against one context."""

    def __init__(self, context: str) -> None:
        self.context = context

    def __call__(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return run(["kubectl", "--context", self.context, *args], **kw)

    def get(self, kind: str, name: str | None = None, *, ns: str | None = None) -> Any:
        """The object (or the list) as a dict; None when it does not exist."""
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        if ns:
            args += ["-n", ns]
        result = self(*args, check=False, timeout=60)
        if result.returncode != 0:
            if "NotFound" in result.stderr or "not found" in result.stderr:
                return None
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return json.loads(result.stdout)

    def exists(self, kind: str, name: str, *, ns: str | None = None) -> bool:
        return self.get(kind, name, ns=ns) is not None

    def apply(self, obj: dict[str, Any]) -> None:
        self("apply", "-f", "-", input=yaml.safe_dump(obj), timeout=120)

    def has_crd(self, name: str) -> bool:
        return self.exists("crd", name)

    @contextmanager
    def port_forward(self, target: str, remote_port: int | str, *, ns: str) -> Iterator[int]:
        """`kubectl port-forward` to a free 127.0.0.1 port; yields the local port."""
        local = free_port()
        proc = subprocess.Popen(
            [
                "kubectl",
                "--context",
                self.context,
                "-n",
                ns,
                "port-forward",
                "--address",
                "127.0.0.1",
                target,
                f"{local}:{remote_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not port_is_listening(local):
                if proc.poll() is not None:
                    raise RuntimeError(f"port-forward to {target} exited: {proc.stderr.read()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"port-forward to {target} not listening after 60s")
                time.sleep(0.2)
            yield local
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            if proc.stderr is not None:
                proc.stderr.close()


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def dump_logs(cluster: str, artifacts: Path) -> str:
    """hack/dump-logs.sh into `artifacts`; returns what it printed."""
    result = run(
        ["bash", "hack/dump-logs.sh"],
        env={"CLUSTER": cluster, "ARTIFACTS": str(artifacts)},
        timeout=300,
        check=False,
    )
    return result.stdout + result.stderr
