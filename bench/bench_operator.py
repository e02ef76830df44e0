"""Benchmark: the whole `promdemo operator` process with pods, N PromDemos x M pods.

    python bench/bench_operator.py --promdemos 10 --pods 50 --json
    python bench/bench_operator.py --promdemos 100 --pods 5 --rounds 5 --json
    python bench/bench_operator.py --promdemos 1000 --pods 1 --json

One run: an emulated API server (kmock, `tests/support/kmock_cluster.py`), the real
operator process (`promdemo operator --all-namespaces`, resync set to hours so that
all it does is event-driven), one pod-server process serving every pod over its own
loopback socket (`tests/support/fake_pods.py`: the app's real /metrics page, and the
gauge alone for `?name[]=product_inventory`, as the app's prometheus_client answers),
and one real order-service process (`bench/appserver.py`) for the pod's own cost. The
bench plays the Deployment controller and the kubelet: for each Deployment the
operator creates it stores M Pods (created Pending, then Running with a pod IP, then
Ready: three events each, as a kubelet makes) and writes the Deployment's status
twice (created, then available). The operator process's CPU time is read from
/proc/PID/stat, its RSS from /proc/PID/status; nothing the bench does to watch it
(reading the emulator's records, the pod servers' counters) happens inside a CPU
window.

Phases (every figure is printed; nothing is asserted):

1. idle: the operator with no PromDemo, settled -> **idle_rss_mib**.
2. warm-up: `--warm-up` PromDemos (1 pod each) in another namespace pay what is paid
   once (imports, the pod client, thread pools); they stay, their pods are checked too.
3. reconcile: N PromDemos (spec.replicas M, autoHeal interval 5 s, podAccess podIP)
   POSTed back to back; until every one is Ready (its children exist, Available
   True, observedGeneration current) -> **reconciled_seconds**, and the operator's CPU
   over that span / N -> **operator_cpu_ms_per_promdemo_reconcile** (create-to-Ready,
   the heal loops' first checks of the new pods included; the part the pod reads
   took, at the per-read cost measured in 4, is given aside).
4. `--rounds` rounds (>= 5), each: a window of `--window` s while the operator only
   checks (pods at constant values; **cpu_fraction_of_core_checking**, and that CPU /
   the pod reads served in the window -> **operator_cpu_us_per_pod_read**; the
   operator's API requests in it / s / PromDemo ->
   **api_requests_per_second_per_promdemo_at_rest**), then a window of
   `--traffic-window` s of order traffic (every pod's value drops at each read, so every
   check sees new values) -> **api_requests_per_second_per_promdemo_under_traffic**;
   then, while the operator settles (the last coalesced status write, up to 10 s plus
   a check later), outside every operator window, `--pod-reads` reads of the real app
   process, alternately the gauge alone (what a check asks) and the whole page (what
   Prometheus scrapes) -> **pod_cpu_ms_per_check** (and `pod_cpu_ms_per_full_scrape`).
5. memory: RSS after the rounds minus RSS after the warm-up, / N ->
   **rss_mib_per_promdemo** (each with its M pods); then M more pods per PromDemo are
   added, checked for two intervals, and the RSS growth / (N x M) -> **rss_kib_per_pod**.

Medians over the rounds, with `*_spread` = [min, max] beside; the reconcile and memory
figures are one measurement per run (N PromDemos / N x M pods averaged).
`--json` prints one JSON object as the last line (keys: bench/README.md).

kmock is an in-process Python emulation serving from one thread, and the bench, the
pod servers and the app share the machine's cores with the operator: on a busy
machine the windows' CPU is the operator's own (from /proc), the latencies are not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import kmock  # noqa: E402
import yaml  # noqa: E402
from appserver import AppServer  # noqa: E402

from promdemo_operator.heal.engine import METRICS_PATH  # noqa: E402
from promdemo_operator.heal.status import STATUS_WRITE_PERIOD_SECONDS  # noqa: E402
from tests.support.fake_pods import fake_pods  # noqa: E402
from tests.support.kmock_cluster import (  # noqa: E402
    DEPLOYMENTS,
    PODS,
    PROMDEMOS,
    PROMETHEUSRULES,
    SECRETS,
    SERVICEMONITORS,
    SERVICES,
    KmockCluster,
    OperatorProcess,
)
from tests.support.prometheus import run_prometheus  # noqa: E402

NS = "bench"
WARM_UP_NS = "bench-warm-up"
#: PromDemos reconciled before the measured ones (bench/profile_operator_memory.py).
WARM_UP = 16
CHILDREN = {
    "Secret": SECRETS,
    "Deployment": DEPLOYMENTS,
    "Service": SERVICES,
    "ServiceMonitor": SERVICEMONITORS,
    "PrometheusRule": PROMETHEUSRULES,
}
#: Long enough that the safety-net resync never runs during a run.
RESYNC_SECONDS = 6 * 3600
#: After all are reconciled, before counting: every heal loop has checked and written
#: (a coalesced write comes up to a period and a check after the last change).
SETTLE_SECONDS = STATUS_WRITE_PERIOD_SECONDS + 7.0
HEAL_INTERVAL_SECONDS = 5.0
#: Every pod's inventory: well above the threshold, so no reset happens.
POD_VALUE = 100_000
PROMETHEUS_NS = "monitoring"
KPS = ROOT / "tests" / "fixtures" / "prometheus" / "kube-prometheus-stack.yaml"


# --------------------------------------------------------------------------- /proc


def proc_status_kib(pid: int, field: str) -> int:
    """A `VmXXX:` line of /proc/PID/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def private_and_pss_kib(pid: int) -> tuple[int, int]:
    """(Private_Clean + Private_Dirty, Pss) of /proc/PID/smaps_rollup, in KiB: RSS counts
    every shared library page the process touched (libcrypto, the C extensions)."""
    private = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Private_Clean", "Private_Dirty"):
            private += int(rest.split()[0])
        elif name == "Pss":
            pss = int(rest.split()[0])
    return private, pss


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat fields 14 and 15).

    In clock ticks (10 ms): `cpu_precise` for short windows.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_precise(pid: int) -> float:
    """CPU seconds of a process's live threads so far, in nanoseconds' precision.

    The sum of /proc/PID/task/*/schedstat's first field (time on a CPU); a thread that
    exited is missing from it, so windows compare it with `cpu_seconds` (see `Cpu`).
    """
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    return total / 1e9


