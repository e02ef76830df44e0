"""The real prometheus-operator, built from its Go module, against the test control plane.

    with PrometheusOperator(cp):           # applies its upstream CRDs, runs it
        generated_jobs(cp)["monitoring/k8s"]        # {"serviceMonitor/demo/shop/0", ...}
        generated_rule_files(cp)["monitoring/k8s"]  # {"demo-shop-<uid>.yaml", ...}

hack/upstream/build.sh builds `prometheus-operator` at the version pinned in
hack/upstream/versions.env and copies the module's CRDs
(`example/prometheus-operator-crd/`) next to it (`<bin>/../crds/`). The operator
runs here as a process on the host, out of cluster, as the admin of the control
plane (`--apiserver` with the admin client certificate), watching every
namespace; its web listener is on a free loopback port. The control plane runs
no StatefulSet controller, so the Prometheus pods it asks for never start: what
it decides is read from what it writes for each Prometheus:

- the Secret `prometheus-<name>`, key `prometheus.yaml.gz`: the generated
  configuration, one scrape job `serviceMonitor/<namespace>/<name>/<i>` per
  endpoint of every ServiceMonitor it selected;
- the ConfigMaps `prometheus-<name>-rulefiles-<i>`: one key
  `<namespace>-<name>-<uid>.yaml` per PrometheusRule it selected.

`require_prometheus_operator()` skips (fails under PROMDEMO_REQUIRE_TOOLS=1)
when it is not built.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import yaml

from tests.support.controlplane import ControlPlane
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess, wait_http_ok
from tests.support.upstream import require_upstream, tool_dir

CONFIG_KEY = "prometheus.yaml.gz"


def require_prometheus_operator() -> Path:
    """The prometheus-operator binary; skip (fail in CI) when it is not built."""
    return require_upstream("prometheus-operator", "prometheus-operator")


def crd_files() -> list[Path]:
    """The module's CRDs (monitoring.coreos.com), as build.sh copied them."""
    return sorted((tool_dir("prometheus-operator") / "crds").glob("*.yaml"))


def apply_crds(cp: ControlPlane) -> None:
    """Apply the upstream CRDs (server-side: they are too large for the last-applied annotation)."""
    for path in crd_files():
        cp.kubectl("apply", "--server-side", "-f", str(path))
    cp.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        *[f"crd/{p.name.removesuffix('.yaml').split('_', 1)[1]}.monitoring.coreos.com"
          for p in crd_files()],
    )  # fmt: skip


class PrometheusOperator:
    """prometheus-operator running against `cp`; stopped when the block ends."""

    def __init__(self, cp: ControlPlane, workdir: Path | None = None) -> None:
        self.cp = cp
        self.workdir = workdir or cp.workdir
        self.port = free_port()
        self.process: ManagedProcess | None = None

    def __enter__(self) -> PrometheusOperator:
        binary = require_prometheus_operator()
        apply_crds(self.cp)
        pki = self.cp.pki
        self.process = ManagedProcess(
            [
                str(binary),
                f"--apiserver={self.cp.server}",
                f"--ca-file={self.cp.ca_cert}",
                f"--cert-file={pki / 'admin.crt'}",
                f"--key-file={pki / 'admin.key'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log-level=info",
            ],
            log_path=self.workdir / "prometheus-operator.log",
        )
        try:
            wait_http_ok(f"http://127.0.0.1:{self.port}/healthz", proc=self.process, timeout=60)
        except BaseException:
            self.process.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.stop()

    def log(self) -> str:
        return self.process.log() if self.process is not None else ""


def _get_json(cp: ControlPlane, *args: str) -> dict[str, Any]:
    return json.loads(cp.kubectl("get", *args, "-o", "json").stdout)


def generated_jobs(cp: ControlPlane) -> dict[str, set[str]]:
    """`namespace/name` of each Prometheus with a generated configuration -> its job names.

    A Prometheus whose configuration the operator does not manage (no ServiceMonitor,
    PodMonitor or Probe selector) or whose reconcile failed has none.
    """
    found: dict[str, set[str]] = {}
    for secret in _get_json(cp, "secrets", "-A")["items"]:
        meta, data = secret["metadata"], secret.get("data") or {}
        if meta["name"].startswith("prometheus-") and CONFIG_KEY in data:
            config = yaml.safe_load(gzip.decompress(base64.b64decode(data[CONFIG_KEY]))) or {}
            owner = f"{meta['namespace']}/{meta['name'].removeprefix('prometheus-')}"
            found[owner] = {job["job_name"] for job in config.get("scrape_configs") or []}
    return found


def generated_rule_files(cp: ControlPlane) -> dict[str, set[str]]:
    """`namespace/name` of each Prometheus -> the keys of its rule-file ConfigMaps."""
    found: dict[str, set[str]] = {}
    for cm in _get_json(cp, "configmaps", "-A", "-l", "prometheus-name")["items"]:
        meta = cm["metadata"]
        owner = f"{meta['namespace']}/{meta['labels']['prometheus-name']}"
        found.setdefault(owner, set()).update((cm.get("data") or {}).keys())
    return found
