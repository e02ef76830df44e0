"""Failover of the operator's two replicas (install.yaml, leader election with the default
15 s lease / 10 s renew deadline / 2 s retry) on the real control plane: the leader is
killed, and the failover is the time from the kill to the standby's first heal check.

    sudo python bench/bench_failover.py                       # 20 takeovers, JSON
    sudo python bench/bench_failover.py --takeovers 30 --record  # also into docs/faults.json

One control plane (etcd, kube-apiserver, kube-controller-manager built from upstream)
and the kubelet stand-in, as in tests/cluster; install.yaml applied; one PromDemo of
one pod with autoHeal every 1 s, cooldown 20 s (its heal loop checks every second, so
the first check of a new leader is seen within a second), under load that keeps
driving its inventory (stock 10) below zero within a second of each reset; its
`inventory_resets_total` is sampled every 0.2 s, so every reset is known within 0.2 s
and a double reset (two resets surely less than the cooldown apart, across any change
of leader) is counted. Each takeover: SIGKILL the leader's process and force-delete
its pod (a lost node: nothing releases the Lease, the standby waits it out), then
sample each operator pod's `promdemo_heal_checks_total` every 0.1 s until one that was
the standby counts a check. Then wait for the Deployment's replacement pod to be Ready
(the next standby) and for it to have seen the Lease renewed, before the next kill.

Prints the failovers' median, p95 (nearest rank), min, max and interquartile range, and
each takeover's figure. `--record` writes them as a row of the fault table
(docs/faults.json; `python -m tests.support.fault_table` renders docs/operator.md).
Needs root and the built binaries (`make controlplane`); skipped with the reason without
them (a failure with PROMDEMO_REQUIRE_TOOLS=1).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import signal
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from tests.support import fault_table  # noqa: E402
from tests.support.cluster import INSTALL_YAML, OPERATOR_NAMESPACE, get_json, ready  # noqa: E402
from tests.support.controlplane import ControlPlane, missing_requirements  # noqa: E402
from tests.support.kubelet import Kubelet  # noqa: E402
from tests.support.leadership import (  # noqa: E402
    heal_checks,
    holder,
    metrics_text,
    operator_process,
    pod_ips,
    sample,
)

NAMESPACE = "bench-failover"
PROMDEMO = "shop"
ROW = "12-failover-p95"
#: Bounds of each wait (seconds): a takeover slower than this is a failure, not a figure.
TAKEOVER_TIMEOUT = 120.0
READY_TIMEOUT = 300.0
COOLDOWN = 20.0


def until(predicate: Any, timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (AssertionError, OSError):
            pass  # the API server answers again in a moment
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def operator_pods(cp: ControlPlane) -> list[dict[str, Any]]:
    pods = get_json(cp, "pods", "-n", OPERATOR_NAMESPACE,
                    "-l", "app.kubernetes.io/name=promdemo-operator")["items"]  # fmt: skip
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def two_ready_one_leading(cp: ControlPlane) -> bool:
    pods = [p for p in operator_pods(cp) if ready(p)]
    return len(pods) == 2 and holder(cp) in {p["metadata"]["name"] for p in pods}


def install(cp: ControlPlane) -> None:
    cp.kubectl("apply", "--server-side", "-f", str(INSTALL_YAML))
    until(lambda: two_ready_one_leading(cp), READY_TIMEOUT, "two ready operator pods, a leader")
    cp.kubectl("create", "namespace", NAMESPACE)
    body = {
        "apiVersion": "promdemo.dev/v1alpha1", "kind": "PromDemo",
        "metadata": {"name": PROMDEMO, "namespace": NAMESPACE},
        # Stock 10 and fast orders: below zero again within a second of each reset, so the
        # pod waits on its cooldown at every kill (the new leader must honour the old one's).
        "spec": {"replicas": 1,
                 "app": {"initialInventory": 10, "simulation": {
                     "dependencyMinSeconds": 0.01, "dependencyMaxSeconds": 0.05,
                     "dependencyFailureRate": 0, "processingMinSeconds": 0.01,
                     "processingMaxSeconds": 0.05}},
                 "autoHeal": {"interval": "1s", "cooldown": f"{COOLDOWN:g}s", "podAccess": "podIP"},
                 "monitoring": {"serviceMonitor": False, "prometheusRule": False}},
    }  # fmt: skip
    cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))
    until(lambda: any(ready(p) for p in get_json(cp, "pods", "-n", NAMESPACE)["items"]),
          READY_TIMEOUT, "the PromDemo's pod ready")  # fmt: skip
    leader_ip = pod_ips(operator_pods(cp)).get(holder(cp) or "")
    until(lambda: (heal_checks(leader_ip or "", NAMESPACE, PROMDEMO) or 0) > 0, 60,
          "the leader's first heal check")  # fmt: skip


class Resets:
    """Load on the app pod at `ip` (rounds of concurrent orders oversell it below zero), and
    each of its resets as an (earliest, latest) interval from its counter, read every 0.2 s."""

    def __init__(self, ip: str) -> None:
        self.ip = ip
        self.seen: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=t, daemon=True) for t in (self._load, self._read)]
        for thread in self._threads:
            thread.start()

    def _order(self, _: int) -> None:
        req = urllib.request.Request(f"http://{self.ip}:8080/order", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
        except (OSError, urllib.error.URLError):
            pass

    def _load(self) -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            while not self._stop.wait(0.7):
                list(pool.map(self._order, range(8)))

    def _read(self) -> None:
        count, last = None, time.monotonic()
        while not self._stop.wait(0.2):
            now_count = sample(metrics_text(self.ip), "inventory_resets_total")
            now = time.monotonic()
            if now_count is None:
                continue
            if count is not None and now_count > count:
                self.seen.extend([(last, now)] * int(now_count - count))
            count, last = now_count, now

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def double_resets(self) -> int:
        """Resets surely less than the cooldown after the previous one (widest gap short)."""
        return sum(1 for (a, _), (_, b) in itertools.pairwise(self.seen) if b - a < COOLDOWN)

    def shortest_gap(self) -> float | None:
        gaps = [b - a for (_, a), (b, _) in itertools.pairwise(self.seen)]
        return min(gaps) if gaps else None


def app_pod_ip(cp: ControlPlane) -> str:
    (ip,) = [p["status"]["podIP"] for p in get_json(cp, "pods", "-n", NAMESPACE)["items"]
             if ready(p)]  # fmt: skip
    return str(ip)


def takeover(cp: ControlPlane, kubelet: Kubelet) -> float:
    """Kill the leader and delete its pod; seconds until another pod's first heal check
    (the standby's, or the replacement pod's should it win the Lease)."""
    leader = holder(cp)
    assert leader is not None
    others = {n: ip for n, ip in pod_ips(operator_pods(cp)).items() if n != leader}
    before = {ip: heal_checks(ip, NAMESPACE, PROMDEMO) or 0.0 for ip in others.values()}
    operator_process(kubelet, leader).send_signal(signal.SIGKILL)
    killed = time.monotonic()
    cp.kubectl("delete", "pod", leader, "-n", OPERATOR_NAMESPACE, "--grace-period=0", "--force")
    listed = time.monotonic()
    while time.monotonic() - killed < TAKEOVER_TIMEOUT:
        if time.monotonic() - listed > 2:  # the Deployment's replacement pod, once it has an IP
            listed = time.monotonic()
            try:
                for name, ip in pod_ips(operator_pods(cp)).items():
                    if name != leader:
                        before.setdefault(ip, 0.0)
            except AssertionError:
                pass
        for ip, count in before.items():
            if (heal_checks(ip, NAMESPACE, PROMDEMO) or 0.0) > count:
                return time.monotonic() - killed
        time.sleep(0.1)
    raise TimeoutError(f"no other pod checked within {TAKEOVER_TIMEOUT:.0f}s of the kill")


def settle(cp: ControlPlane) -> None:
    """The replacement pod Ready as the next standby, and the Lease renewed since it started
    (a standby counts the lease from the last renewal it saw, as client-go's does)."""
    until(lambda: two_ready_one_leading(cp), READY_TIMEOUT, "the replacement standby ready")
    time.sleep(3)  # one renewal (2 s) seen by the new standby


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p% of the values <= it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(failovers: list[float], resets: Resets) -> dict[str, Any]:
    q1, _, q3 = statistics.quantiles(failovers, n=4) if len(failovers) > 1 else (0, 0, 0)
    return {
        "takeovers": len(failovers),
        "median_s": round(statistics.median(failovers), 2),
        "p95_s": round(percentile(failovers, 95), 2),
        "min_s": round(min(failovers), 2),
        "max_s": round(max(failovers), 2),
        "iqr_s": round(q3 - q1, 2),
        "failovers_s": [round(f, 2) for f in failovers],
        "resets": len(resets.seen),
        "double_resets": resets.double_resets(),
        "shortest_gap_s": None
        if resets.shortest_gap() is None
        else round(resets.shortest_gap() or 0, 1),
        "lease": "15 s lease, 10 s renew deadline, 2 s retry (install.yaml's defaults)",
    }


def row(result: dict[str, Any]) -> dict[str, Any]:
    """The fault table's row (docs/faults.json) for `result`."""
    return {
        "fault": f"benchmark: the leader SIGKILLed and its pod force-deleted, "
        f"{result['takeovers']} times (bench/bench_failover.py), one app pod under load",
        "resets": str(result["resets"]),
        "double_resets": result["double_resets"],
        "shortest_gap": None
        if result["shortest_gap_s"] is None
        else f"≥ {result['shortest_gap_s']:.1f} s (cooldown {COOLDOWN:g} s)",
        "failover": f"p95 {result['p95_s']:.1f} s (target < 20 s), median "
        f"{result['median_s']:.1f} s, min {result['min_s']:.1f} s, max {result['max_s']:.1f} s, "
        f"IQR {result['iqr_s']:.1f} s; {result['takeovers']} takeovers "
        "(kill → another replica's first heal check)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--takeovers", type=int, default=20, help="kills (default 20, min 1)")
    parser.add_argument(
        "--record", action="store_true", help="write the figures into docs/faults.json (a row)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.takeovers <= 200:
        print("bench_failover: --takeovers must be between 1 and 200", file=sys.stderr)
        return 2
    reason = missing_requirements()
    if reason is not None:  # as the tests do: skipped with the reason, a failure in CI
        required = os.environ.get("PROMDEMO_REQUIRE_TOOLS") == "1"
        print(f"bench_failover: {'cannot run' if required else 'skipped'}: {reason}",
              file=sys.stderr)  # fmt: skip
        return 1 if required else 0
    failovers: list[float] = []
    with ControlPlane() as cp, Kubelet(cp) as kubelet:
        try:
            install(cp)
        except TimeoutError:
            pods = cp.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
            print(f"{pods}\nkubelet errors: {kubelet.errors[-5:]}", file=sys.stderr)
            raise
        resets = Resets(app_pod_ip(cp))
        try:
            for n in range(args.takeovers):
                settle(cp)
                failovers.append(takeover(cp, kubelet))
                print(f"takeover {n + 1}/{args.takeovers}: {failovers[-1]:.2f} s; "
                      f"{len(resets.seen)} resets so far", file=sys.stderr)  # fmt: skip
            time.sleep(COOLDOWN + 2)  # one more reset after the last takeover
        finally:
            resets.stop()
    result = summary(failovers, resets)
    print(json.dumps(result, indent=2))
    if args.record:
        fault_table.record(ROW, row(result), fault_table.FIGURES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
