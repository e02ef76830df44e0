"""`bench_operator.py --api real`: the same measurements against a real control plane.

The cluster: `tests/support/controlplane.py`'s ControlPlane (etcd, kube-apiserver and
kube-controller-manager built from upstream, in a network namespace of their own), so
Deployments become ReplicaSets and Pods, children are garbage-collected, watch events
carry managedFields, and every request is authorized by the real RBAC authorizer: the
operator runs on the host as `promdemo operator --all-namespaces` with a token the API
server issued to its ServiceAccount (`manifests/base/rbac.yaml` applied), so the audit
log tells its requests apart from everybody else's.

The pods. The kubelet stand-in (`tests/support/kubelet.py`) runs every pod as a process
in a namespace of its own (~33 MiB each): too heavy for 1,000 pods on this machine.
Here `LightKubelet` plays the node instead: it registers one Ready Node, watches Pods,
binds each new one (`pods/binding`, as the scheduler would) and reports it Running and
Ready with an address from a block of its own (`10.X.96.0/19`); every address of that
block is served by ONE fake-pods process (`tests/support/fake_pods.py --hosts`: the
app's real /metrics page and the gauge alone, port 8080) in ONE network namespace where
the whole block is local (a `local` route, so a socket binds any address in it) behind
one veth and one route from the control plane's namespace. The operator reaches each
pod at its pod IP as in a cluster; a deleted pod is deleted (grace 0) and its address
never reused. Not modelled: readiness probes (a pod is Ready once bound), container
restarts.

What it measures beyond the emulator run: the control plane's own CPU (etcd, the API
server, the controller manager: every process in its network namespace) beside the
operator's; the operator's API requests from the audit log (its ServiceAccount's, at
ResponseComplete, watches aside); drift repair (a child deleted, time until the API
server holds a new one).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import ipaddress
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from appserver import AppServer, free_port

from promdemo_operator.core.names import secret_name
from promdemo_operator.core.render import APP_PORT
from tests.support.controlplane import ControlPlane
from tests.support.fake_pods import fake_pods
from tests.support.kmock_cluster import OperatorProcess
from tests.support.processes import ManagedProcess, wait_http_ok
from tests.support.prometheus_operator import apply_crds

ROOT = Path(__file__).resolve().parent.parent
NODE = "bench-node"
OPERATOR_NS = "promdemo-system"
OPERATOR_SA = "promdemo-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}"
#: Children and their API paths (relative to a namespace), by the name they carry.
CHILD_PATHS = {
    "Service": "/api/v1/namespaces/{ns}/services/{name}",
    "ServiceMonitor": "/apis/monitoring.coreos.com/v1/namespaces/{ns}/servicemonitors/{name}",
    "PrometheusRule": "/apis/monitoring.coreos.com/v1/namespaces/{ns}/prometheusrules/{name}",
    "Secret": "/api/v1/namespaces/{ns}/secrets/{name}",
}
PROMDEMOS = "/apis/promdemo.dev/v1alpha1/namespaces/{ns}/promdemos"


def _ip(*argv: str) -> str:
    done = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


class PodBlock:
    """A block of pod addresses, all local to one network namespace behind one veth."""

    def __init__(self, cp: ControlPlane, size: int) -> None:
        octet = cp.subnet_octet
        self.network = ipaddress.IPv4Network(f"10.{octet}.96.0/19")
        if size > self.network.num_addresses - 4:
            raise ValueError(f"at most {self.network.num_addresses - 4} pods, asked {size}")
        first = self.network.network_address + 1
        self.netns = cp.add_pod_network(str(first))
        route = _ip("-n", cp.netns, "route", "show", f"{first}/32").split()
        veth = route[route.index("dev") + 1]
        # Through the block's first address (one static neighbour entry), not on-link: an
        # on-link /19 costs one entry of the host's shared neighbour table per pod address,
        # and 1,000 of them overflow it for every namespace on the machine.
        _ip("-n", cp.netns, "route", "add", str(self.network), "via", str(first), "dev", veth)
        _ip("-n", self.netns, "route", "add", "local", str(self.network), "dev", "lo")
        #: Pod i of the fake-pods process serves first_host + i.
        self.first_host = str(first + 1)
        self.size = size


class LightKubelet:
    """One Node: binds every new Pod to it and reports it Running and Ready at once
    with the next address of the block (see the module's docstring)."""

    def __init__(self, cp: ControlPlane, addresses: list[str]) -> None:
        self.cp = cp
        self.free = list(reversed(addresses))
        self.handled: set[str] = set()
        self.ips: dict[str, str] = {}  # uid -> IP
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="light-kubelet")
        self._thread = threading.Thread(target=self._loop, name="light-kubelet", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> LightKubelet:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}
        with contextlib.suppress(urllib.error.HTTPError):
            self.cp.request("POST", "/api/v1/nodes", node)
        now = datetime.now().astimezone().isoformat(timespec="seconds")
        status = {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "the benchmark's light kubelet",
                            "lastHeartbeatTime": now, "lastTransitionTime": now}],
            "addresses": [{"type": "InternalIP", "address": self.cp.node_ip}],
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "5000"},
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "5000"},
        }  # fmt: skip
        self.cp.request(
            "PATCH", f"/api/v1/nodes/{NODE}/status", {"status": status},
            content_type="application/merge-patch+json",
        )  # fmt: skip
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                listing = self.cp.request("GET", "/api/v1/pods?resourceVersion=0", timeout=60)
                for obj in listing.get("items", []):
                    self._seen(obj)
                rv = listing["metadata"]["resourceVersion"]
                self._watch(rv)
            except Exception as e:  # a stream ended or the server hiccuped: list again
                self.errors.append(f"{type(e).__name__}: {e}")
                del self.errors[:-20]
                self._stop.wait(0.5)

    def _watch(self, rv: str) -> None:
        path = f"/api/v1/pods?watch=1&resourceVersion={rv}&timeoutSeconds=240"
        req = urllib.request.Request(self.cp.server + path, headers={"Accept": "application/json"})
        with urllib.request.urlopen(req, context=self.cp.ssl_context(), timeout=300) as stream:
            for line in stream:
                if self._stop.is_set():
                    return
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    return
                if event.get("type") in ("ADDED", "MODIFIED"):
                    self._seen(event["object"])

    def _seen(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        uid = meta["uid"]
        if meta.get("deletionTimestamp"):
            key = f"delete/{uid}"
            with self._lock:
                if key in self.handled:
                    return
                self.handled.add(key)
            self._pool.submit(self._guard, self._delete, obj)
            return
        with self._lock:
            if uid in self.handled or (obj.get("spec") or {}).get("nodeName") not in (None, NODE):
                return
            self.handled.add(uid)
            ip = self.ips[uid] = self.free.pop()
        self._pool.submit(self._guard, self._run, obj, ip)

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as e:
            self.errors.append(f"{type(e).__name__}: {e}")
            del self.errors[:-20]

    def _run(self, obj: dict[str, Any], ip: str) -> None:
        meta = obj["metadata"]
        base = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        if not (obj.get("spec") or {}).get("nodeName"):
            self.cp.request("POST", f"{base}/binding", {
                "apiVersion": "v1", "kind": "Binding", "metadata": {"name": meta["name"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}})  # fmt: skip
        now = datetime.now().astimezone().isoformat(timespec="seconds")
        conditions = [
            {"type": t, "status": "True", "lastTransitionTime": now}
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ]
        containers = [
            {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": True,
             "started": True, "restartCount": 0, "state": {"running": {"startedAt": now}}}
            for c in (obj.get("spec") or {}).get("containers") or []
        ]  # fmt: skip
        status = {
            "phase": "Running", "hostIP": self.cp.node_ip, "podIP": ip, "podIPs": [{"ip": ip}],
            "startTime": now, "conditions": conditions, "containerStatuses": containers,
        }  # fmt: skip
        self.cp.request(
            "PATCH", f"{base}/status", {"status": status},
            content_type="application/merge-patch+json",
        )  # fmt: skip

    def _delete(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        with contextlib.suppress(urllib.error.HTTPError):
            self.cp.request(
                "DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                 "preconditions": {"uid": meta["uid"]}},
            )  # fmt: skip


class AuditLog:
    """The audit log read forward: the operator's requests (its ServiceAccount's) in a span."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.requests: list[tuple[float, str]] = []  # (when, "verb resource")

    def read(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].splitlines():
            if OPERATOR_USER.encode() not in line:
                continue
            with contextlib.suppress(ValueError, KeyError):
                event = json.loads(line)
                if event.get("stage") != "ResponseComplete" or event["verb"] == "watch":
                    continue
                if event["user"].get("username") != OPERATOR_USER:
                    continue
                ref = event.get("objectRef") or {}
                resource = ref.get("resource", event.get("requestURI", "?"))
                if ref.get("subresource"):
                    resource += "/" + ref["subresource"]
                when = datetime.fromisoformat(
                    event["requestReceivedTimestamp"].replace("Z", "+00:00")
                ).timestamp()
                self.requests.append((when, f"{event['verb']} {resource}"))

    def between(self, t0: float, t1: float) -> list[str]:
        """The operator's requests received in [t0, t1) (wall clock), after a read."""
        time.sleep(1.0)  # the API server writes an event when the request completes
        self.read()
        return [what for when, what in self.requests if t0 <= when < t1]


class ControlPlaneCpu:
    """CPU of every process in the control plane's network namespace over a window."""

    def __init__(self, cp: ControlPlane, cpu_class: Any) -> None:
        pids = [int(p) for p in _ip("netns", "pids", cp.netns).split()]
        self.windows = []
        for pid in pids:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                self.windows.append(cpu_class(pid))

    def used(self) -> float:
        total = 0.0
        for w in self.windows:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += w.used()
        return total


@contextlib.contextmanager
def real_cluster(tmp: Path, namespaces: tuple[str, ...]) -> Iterator[ControlPlane]:
    """A started control plane with the PromDemo and monitoring CRDs, the operator's
    ServiceAccount and RBAC, and `namespaces`."""
    with ControlPlane(tmp / "controlplane") as cp:
        crd = ROOT / "crds" / "promdemos.promdemo.dev.yaml"
        cp.kubectl("apply", "--server-side", "-f", str(crd))
        apply_crds(cp)
        cp.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                   "crd/promdemos.promdemo.dev")  # fmt: skip
        for manifest in ("namespace.yaml", "serviceaccount.yaml", "rbac.yaml"):
            cp.kubectl("apply", "-f", str(ROOT / "manifests" / "base" / manifest))
        for ns in namespaces:
            cp.request("POST", "/api/v1/namespaces", {
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})  # fmt: skip
        yield cp


def start_operator(
    cp: ControlPlane, tmp: Path, resync_seconds: float, extra: list[str]
) -> OperatorProcess:
    """`promdemo operator --all-namespaces` on the host with its ServiceAccount's token."""
    token = cp.token(OPERATOR_NS, OPERATOR_SA, seconds=24 * 3600)
    kubeconfig = cp.token_kubeconfig(token, tmp / "operator.kubeconfig")
    metrics_port, health_port, webhook_port = free_port(), free_port(), free_port()
    launcher = "import sys; from promdemo_operator.cli import main; sys.exit(main())"
    argv = [sys.executable, "-c", launcher, "operator", "--all-namespaces",
            "--bind", "127.0.0.1", "--metrics-port", str(metrics_port),
            "--health-port", str(health_port), "--webhook-port", str(webhook_port),
            "--resync-seconds", str(resync_seconds), *extra]  # fmt: skip
    env = {"KUBECONFIG": str(kubeconfig), "KUBERNETES_SERVICE_HOST": "",
           "KUBERNETES_SERVICE_PORT": "", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    proc = ManagedProcess(argv, log_path=tmp / "operator.log", env=env, cwd=ROOT)
    op = OperatorProcess(
        process=proc,
        metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
        health_url=f"http://127.0.0.1:{health_port}/healthz",
    )
    try:
        wait_http_ok(op.health_url, proc=proc, timeout=90)
    except (TimeoutError, RuntimeError):
        proc.stop()
        raise
    return op


def ready_names(cp: ControlPlane, namespace: str) -> set[str]:
    """PromDemos whose status is current (observedGeneration) with Available True."""
    listing = cp.request("GET", PROMDEMOS.format(ns=namespace) + "?resourceVersion=0", timeout=60)
    done = set()
    for obj in listing.get("items", []):
        status = obj.get("status") or {}
        if status.get("observedGeneration") != obj["metadata"].get("generation"):
            continue
        if any(
            c.get("type") == "Available" and c.get("status") == "True"
            for c in status.get("conditions") or []
        ):
            done.add(obj["metadata"]["name"])
    return done


def children_present(cp: ControlPlane, namespace: str, names: set[str]) -> set[str]:
    """Those of `names` with all five children stored."""
    have = set(names)
    lists = {
        "Secret": f"/api/v1/namespaces/{namespace}/secrets",
        "Deployment": f"/apis/apps/v1/namespaces/{namespace}/deployments",
        "Service": f"/api/v1/namespaces/{namespace}/services",
        "ServiceMonitor": f"/apis/monitoring.coreos.com/v1/namespaces/{namespace}/servicemonitors",
        "PrometheusRule": f"/apis/monitoring.coreos.com/v1/namespaces/{namespace}/prometheusrules",
    }
    for kind, path in lists.items():
        items = cp.request("GET", path + "?resourceVersion=0", timeout=60).get("items", [])
        stored = {o["metadata"]["name"] for o in items}
        if kind == "Secret":
            stored = {n for n in have if secret_name(n) in stored}
        have &= stored
    return have


def drift_repairs(cp: ControlPlane, namespace: str, names: list[str], samples: int) -> list[float]:
    """Delete one child at a time (Service, ServiceMonitor, PrometheusRule, Secret in
    turn, of PromDemos in turn); seconds until the API server holds a new one."""
    kinds = list(CHILD_PATHS)
    out = []
    for i in range(samples):
        kind = kinds[i % len(kinds)]
        name = names[(i * 7) % len(names)]
        child = secret_name(name) if kind == "Secret" else name
        path = CHILD_PATHS[kind].format(ns=namespace, name=child)
        before = cp.request("GET", path)["metadata"]["uid"]
        started = time.monotonic()
        cp.request("DELETE", path)
        deadline = started + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(urllib.error.HTTPError):
                if cp.request("GET", path, timeout=10)["metadata"]["uid"] != before:
                    break
            time.sleep(0.01)
        else:
            out.append(math.inf)
            continue
        out.append(time.monotonic() - started)
        time.sleep(0.3)
    return out


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def run_real(args: argparse.Namespace, bench: Any) -> dict[str, Any]:
    """One run against the real control plane; `bench` is bench_operator (its helpers)."""
    n, m = args.promdemos, args.pods
    ns, warm_ns = bench.NS, bench.WARM_UP_NS
    extra_pods = min(m, 50 - m)  # spec.replicas is at most 50
    total_pods = n * (m + extra_pods) + args.warm_up + 2
    log = print if not args.quiet else (lambda *a, **k: None)
    with (
        tempfile.TemporaryDirectory(prefix="bench-operator-real-") as tmp_name,
        contextlib.ExitStack() as stack,
    ):
        tmp = Path(tmp_name)
        began = time.monotonic()
        cp = stack.enter_context(real_cluster(tmp, (ns, warm_ns)))
        log(f"control plane up in {time.monotonic() - began:.1f} s", file=sys.stderr)
        block = PodBlock(cp, total_pods)
        _, pod_urls = stack.enter_context(
            fake_pods(
                tmp,
                counts=[f"{total_pods}:ok"],
                value=bench.POD_VALUE,
                first_host=block.first_host,
                port=APP_PORT,
                prefix=["ip", "netns", "exec", block.netns],
            )
        )
        addresses = [
            pod_urls[f"pod-{i}"].removeprefix("http://").rpartition(":")[0]
            for i in range(total_pods)
        ]
        stats_url = pod_urls[f"pod-{total_pods - 1}"]
        kubelet = LightKubelet(cp, addresses[:-1]).start()
        stack.callback(kubelet.stop)
        app = stack.enter_context(AppServer())
        limit = ["--kube-api-qps", str(args.kube_api_qps), "--kube-api-burst",
                 str(args.kube_api_burst)] if args.kube_api_qps else []  # fmt: skip
        op = start_operator(cp, tmp, bench.RESYNC_SECONDS, limit)
        stack.callback(op.stop)
        audit = AuditLog(cp.audit_log)
        total_promdemos = n + args.warm_up

        def alive() -> None:
            if not op.process.alive():
                raise RuntimeError(f"the operator exited:\n{op.process.log()[-3000:]}")

        # 1. idle
        time.sleep(args.idle_seconds)
        idle_rss = bench.proc_status_kib(op.pid, "VmRSS")
        idle_private, idle_pss = bench.private_and_pss_kib(op.pid)
        log(f"idle: RSS {idle_rss / 1024:.1f} MiB", file=sys.stderr)

        # 2. warm-up
        warm = {f"warm-up-{i}" for i in range(args.warm_up)}
        for name in sorted(warm):
            cp.request("POST", PROMDEMOS.format(ns=warm_ns), bench.promdemo(name, warm_ns))
        deadline = time.monotonic() + 300
        while ready_names(cp, warm_ns) & warm != warm:
            alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"warm-up not Ready; kubelet errors {kubelet.errors[-3:]}")
            time.sleep(0.2)
        time.sleep(bench.HEAL_INTERVAL_SECONDS + 1)
        base_rss = bench.proc_status_kib(op.pid, "VmRSS")

        # 3. reconcile: N PromDemos POSTed, until all are Ready
        names = [f"demo-{i:04d}" for i in range(n)]
        spy = (
            bench.start_spy(op.pid, Path(args.profile_reconcile))
            if args.profile_reconcile
            else None
        )
        audit.read()
        reads_before = bench.pod_stats(stats_url)
        cpu_before, cp_before = bench.Cpu(op.pid), ControlPlaneCpu(cp, bench.Cpu)
        wall0, started = time.time(), time.monotonic()
        for name in names:
            cp.request("POST", PROMDEMOS.format(ns=ns), bench.promdemo(name, ns, replicas=m))
        posted = time.monotonic() - started
        want = set(names)
        poll = 0.25 if n <= 100 else 1.0
        count, changed = 0, time.monotonic()
        reconcile_seconds = reconcile_cpu = cp_cpu = 0.0
        reconcile_reads = 0
        while True:
            now_ready = len(ready_names(cp, ns) & want)
            now = time.monotonic()
            if now_ready != count:
                count, changed = now_ready, now
                reconcile_seconds = now - started
                reconcile_cpu, cp_cpu = cpu_before.used(), cp_before.used()
                reconcile_reads = bench.pod_stats(stats_url) - reads_before
            if count == n or now - changed > args.stall_seconds:
                break
            alive()
            time.sleep(poll)
        wall1 = time.time()
        reconcile_profile = bench.stop_spy(spy, Path(args.profile_reconcile)) if spy else None
        stragglers = sorted(want - ready_names(cp, ns))
        straggler = None
        if stragglers:  # what one of them looks like, for the report
            one = stragglers[0]
            pd = cp.get(f"{PROMDEMOS.format(ns=ns)}/{one}") or {}
            deployment = cp.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{one}") or {}
            straggler = {
                "name": one,
                "status": pd.get("status"),
                "generation": (pd.get("metadata") or {}).get("generation"),
                "deployment_status": deployment.get("status"),
            }
        missing_children = sorted((want - set(stragglers)) - children_present(cp, ns, want))
        by_kind = Counter(audit.between(wall0, wall1))
        log(
            f"reconcile: {count} of {n} Ready in {reconcile_seconds:.2f} s,"
            f" operator CPU {reconcile_cpu:.2f} s, control plane CPU {cp_cpu:.2f} s,"
            f" {sum(by_kind.values())} operator requests",
            file=sys.stderr,
        )

        time.sleep(bench.SETTLE_SECONDS)

        # 4. rounds
        rounds: list[dict[str, Any]] = []
        settle = bench.STATUS_WRITE_PERIOD_SECONDS + bench.HEAL_INTERVAL_SECONDS + 1
        for i in range(args.rounds):
            r: dict[str, Any] = {}
            reads0 = bench.pod_stats(stats_url)
            cpu, cpc = bench.Cpu(op.pid), ControlPlaneCpu(cp, bench.Cpu)
            w0, t0 = time.time(), time.monotonic()
            time.sleep(args.window)
            used, cp_used, t1, w1 = cpu.used(), cpc.used(), time.monotonic(), time.time()
            reads = bench.pod_stats(stats_url) - reads0
            at_rest = audit.between(w0, w1)
            r["rest_seconds"] = t1 - t0
            r["cpu_fraction_of_core_checking"] = used / (t1 - t0)
            r["controlplane_cpu_fraction_at_rest"] = cp_used / (t1 - t0)
            r["pod_reads"] = reads
            r["operator_cpu_us_per_pod_read"] = used / max(reads, 1) * 1e6
            r["api_requests_at_rest"] = len(at_rest)
            r["at_rest_by_kind"] = dict(Counter(at_rest))
            bench.set_traffic(stats_url, True)
            cpu, cpc = bench.Cpu(op.pid), ControlPlaneCpu(cp, bench.Cpu)
            w0, t0 = time.time(), time.monotonic()
            time.sleep(args.traffic_window)
            used, cp_used, t1, w1 = cpu.used(), cpc.used(), time.monotonic(), time.time()
            bench.set_traffic(stats_url, False)
            busy = audit.between(w0, w1)
            r["traffic_seconds"] = t1 - t0
            r["cpu_fraction_of_core_under_traffic"] = used / (t1 - t0)
            r["controlplane_cpu_fraction_under_traffic"] = cp_used / (t1 - t0)
            r["api_requests_under_traffic"] = len(busy)
            r["under_traffic_by_kind"] = dict(Counter(busy))
            settle_until = time.monotonic() + settle
            order = [(bench.METRICS_PATH, "check"), ("/metrics", "full")]
            if i % 2:
                order.reverse()
            for path, what in order:
                r[f"pod_cpu_ms_per_{what}"] = (
                    bench.app_reads(app, path, args.pod_reads) / args.pod_reads * 1e3
                )
            time.sleep(max(0.0, settle_until - time.monotonic()))
            rounds.append(r)
            log(
                f"round {i + 1}: checking {r['cpu_fraction_of_core_checking'] * 100:.2f} %"
                f" of a core, {r['operator_cpu_us_per_pod_read']:.0f} us/read ({reads} reads),"
                f" at rest {len(at_rest)} requests, under traffic {len(busy)};"
                f" control plane {r['controlplane_cpu_fraction_at_rest'] * 100:.1f} % at rest",
                file=sys.stderr,
            )
        rest_rss = bench.proc_status_kib(op.pid, "VmRSS")
        profile = None
        if args.profile:
            profile = bench.profile_window(op.pid, args.window, Path(args.profile))

        # 5. drift repair, then per-pod memory (spec.replicas raised by up to M)
        drift = drift_repairs(cp, ns, names, args.drift_samples)
        log(f"drift repair: p95 {p95(drift):.3f} s over {len(drift)}", file=sys.stderr)
        rss_kib_per_pod = None
        if extra_pods:
            for name in names:
                cp.request(
                    "PATCH", f"{PROMDEMOS.format(ns=ns)}/{name}",
                    {"spec": {"replicas": m + extra_pods}},
                    content_type="application/merge-patch+json",
                )  # fmt: skip
            want_pods = n * (m + extra_pods) + args.warm_up
            deadline = time.monotonic() + 600
            while len(kubelet.ips) < want_pods and time.monotonic() < deadline:
                alive()
                time.sleep(0.5)
            time.sleep(2 * bench.HEAL_INTERVAL_SECONDS + 2)
            more_rss = bench.proc_status_kib(op.pid, "VmRSS")
            rss_kib_per_pod = round((more_rss - rest_rss) / (n * extra_pods), 2)
        peak = bench.proc_status_kib(op.pid, "VmHWM")
        exit_code = op.stop()
        kubelet_errors = kubelet.errors[-5:]

    out: dict[str, Any] = {
        "promdemos": n,
        "pods_per_promdemo": m,
        "rounds": args.rounds,
        "api": "real",
        "kubernetes_version": cp.kubernetes_version,
        "kube_api_qps": args.kube_api_qps or "default",
        "kube_api_burst": args.kube_api_burst or "default",
        "warm_up_promdemos": args.warm_up,
        "pods_checked": n * m + args.warm_up,
        "heal_interval_seconds": bench.HEAL_INTERVAL_SECONDS,
        "window_seconds": args.window,
        "traffic_window_seconds": args.traffic_window,
    }
    put = bench.put
    for key, digits in (
        ("operator_cpu_us_per_pod_read", 1),
        ("cpu_fraction_of_core_checking", 5),
        ("cpu_fraction_of_core_under_traffic", 5),
        ("controlplane_cpu_fraction_at_rest", 4),
        ("controlplane_cpu_fraction_under_traffic", 4),
    ):
        put(out, key, [r[key] for r in rounds], digits)
    put(out, "pod_cpu_ms_per_check", [r["pod_cpu_ms_per_check"] for r in rounds], 3)
    put(out, "pod_cpu_ms_per_full_scrape", [r["pod_cpu_ms_per_full"] for r in rounds], 3)
    put(
        out,
        "api_requests_per_second_per_promdemo_at_rest",
        [r["api_requests_at_rest"] / r["rest_seconds"] / total_promdemos for r in rounds],
        5,
    )
    put(
        out,
        "api_requests_per_second_per_promdemo_under_traffic",
        [r["api_requests_under_traffic"] / r["traffic_seconds"] / total_promdemos for r in rounds],
        5,
    )
    per_read_s = out["operator_cpu_us_per_pod_read"] / 1e6
    finite = [d for d in drift if math.isfinite(d)]
    out.update(
        {
            "reconciled_seconds": round(reconcile_seconds, 3),
            "post_seconds": round(posted, 3),
            "operator_cpu_ms_per_promdemo_reconcile": round(reconcile_cpu / n * 1e3, 2),
            "controlplane_cpu_ms_per_promdemo_reconcile": round(cp_cpu / n * 1e3, 2),
            "pod_reads_during_reconcile": reconcile_reads,
            "not_ready": len(stragglers),
            "not_ready_names": stragglers[:10],
            "not_ready_example": straggler,
            "ready_without_all_children": missing_children[:10],
            "operator_cpu_ms_per_promdemo_reconcile_less_pod_reads": round(
                max(0.0, reconcile_cpu - reconcile_reads * per_read_s) / n * 1e3, 2
            ),
            "requests_to_reconcile": dict(by_kind.most_common(12)),
            "operator_requests_per_promdemo_reconcile": round(sum(by_kind.values()) / n, 2),
            "drift_repair_seconds_p50": round(statistics.median(drift), 3),
            "drift_repair_seconds_p95": round(p95(drift), 3),
            "drift_repair_seconds_max": round(max(drift), 3),
            "drift_repairs": len(drift),
            "drift_repairs_not_back_in_60s": len(drift) - len(finite),
            "idle_rss_mib": round(idle_rss / 1024, 1),
            "idle_private_mib": round(idle_private / 1024, 1),
            "idle_pss_mib": round(idle_pss / 1024, 1),
            "warm_rss_mib": round(base_rss / 1024, 1),
            "rest_rss_mib": round(rest_rss / 1024, 1),
            "peak_rss_mib": round(peak / 1024, 1),
            "rss_mib_per_promdemo": round((rest_rss - base_rss) / 1024 / n, 4),
            "rss_kib_per_pod": rss_kib_per_pod,
            "at_rest_by_kind": dict(
                sum((Counter(r["at_rest_by_kind"]) for r in rounds), Counter())
            ),
            "under_traffic_by_kind": dict(
                sum((Counter(r["under_traffic_by_kind"]) for r in rounds), Counter())
            ),
            "pod_reads_per_window": [r["pod_reads"] for r in rounds],
            "operator_cpu_us_per_pod_read_per_window": [
                round(r["operator_cpu_us_per_pod_read"], 1) for r in rounds
            ],
            "watches_opened_per_window": None,
            "kubelet_errors": kubelet_errors,
            "load_average": list(os.getloadavg()),
            "profile": profile,
            "reconcile_profile": reconcile_profile,
            "exit_code": exit_code,
        }
    )
    return out