class Cpu:
    """A process's CPU over a window: the precise figure unless threads exited in it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.ticks, self.precise = cpu_seconds(pid), cpu_precise(pid)

    def used(self) -> float:
        ticks = cpu_seconds(self.pid) - self.ticks
        precise = cpu_precise(self.pid) - self.precise
        # Ticks are 10 ms coarse; more than 20 ms beyond the precise sum: a thread ended.
        return ticks if ticks > precise + 0.02 else precise


# --------------------------------------------------------------------------- objects


def promdemo(
    name: str,
    namespace: str,
    auto_heal: bool = True,
    *,
    replicas: int = 1,
    interval: float = HEAL_INTERVAL_SECONDS,
) -> dict[str, Any]:
    return {
        "apiVersion": "promdemo.dev/v1alpha1",
        "kind": "PromDemo",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "autoHeal": {"enabled": auto_heal, "interval": f"{interval:g}s", "podAccess": "podIP"},
            "monitoring": {"labels": {"release": "prometheus"}},
        },
    }


def reconciled(cluster: KmockCluster, names: set[str], namespace: str = NS) -> int:
    """How many of `names` have all five children and a current observedGeneration."""
    return len(_ready_names(cluster, namespace, available=False) & names)


def ready(cluster: KmockCluster, names: set[str], namespace: str = NS) -> int:
    """How many of `names` are Ready: `reconciled` and their Available condition True."""
    return len(_ready_names(cluster, namespace, available=True) & names)


def _ready_names(cluster: KmockCluster, namespace: str, *, available: bool) -> set[str]:
    # Read in the emulator's loop without copying the objects: 1,000 PromDemos polled.
    kinds = {kmock.resource(r): k for k, r in CHILDREN.items()}
    pd_res = kmock.resource(PROMDEMOS)

    def read(k: Any) -> set[str]:
        done: set[str] = set()
        children: dict[str, set[str]] = {kind: set() for kind in CHILDREN}
        for (res, ns, name), obj in k.objects.items():
            if ns != namespace or obj.deleted:
                continue
            if res == pd_res:
                raw = obj.raw
                status = raw.get("status") or {}
                if status.get("observedGeneration") != raw["metadata"].get("generation"):
                    continue
                if available and not any(
                    c.get("type") == "Available" and c.get("status") == "True"
                    for c in status.get("conditions") or []
                ):
                    continue
                done.add(name)
            elif res in kinds:
                children[kinds[res]].add(name.removesuffix("-reset-token"))
        for have in children.values():
            done &= have
        return done

    return cluster.call(read)


def stored_names(cluster: KmockCluster, resource: str, namespace: str) -> set[str]:
    res = kmock.resource(resource)

    def read(k: Any) -> set[str]:
        return {
            n
            for (r, ns, n), o in k.objects.items()
            if r == res and ns == namespace and not o.deleted
        }

    return cluster.call(read)


def watch_requests(cluster: KmockCluster, since: int = 0) -> int:
    """The operator's watch requests (a stream opened again) since call number `since`."""
    return sum(
        1 for c in cluster.api_calls()[since:] if c.client == "operator" and c.verb == "watch"
    )


def operator_requests(cluster: KmockCluster, since: int = 0) -> list[Any]:
    """The operator's API requests (watch streams and the service proxy aside)."""
    return [
        c
        for c in cluster.api_calls()[since:]
        if c.client == "operator" and c.verb != "watch" and c.resource != "services/proxy"
    ]


@contextlib.contextmanager
def prometheus_behind(cluster: KmockCluster, workdir: Path) -> Any:
    """kube-prometheus-stack's Prometheus object, a real Prometheus behind it if installed."""
    cluster.add_prometheus(next(d for d in yaml.safe_load_all(KPS.read_text()) if d))
    if shutil.which("prometheus") is None:
        yield None
        return
    with run_prometheus(workdir / "prometheus", [], wait_up=False) as prom:
        cluster.route_service(PROMETHEUS_NS, "prometheus-operated", "web", prom.url)
        yield prom


def wait_for(
    predicate: Callable[[], bool],
    op: OperatorProcess,
    what: str,
    timeout: float = 1800,
    interval: float = 0.1,
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline or not op.process.alive():
            print(op.process.log()[-3000:], file=sys.stderr)
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- the kubelet


class Kubelet:
    """Plays the Deployment controller and the kubelet for the PromDemos' Deployments.

    Each Deployment seen gets `pods` Pods, each served by one pod-server socket:
    created Pending, then Running with its pod IP (not ready), then Ready; and its
    status written twice (progressing, then available), as a cluster does.
    """

    def __init__(self, cluster: KmockCluster, urls: list[str]) -> None:
        self.cluster = cluster
        self.free = list(urls)
        self.done: set[tuple[str, str]] = set()
        self.pods: dict[tuple[str, str], list[str]] = {}

    def step(self, namespace: str, pods: int) -> int:
        """Serve the Deployments of `namespace` not served yet; how many were."""
        new = sorted(
            n
            for n in stored_names(self.cluster, DEPLOYMENTS, namespace)
            if (namespace, n) not in self.done
        )
        for name in new:
            self.done.add((namespace, name))
            self.deployment_status(namespace, name, pods, ready=0)
            for _ in range(pods):
                self.add_pod(namespace, name)
            self.deployment_status(namespace, name, pods, ready=pods)
        return len(new)

    def add_pod(self, namespace: str, promdemo_name: str) -> str:
        url = self.free.pop()
        have = self.pods.setdefault((namespace, promdemo_name), [])
        pod = f"{promdemo_name}-{len(have):02d}"
        have.append(pod)
        host, port = url.removeprefix("http://").split(":")
        labels = {"app.kubernetes.io/name": "promdemo", "app.kubernetes.io/instance": promdemo_name}
        self.cluster.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod, "namespace": namespace, "labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "ghcr.io/promdemo/promdemo:0.1.0",
                            "ports": [{"name": "http", "containerPort": int(port)}],
                        }
                    ]
                },
            }
        )
        for status in (
            {
                "phase": "Running",
                "podIP": host,
                "conditions": [{"type": "Ready", "status": "False"}],
            },
            {
                "phase": "Running",
                "podIP": host,
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        ):
            self.cluster.patch(PODS, namespace, pod, {"status": status}, subresource="status")
        return pod

    def deployment_status(self, namespace: str, name: str, replicas: int, *, ready: int) -> None:
        status = {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": replicas - ready,
        }
        self.cluster.patch(DEPLOYMENTS, namespace, name, {"status": status}, subresource="status")


# --------------------------------------------------------------------------- the pods' side


def pod_stats(url: str) -> int:
    """Reads of /metrics served so far by the pod-server process (all its pods)."""
    with urllib.request.urlopen(f"{url}/stats/all", timeout=30) as resp:
        return int(json.loads(resp.read())["scrapes"])


def set_traffic(url: str, on: bool) -> None:
    req = urllib.request.Request(f"{url}/traffic/{'on' if on else 'off'}", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30):
        pass


def app_reads(app: AppServer, path: str, count: int) -> float:
    """CPU seconds the app process spent answering `count` keep-alive GETs of `path`."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{app.port}\r\n"
        "User-Agent: promdemo-operator-heal\r\nAccept: */*\r\nAccept-Encoding: identity\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", app.port), timeout=30) as sock:
        stream = sock.makefile("rb")
        before = Cpu(app.pid)
        for _ in range(count):
            sock.sendall(request)
            length = None
            while (line := stream.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length is None:
                raise RuntimeError(f"no Content-Length in the app's answer to {path}")
            stream.read(length)
        return before.used()


# --------------------------------------------------------------------------- profile


def _spy_binary() -> str | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("--profile: py-spy is not installed (pip install py-spy); skipped", file=sys.stderr)
        return None
    return spy


def start_spy(pid: int, out: Path) -> subprocess.Popen[str] | None:
    """py-spy sampling `pid` until `stop_spy` (it pauses the process to sample: the
    reconcile figures of a run profiled so are not the benchmark's)."""
    spy = _spy_binary()
    if spy is None:
        return None
    argv = [spy, "record", "-p", str(pid), "-r", "100", "--gil", "--nonblocking"]
    argv += ["-f", "raw", "-o", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # attached
    return proc


def stop_spy(proc: subprocess.Popen[str], out: Path) -> dict[str, Any] | None:
    proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return summarize_profile(out) if out.exists() else None


def profile_window(pid: int, seconds: float, out: Path) -> dict[str, Any] | None:
    """Sample the operator with py-spy for `seconds` while it only checks (collapsed
    stacks to `out`); the functions that held the CPU, by own and by inclusive samples."""
    spy = _spy_binary()
    if spy is None:
        return None
    argv = [spy, "record", "-p", str(pid), "-d", str(max(1, round(seconds))), "-r", "200", "--gil"]
    argv += ["-f", "raw", "-o", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0 or not out.exists():
        print(f"--profile: py-spy failed: {done.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return summarize_profile(out)


def summarize_profile(out: Path) -> dict[str, Any]:
    """The functions that held the CPU in py-spy's collapsed stacks: own and inclusive."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [
            f.split(" (")[0] + " " + f.rpartition("/")[2].split(":")[0]
            for f in stack.split(";")[1:]
        ]
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    share = {k: round(v / max(total, 1), 3) for k, v in own.most_common(20)}
    wide = {k: round(v / max(total, 1), 3) for k, v in inclusive.most_common(45)}
    return {"file": str(out), "samples": total, "own": share, "inclusive": wide}


# --------------------------------------------------------------------------- figures


def median_spread(values: list[float], digits: int) -> tuple[float, list[float]]:
    return round(statistics.median(values), digits), [
        round(min(values), digits),
        round(max(values), digits),
    ]


def put(out: dict[str, Any], key: str, values: list[float], digits: int) -> None:
    out[key], spread = median_spread(values, digits)
    if spread[0] != spread[1]:
        out[f"{key}_spread"] = spread


# --------------------------------------------------------------------------- one run


def run(args: argparse.Namespace) -> dict[str, Any]:
    n, m = args.promdemos, args.pods
    # the extra pods of the memory step too, and one socket for the bench's own requests
    total_pods = n * m * 2 + args.warm_up + 1
    with (
        tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp_name,
        contextlib.ExitStack() as stack,
    ):
        tmp = Path(tmp_name)
        cluster = stack.enter_context(
            KmockCluster(
                tmp / "kmock",
                namespaces=(NS, WARM_UP_NS, PROMETHEUS_NS),
                prometheus=args.prometheus,
            )
        )
        if args.prometheus:
            stack.enter_context(prometheus_behind(cluster, tmp))
        _, pod_urls = stack.enter_context(
            fake_pods(tmp, counts=[f"{total_pods}:ok"], value=POD_VALUE)
        )
        urls = [pod_urls[f"pod-{i}"] for i in range(total_pods)]
        stats_url = urls[-1]
        app = stack.enter_context(AppServer())
        extra = ["--prometheus-interval", "5"] if args.prometheus else []
        if args.kube_api_qps:
            extra += ["--kube-api-qps", str(args.kube_api_qps)]
        if args.kube_api_burst:
            extra += ["--kube-api-burst", str(args.kube_api_burst)]
        op = cluster.start_operator(*extra, resync_seconds=RESYNC_SECONDS)
        kubelet = Kubelet(cluster, urls[:-1])
        total_promdemos = n + args.warm_up
        log = print if not args.quiet else (lambda *a, **k: None)

        # 1. idle
        time.sleep(args.idle_seconds)
        idle_rss = proc_status_kib(op.pid, "VmRSS")
        idle_private, idle_pss = private_and_pss_kib(op.pid)
        log(f"idle: RSS {idle_rss / 1024:.1f} MiB", file=sys.stderr)

        # 2. warm-up
        warm = {f"warm-up-{i}" for i in range(args.warm_up)}
        for name in sorted(warm):
            cluster.create(promdemo(name, WARM_UP_NS, replicas=1))
        wait_for(
            lambda: (
                kubelet.step(WARM_UP_NS, 1) >= 0 and ready(cluster, warm, WARM_UP_NS) == len(warm)
            ),
            op,
            "the warm-up",
            interval=0.2,
        )
        time.sleep(HEAL_INTERVAL_SECONDS + 1)
        base_rss = proc_status_kib(op.pid, "VmRSS")

        # 3. reconcile
        names = [f"demo-{i:04d}" for i in range(n)]
        spy = start_spy(op.pid, Path(args.profile_reconcile)) if args.profile_reconcile else None
        reads_before = pod_stats(stats_url)
        cpu_before = Cpu(op.pid)
        started = time.monotonic()
        for i, name in enumerate(names):
            cluster.create(promdemo(name, NS, replicas=m))
            if i % 25 == 24:  # serve the Deployments made so far (each step scans the store)
                kubelet.step(NS, m)
        posted = time.monotonic() - started
        want = set(names)
        poll = 0.1 if n <= 100 else 0.5
        # Until all are Ready, or none more for `--stall-seconds` (then the stragglers are
        # reported and the figures end at the last one that became Ready).
        count, changed = 0, time.monotonic()
        reconcile_seconds, reconcile_cpu = 0.0, 0.0
        reconcile_reads = 0
        while True:
            kubelet.step(NS, m)
            now_ready = ready(cluster, want)
            now = time.monotonic()
            if now_ready != count:
                count, changed = now_ready, now
                reconcile_seconds, reconcile_cpu = now - started, cpu_before.used()
                reconcile_reads = pod_stats(stats_url) - reads_before
            if count == n or now - changed > args.stall_seconds:
                break
            if not op.process.alive():
                raise RuntimeError(f"the operator exited:\n{op.process.log()[-3000:]}")
            time.sleep(poll)
        stragglers = sorted(want - _ready_names(cluster, NS, available=True))
        reconcile_profile = stop_spy(spy, Path(args.profile_reconcile)) if spy else None
        log(
            f"reconcile: {n} Ready in {reconcile_seconds:.2f} s,"
            f" operator CPU {reconcile_cpu:.2f} s",
            file=sys.stderr,
        )
        by_kind = Counter(f"{c.verb} {c.resource}" for c in operator_requests(cluster))

        time.sleep(SETTLE_SECONDS)

        # 4. rounds
        rounds: list[dict[str, Any]] = []
        settle = STATUS_WRITE_PERIOD_SECONDS + HEAL_INTERVAL_SECONDS + 1
        for i in range(args.rounds):
            r: dict[str, Any] = {}
            # checking only
            mark = len(cluster.api_calls())
            reads0 = pod_stats(stats_url)
            cpu, t0 = Cpu(op.pid), time.monotonic()
            time.sleep(args.window)
            used, t1 = cpu.used(), time.monotonic()
            reads = pod_stats(stats_url) - reads0
            at_rest = operator_requests(cluster, mark)
            r["watches_opened"] = watch_requests(cluster, mark)
            r["rest_seconds"] = t1 - t0
            r["cpu_fraction_of_core_checking"] = used / (t1 - t0)
            r["pod_reads"] = reads
            r["operator_cpu_us_per_pod_read"] = used / max(reads, 1) * 1e6
            r["api_requests_at_rest"] = len(at_rest)
            r["at_rest_by_kind"] = dict(Counter(f"{c.verb} {c.resource}" for c in at_rest))
            # order traffic
            set_traffic(stats_url, True)
            mark = len(cluster.api_calls())
            cpu, t0 = Cpu(op.pid), time.monotonic()
            time.sleep(args.traffic_window)
            used, t1 = cpu.used(), time.monotonic()
            set_traffic(stats_url, False)
            busy = operator_requests(cluster, mark)
            r["traffic_seconds"] = t1 - t0
            r["cpu_fraction_of_core_under_traffic"] = used / (t1 - t0)
            r["api_requests_under_traffic"] = len(busy)
            r["under_traffic_by_kind"] = dict(Counter(f"{c.verb} {c.resource}" for c in busy))
            # the pod's side, while the operator settles (outside its windows)
            settle_until = time.monotonic() + settle
            order = [(METRICS_PATH, "check"), ("/metrics", "full")]
            if i % 2:
                order.reverse()
            for path, what in order:
                r[f"pod_cpu_ms_per_{what}"] = (
                    app_reads(app, path, args.pod_reads) / args.pod_reads * 1e3
                )
            time.sleep(max(0.0, settle_until - time.monotonic()))
            rounds.append(r)
            log(
                f"round {i + 1}: checking {r['cpu_fraction_of_core_checking'] * 100:.2f} %"
                f" of a core, {r['operator_cpu_us_per_pod_read']:.0f} us/read ({reads} reads),"
                f" at rest {len(at_rest)} requests ({r['watches_opened']} watches opened),"
                f" under traffic {len(busy)};"
                f" pod {r['pod_cpu_ms_per_check']:.3f} ms/check,"
                f" {r['pod_cpu_ms_per_full']:.3f} ms/full page",
                file=sys.stderr,
            )
        rest_rss = proc_status_kib(op.pid, "VmRSS")
        profile = None
        if args.profile:
            # Its own window after the measured ones: the sampler is not measured.
            profile = profile_window(op.pid, args.window, Path(args.profile))

        # 5. per-pod memory: M more pods per PromDemo
        for name in names:
            for _ in range(m):
                kubelet.add_pod(NS, name)
        time.sleep(2 * HEAL_INTERVAL_SECONDS + 2)
        more_rss = proc_status_kib(op.pid, "VmRSS")
        peak = proc_status_kib(op.pid, "VmHWM")
        exit_code = cluster.stop_operator(op)

    out: dict[str, Any] = {
        "promdemos": n,
        "pods_per_promdemo": m,
        "rounds": args.rounds,
        "api": args.api,
        "warm_up_promdemos": args.warm_up,
        "pods_checked": n * m + args.warm_up,
        "heal_interval_seconds": HEAL_INTERVAL_SECONDS,
        "window_seconds": args.window,
        "traffic_window_seconds": args.traffic_window,
    }
    put(out, "operator_cpu_us_per_pod_read", [r["operator_cpu_us_per_pod_read"] for r in rounds], 1)
    put(
        out,
        "cpu_fraction_of_core_checking",
        [r["cpu_fraction_of_core_checking"] for r in rounds],
        5,
    )
    put(
        out,
        "cpu_fraction_of_core_under_traffic",
        [r["cpu_fraction_of_core_under_traffic"] for r in rounds],
        5,
    )
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
    out.update(
        {
            "reconciled_seconds": round(reconcile_seconds, 3),
            "post_seconds": round(posted, 3),
            "operator_cpu_ms_per_promdemo_reconcile": round(reconcile_cpu / n * 1e3, 2),
            "pod_reads_during_reconcile": reconcile_reads,
            # PromDemos not Ready when nothing more became Ready for --stall-seconds
            "not_ready": len(stragglers),
            "not_ready_names": stragglers[:10],
            "operator_cpu_ms_per_promdemo_reconcile_less_pod_reads": round(
                max(0.0, reconcile_cpu - reconcile_reads * per_read_s) / n * 1e3, 2
            ),
            "requests_to_reconcile": dict(by_kind.most_common(12)),
            "idle_rss_mib": round(idle_rss / 1024, 1),
            "idle_private_mib": round(idle_private / 1024, 1),
            "idle_pss_mib": round(idle_pss / 1024, 1),
            "warm_rss_mib": round(base_rss / 1024, 1),
            "rest_rss_mib": round(rest_rss / 1024, 1),
            "peak_rss_mib": round(peak / 1024, 1),
            "rss_mib_per_promdemo": round((rest_rss - base_rss) / 1024 / n, 4),
            "rss_kib_per_pod": round((more_rss - rest_rss) / (n * m), 2),
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
            # A watch stream opened again in a window: the emulator replays what it holds
            # (every pod and PromDemo) and kopf handles each as an event.
            "watches_opened_per_window": [r["watches_opened"] for r in rounds],
            "load_average": list(os.getloadavg()),
            "profile": profile,
            "reconcile_profile": reconcile_profile,
            "exit_code": exit_code,
        }
    )
    return out


def print_table(r: dict[str, Any]) -> None:
    def fig(key: str, unit: str = "", scale: float = 1.0, fmt: str = "{:.3g}") -> str:
        value = fmt.format(r[key] * scale) + unit
        spread = r.get(f"{key}_spread")
        if spread:
            value += " (" + "–".join(fmt.format(v * scale) for v in spread) + ")"
        return value

    print(
        f"{r['promdemos']} PromDemos x {r['pods_per_promdemo']} pods"
        f" ({r['pods_checked']} pods checked every {r['heal_interval_seconds']:g} s),"
        f" {r['rounds']} rounds, API: {r['api']}; medians (min–max)"
    )
    rows = [
        ("operator CPU per pod read", fig("operator_cpu_us_per_pod_read", " µs", fmt="{:.0f}")),
        (
            "operator CPU while checking",
            fig("cpu_fraction_of_core_checking", " % of a core", 100, "{:.2f}"),
        ),
        (
            "... under order traffic",
            fig("cpu_fraction_of_core_under_traffic", " % of a core", 100, "{:.2f}"),
        ),
        ("pod CPU per check (gauge alone)", fig("pod_cpu_ms_per_check", " ms")),
        ("pod CPU per full page (Prometheus)", fig("pod_cpu_ms_per_full_scrape", " ms")),
        (
            "API requests/s per PromDemo at rest",
            fig("api_requests_per_second_per_promdemo_at_rest", "", fmt="{:.4f}"),
        ),
        (
            "... under order traffic",
            fig("api_requests_per_second_per_promdemo_under_traffic", "", fmt="{:.4f}"),
        ),
        (
            "create-to-Ready, all",
            f"{r['reconciled_seconds']:.2f} s (POSTs {r['post_seconds']:.2f} s)"
            + (f"; {r['not_ready']} never Ready: {r['not_ready_names']}" if r["not_ready"] else ""),
        ),
        (
            "operator CPU per PromDemo create-to-Ready",
            f"{r['operator_cpu_ms_per_promdemo_reconcile']:.1f} ms"
            f" ({r['operator_cpu_ms_per_promdemo_reconcile_less_pod_reads']:.1f} ms without"
            f" the {r['pod_reads_during_reconcile']} pod reads in it)",
        ),
        (
            "RSS idle / after warm-up / peak",
            f"{r['idle_rss_mib']} / {r['warm_rss_mib']} / {r['peak_rss_mib']} MiB",
        ),
        ("RSS per PromDemo (with its pods)", f"{r['rss_mib_per_promdemo']:.3f} MiB"),
        (
            "RSS per pod",
            "n/a" if r["rss_kib_per_pod"] is None else f"{r['rss_kib_per_pod']:.2f} KiB",
        ),
    ]
    if r["api"] == "real":
        rows += [
            (
                "drift repair (child deleted -> back)",
                f"p50 {r['drift_repair_seconds_p50']:.3f} s, p95"
                f" {r['drift_repair_seconds_p95']:.3f} s ({r['drift_repairs']} deletions)",
            ),
            (
                "control plane CPU per PromDemo create-to-Ready",
                f"{r['controlplane_cpu_ms_per_promdemo_reconcile']:.1f} ms",
            ),
            (
                "control plane CPU at rest / under traffic",
                fig("controlplane_cpu_fraction_at_rest", " % of a core", 100, "{:.2f}")
                + " / "
                + fig("controlplane_cpu_fraction_under_traffic", " % of a core", 100, "{:.2f}"),
            ),
        ]
    width = max(len(a) for a, _ in rows)
    for what, value in rows:
        print(f"  {what:<{width}}  {value}")
    rest = r["at_rest_by_kind"] or "no requests"
    print(f"  at rest: {rest}; under traffic: {r['under_traffic_by_kind']}")
    for what in ("profile", "reconcile_profile"):
        if r.get(what):
            print_profile(what, r[what])


def print_profile(what: str, p: dict[str, Any]) -> None:
    print(f"  {what} ({p['samples']} samples, {p['file']}), own share:")
    for frame, share in p["own"].items():
        print(f"    {share * 100:5.1f} %  {frame}")
    print("  inclusive share:")
    for frame, share in p["inclusive"].items():
        print(f"    {share * 100:5.1f} %  {frame}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--promdemos", type=int, default=10, help="N PromDemos (default 10)")
    parser.add_argument(
        "--pods", type=int, default=50, help="M pods per PromDemo, 1..50 (default 50)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument(
        "--window", type=float, default=10.0, help="seconds of checking only per round"
    )
    parser.add_argument(
        "--traffic-window", type=float, default=20.0, help="seconds of order traffic per round"
    )
    parser.add_argument(
        "--pod-reads", type=int, default=300, help="reads of the real app per kind per round"
    )
    parser.add_argument(
        "--warm-up", type=int, default=2, help="PromDemos (1 pod each) before the measured ones"
    )
    parser.add_argument("--idle-seconds", type=float, default=8.0)
    parser.add_argument(
        "--stall-seconds",
        type=float,
        help="stop waiting for Ready when none more became Ready for this long (default: "
        "60, or 1 s per PromDemo if more: under the operator's API limit a large apply's "
        "PromDemos turn Ready only near its end, after every child is created)",
    )
    parser.add_argument(
        "--api",
        choices=["kmock", "real"],
        default="kmock",
        help="the API server: the emulator (default), or a real control plane built from "
        "upstream (bench/realapi.py; root and `make controlplane`)",
    )
    parser.add_argument(
        "--kube-api-qps",
        type=float,
        help="the operator's --kube-api-qps (default: the operator's own default)",
    )
    parser.add_argument(
        "--kube-api-burst",
        type=int,
        help="the operator's --kube-api-burst (default: the operator's own default)",
    )
    parser.add_argument(
        "--drift-samples",
        type=int,
        default=20,
        help="--api real: children deleted one at a time to time their repair (default 20)",
    )
    parser.add_argument(
        "--prometheus",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="a kube-prometheus-stack Prometheus object selecting every PromDemo (default: off)",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="after the rounds, sample the operator with py-spy for one --window",
    )
    parser.add_argument(
        "--profile-reconcile",
        metavar="FILE",
        help="sample the operator with py-spy while it reconciles (perturbs that figure)",
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "--json", action="store_true", help="print the JSON object as the last line"
    )
    args = parser.parse_args(argv)
    problems = []
    if not 1 <= args.promdemos <= 5000:
        problems.append("--promdemos must be 1..5000")
    if not 1 <= args.pods <= 50:
        problems.append("--pods must be 1..50 (spec.replicas' range)")
    if args.rounds < 1 or args.window <= 0 or args.traffic_window <= 0 or args.pod_reads < 1:
        problems.append("--rounds, --window, --traffic-window and --pod-reads must be positive")
    if problems:
        print(f"bench_operator.py: {'; '.join(problems)}", file=sys.stderr)
        return 2
    if args.stall_seconds is None:
        args.stall_seconds = max(60.0, float(args.promdemos))
    random.seed(args.seed)
    # A SIGTERM (e.g. `timeout`) unwinds the context managers: the operator, the pod
    # servers and the app are stopped, not left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.api == "real":
        from tests.support.controlplane import missing_requirements

        reason = missing_requirements()
        if reason is not None:
            print(f"bench_operator.py: --api real: {reason}", file=sys.stderr)
            return 2
        import realapi

        result = realapi.run_real(args, sys.modules[__name__])
    else:
        result = run(args)
    print_table(result)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
