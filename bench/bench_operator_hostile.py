"""Benchmark: the REAL operator process reading hostile pods: its peak RSS and its loop's stalls.

    python bench/bench_operator_hostile.py [--seconds 30] [--copies 3] [--json]
    python bench/bench_operator_hostile.py --only honest       # the anchor alone
    python bench/bench_operator_hostile.py --only hostile      # without the anchor

`bench/bench_heal.py --mode hostile` measures the heal engine in a bare process;
this measures `promdemo operator` itself (kopf, the Kubernetes client, the
watches, the heal daemons, the metrics and health servers) against the emulated
API server of the operator tier (tests/support/kmock_cluster.py). Per run, a
fresh emulated API server, operator and fake-pods process:

- pods: the fake pods of tests/support/fake_pods.py in one process on 127.0.0.x:
  `--honest` (50) honest pods (the app's own page, inventory 50) and, unless
  `--only honest`, the hostile set of `bench_heal.py --mode hostile` (endless
  page, 1 GiB gzip bomb, page just under 4 MiB, 200,000 lines, duplicates, NaN
  page, dripping page, endless / gzip-bomb / NaN / late reset answers at
  inventory -5), `--copies` (3) of each;
- Kubernetes: PromDemo `honest` (the honest pods) and PromDemo `hostile` (the
  hostile ones), both `autoHeal: {interval: 2s, for: 0s, cooldown: 0s,
  podAccess: podIP}` (every due pod is reset at every check); the bench plays
  the kubelet: Pod objects with the PromDemo's labels, `status.podIP` and the
  container port `http`, Ready; the Deployments' status patched ready;
- measured over `--seconds` (30) once both heal loops have checked, from another
  process so that nothing in this one (the emulated API server's thread) delays it:
  * the operator's **peak RSS** (VmHWM of /proc/PID/status: over its whole life)
    and its RSS at the end, and RSS before any pod existed;
  * **loop stall**: `GET /healthz` on `--health-port` every `--period` (20 ms)
    over one keep-alive connection. That endpoint is the operator's `/healthz`
    (`runtime/handlers/health.py`, an aiohttp server started on kopf's own event loop,
    the loop every heal daemon and watch runs on; the answer is made at once;
    kopf's own liveness server, measured the same way before, ran there too): a probe
    that arrives while the loop is blocked is answered when it is free again, so
    its latency is the stall (minus up to one period) plus a loopback round-trip.
    Printed: max, p99, p50 of the probe latencies (a stall is seen from its
    start to within one period: the longest stall is at most max + `--period`),
    probes over 1 s and 3 s (the kubelet's timeout), for the slowest probe how
    much of it kopf's thread spent on a CPU and waiting for one
    (/proc/PID/task/TID/schedstat, in ns: on a shared machine a stall can be the
    OS giving the CPU to others), and the most CPU kopf's thread used within
    any one probe (the operator's own part of its longest stall). kopf's thread
    is the thread that used the most CPU in the 2 s before the window (the heal
    loops and watches run on it; the executor threads are idle at rest); its
    share of the process's CPU over the window is printed to show that;
  * the operator's CPU over the window, checks per PromDemo (against
    `--seconds / 2` expected), and the failures by reason from the operator's
    /metrics (`promdemo_heal_scrape_failures_total`,
    `promdemo_heal_reset_failures_total`) and `promdemo_inventory_resets_total`,
    as deltas over the window: the hostile pods were read and refused.

Targets (issue 14): peak RSS < 128 MB, longest loop stall < 50 ms. Prints a
table; `--json` prints one JSON object as the last line. Asserts nothing.

The emulated API server serves from a thread of this process and the fake pods
share the machine's cores with the operator: on a shared machine, read the
hostile run against the anchor (`honest` only) of the same invocation.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_heal import HOSTILE, pct  # noqa: E402
from bench.bench_operator import cpu_seconds, proc_status_kib  # noqa: E402
from tests.support.fake_pods import fake_pods  # noqa: E402
from tests.support.kmock_cluster import (  # noqa: E402
    DEPLOYMENTS,
    PROMDEMOS,
    SECRETS,
    KmockCluster,
    OperatorProcess,
    operator_log_tail,
)

NS = "bench"
HONEST, HOSTILE_PD = "honest", "hostile"
INTERVAL_SECONDS = 2.0
#: Nothing measured here is a resync.
RESYNC_SECONDS = 6 * 3600
#: The spec's replica maximum (the pods are Pod objects; the Deployment only needs a valid spec).
MAX_REPLICAS = 50
#: Seconds before the window in which kopf's thread is found (the most CPU of any thread).
FIND_LOOP_THREAD_SECONDS = 2.0
PROBE_TIMEOUT_SECONDS = 10.0
FAILURE_METRICS = ("promdemo_heal_scrape_failures_total", "promdemo_heal_reset_failures_total")
COUNT_METRICS = ("promdemo_heal_checks_total", "promdemo_inventory_resets_total")


# -- Kubernetes side --------------------------------------------------------------------------


def promdemo(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "promdemo.dev/v1alpha1",
        "kind": "PromDemo",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": min(replicas, MAX_REPLICAS),
            "autoHeal": {
                "interval": f"{INTERVAL_SECONDS:g}s",
                "for": "0s",
                "cooldown": "0s",  # the spec's minimum: every due pod is reset every check
                "podAccess": "podIP",
            },
        },
    }


def deployment_ready(cluster: KmockCluster, name: str) -> None:
    """Play the Deployment controller (kmock runs none)."""
    replicas = (cluster.get(DEPLOYMENTS, NS, name) or {})["spec"]["replicas"]
    status = {
        "replicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "observedGeneration": 1,
    }
    cluster.patch(DEPLOYMENTS, NS, name, {"status": status}, subresource="status")


def wait_for(what: str, predicate: Any, op: OperatorProcess, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline or not op.process.alive():
            print(operator_log_tail(op), file=sys.stderr)
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def samples(op: OperatorProcess) -> dict[tuple[str, str], float]:
    """(metric name, its labels as written) → value, of the heal metrics that matter here."""
    wanted = FAILURE_METRICS + COUNT_METRICS
    found = {}
    for line in op.metrics_text().splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name, _, labels = series.partition("{")
        if name in wanted:
            found[(name, labels.rstrip("}"))] = float(value)
    return found


def label(labels: str, key: str) -> str:
    for part in labels.split(","):
        k, _, v = part.partition("=")
        if k == key:
            return v.strip('"')
    return ""


def window_counts(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]
) -> dict[str, Any]:
    """What the window added: failures by PromDemo, kind and reason; checks and resets."""
    out: dict[str, Any] = {"failures": {}, "checks": {}, "resets": {}}
    for (name, labels), value in sorted(after.items()):
        delta = value - before.get((name, labels), 0.0)
        pd = label(labels, "promdemo")
        if name in FAILURE_METRICS:
            if delta:
                kind = "scrape" if "scrape" in name else "reset"
                out["failures"].setdefault(pd, {})[f"{kind}_{label(labels, 'reason')}"] = int(delta)
        elif name == "promdemo_heal_checks_total":
            out["checks"][pd] = int(delta)
        else:
            out["resets"][pd] = int(delta)
    return out


# -- the probe (another process) --------------------------------------------------------------


def schedstat(pid: int) -> dict[int, tuple[int, int]]:
    """tid → (ns on a CPU, ns waiting for one) of every thread of `pid`."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            run, wait, _ = (task / "schedstat").read_text().split()
            out[int(task.name)] = (int(run), int(wait))
    return out


def probe(pid: int, port: int, seconds: float, period: float) -> dict[str, Any]:
    """Poll /healthz every `period` s for `seconds` s; kopf's thread's CPU per probe."""
    before = schedstat(pid)
    time.sleep(FIND_LOOP_THREAD_SECONDS)
    after = schedstat(pid)
    loop_tid = max(
        (t for t in after if t != pid),
        key=lambda t: after[t][0] - before.get(t, (0, 0))[0],
    )
    prober = Path("/proc/thread-self/schedstat")

    def sample() -> tuple[dict[int, tuple[int, int]], int]:
        """Every operator thread's (ns on a CPU, ns waiting), and this thread's ns waiting."""
        return schedstat(pid), int(prober.read_text().split()[1])

    def during(a: tuple[dict, int], b: tuple[dict, int]) -> tuple[int, int, int, int]:
        """kopf thread's CPU and wait, the other threads' CPU, the prober's wait (ns)."""
        (ta, pa), (tb, pb) = a, b
        loop_run = tb[loop_tid][0] - ta[loop_tid][0]
        loop_wait = tb[loop_tid][1] - ta[loop_tid][1]
        others = sum(v[0] - ta.get(t, (0, 0))[0] for t, v in tb.items() if t != loop_tid)
        return loop_run, loop_wait, others, pb - pa

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT_SECONDS)
    latencies: list[float] = []
    errors = 0
    own_max = 0.0
    worst: tuple[float, tuple[int, int, int, int]] = (0.0, (0, 0, 0, 0))
    start_all = schedstat(pid)
    t0 = time.monotonic()
    next_at = t0
    while time.monotonic() - t0 < seconds:
        first = sample()
        started = time.perf_counter()
        try:
            conn.request("GET", "/healthz")
            answer = conn.getresponse()
            answer.read()
            ok = answer.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
        latency = time.perf_counter() - started
        spent = during(first, sample())
        if not ok:
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT_SECONDS)
        latencies.append(latency)
        # kopf's thread's CPU within this probe, bounded by the probe: its own part of a stall.
        own_max = max(own_max, min(latency, spent[0] / 1e9))
        if latency > worst[0]:
            worst = (latency, spent)
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:  # the probe took longer than the period: the next one now
            next_at = time.monotonic()
    conn.close()
    end_all = schedstat(pid)
    process_ns = sum(end_all[t][0] - start_all.get(t, (0, 0))[0] for t in end_all)
    loop_ns = end_all[loop_tid][0] - start_all[loop_tid][0]
    ms = [v * 1000 for v in latencies]
    return {
        "probes": len(ms),
        "probe_errors": errors,
        "healthz_max_ms": round(max(ms), 1),
        "healthz_p99_ms": round(pct(ms, 0.99), 1),
        "healthz_p50_ms": round(pct(ms, 0.5), 1),
        "healthz_over_1s": sum(v > 1000 for v in ms),
        "healthz_over_3s": sum(v > 3000 for v in ms),
        "healthz_max_own_cpu_ms": round(own_max * 1000, 1),
        # The slowest probe: where its time went (ns → ms).
        "worst_probe_loop_thread_cpu_ms": round(worst[1][0] / 1e6, 1),
        "worst_probe_loop_thread_runqueue_ms": round(worst[1][1] / 1e6, 1),
        "worst_probe_other_threads_cpu_ms": round(worst[1][2] / 1e6, 1),
        "worst_probe_prober_runqueue_ms": round(worst[1][3] / 1e6, 1),
        "loop_thread_share_of_process_cpu": round(loop_ns / process_ns, 3) if process_ns else None,
    }


def run_probe(op: OperatorProcess, seconds: float, period: float) -> dict[str, Any]:
    port = int(op.health_url.split(":")[2].split("/")[0])
    argv = [sys.executable, __file__, "--probe-pid", str(op.pid), "--probe-port", str(port),
            "--seconds", str(seconds), "--period", str(period)]  # fmt: skip
    out = subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=seconds + 120
    )  # the child ends by itself: a bounded loop; the timeout is the backstop
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- one run ----------------------------------------------------------------------------------


def hostile_pod_specs(copies: int) -> list[str]:
    return [f"h{i}-{kind.split('@')[0].replace(':', '-')}={kind}"
            for i in range(copies) for kind in HOSTILE]  # fmt: skip


def run_once(
    with_hostile: bool, *, honest: int, copies: int, seconds: float, period: float
) -> dict[str, Any]:
    pods = hostile_pod_specs(copies) if with_hostile else []
    with (
        tempfile.TemporaryDirectory(prefix="bench-operator-hostile-") as tmp,
        fake_pods(Path(tmp), pods=pods, counts=[f"{honest}:ok"], value=50) as (_, urls),
        KmockCluster(Path(tmp) / "kmock", namespaces=(NS,)) as cluster,
    ):
        # KmockCluster.close() (the `with`) stops the operator first, then the API server;
        # fake_pods stops its process: every process ends, whatever fails here.
        op = cluster.start_operator(resync_seconds=RESYNC_SECONDS)
        groups = {HONEST: {n: u for n, u in urls.items() if n.startswith("pod-")}}
        if with_hostile:
            groups[HOSTILE_PD] = {n: u for n, u in urls.items() if not n.startswith("pod-")}
        for name, members in groups.items():
            cluster.create(promdemo(name, len(members)))
        for name in groups:
            wait_for(
                f"{name} reconciled",
                lambda name=name: (
                    cluster.get(SECRETS, NS, f"{name}-reset-token") is not None
                    and cluster.get(DEPLOYMENTS, NS, name) is not None
                ),
                op,
            )
            deployment_ready(cluster, name)
        time.sleep(2.0)  # the status writes of the reconcile settle
        rss_before_pods = proc_status_kib(op.pid, "VmRSS")
        for name, members in groups.items():
            for pod, url in members.items():
                cluster.store_pod(NS, name, pod, url)

        def honest_read() -> bool:
            pd = cluster.get(PROMDEMOS, NS, HONEST) or {}
            return len((pd.get("status") or {}).get("inventory") or {}) == len(groups[HONEST])

        wait_for("every honest pod in status.inventory", honest_read, op)
        if with_hostile:
            wait_for(
                "two checks of the hostile PromDemo",
                lambda: (
                    op.metric_value(
                        "promdemo_heal_checks_total", {"namespace": NS, "promdemo": HOSTILE_PD}
                    )
                    >= 2
                ),
                op,
            )
        before = samples(op)
        cpu_before = cpu_seconds(op.pid)
        probed = run_probe(op, seconds, period)  # starts with FIND_LOOP_THREAD_SECONDS
        window = seconds + FIND_LOOP_THREAD_SECONDS
        cpu = cpu_seconds(op.pid) - cpu_before
        after = samples(op)
        rss_end = proc_status_kib(op.pid, "VmRSS")
        peak = proc_status_kib(op.pid, "VmHWM")
        alive = op.process.alive()
        exit_code = cluster.stop_operator(op)
    counts = window_counts(before, after)
    return {
        "set": "hostile" if with_hostile else "honest",
        "hostile_pods": len(pods),
        "honest_pods": honest,
        "seconds": seconds,
        "interval_seconds": INTERVAL_SECONDS,
        "peak_rss_mb": round(peak / 1024, 1),
        "rss_end_mb": round(rss_end / 1024, 1),
        "rss_before_pods_mb": round(rss_before_pods / 1024, 1),
        **probed,
        "operator_cpu_fraction_of_core": round(cpu / window, 3),
        "checks_expected_per_promdemo": round(window / INTERVAL_SECONDS),
        **counts,
        "operator_alive_at_end": alive,
        "exit_code": exit_code,
    }


def print_table(runs: list[dict[str, Any]]) -> None:
    head = (
        f"{'pods':<24} {'peak RSS':>9} {'RSS end':>8} {'healthz max':>11} {'p99':>8} "
        f"{'p50':>7} {'>1s':>4} {'>3s':>4} {'own CPU max':>11} {'CPU':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in runs:
        title = (
            f"{r['hostile_pods']} hostile + {r['honest_pods']} honest"
            if r["hostile_pods"]
            else f"{r['honest_pods']} honest (anchor)"
        )
        print(
            f"{title:<24} {r['peak_rss_mb']:>6.1f} MB {r['rss_end_mb']:>5.1f} MB "
            f"{r['healthz_max_ms']:>8.1f} ms {r['healthz_p99_ms']:>5.1f} ms "
            f"{r['healthz_p50_ms']:>4.1f} ms {r['healthz_over_1s']:>4} {r['healthz_over_3s']:>4} "
            f"{r['healthz_max_own_cpu_ms']:>8.1f} ms "
            f"{100 * r['operator_cpu_fraction_of_core']:>5.1f}%"
        )
    for r in runs:
        print(
            f"  {r['set']}: {r['probes']} probes ({r['probe_errors']} errors); slowest "
            f"{r['healthz_max_ms']:g} ms: kopf's thread on a CPU "
            f"{r['worst_probe_loop_thread_cpu_ms']:g} ms, waiting for one "
            f"{r['worst_probe_loop_thread_runqueue_ms']:g} ms, the operator's other threads "
            f"on a CPU {r['worst_probe_other_threads_cpu_ms']:g} ms, the prober waiting "
            f"{r['worst_probe_prober_runqueue_ms']:g} ms"
        )
        print(
            f"    kopf's thread {100 * (r['loop_thread_share_of_process_cpu'] or 0):.0f}% of "
            f"the process's CPU; checks {r['checks']} (expected ~"
            f"{r['checks_expected_per_promdemo']} each); resets answered 2xx {r['resets']}"
        )
        for pd, reasons in r["failures"].items():
            print(f"    {pd} failures: {reasons}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window (30)")
    parser.add_argument("--copies", type=int, default=3, help="copies of each hostile pod (3)")
    parser.add_argument("--honest", type=int, default=50, help="honest pods (50)")
    parser.add_argument("--period", type=float, default=0.02, help="healthz probe period (0.02)")
    parser.add_argument(
        "--only", choices=("hostile", "honest"), help="one run: the hostile set or the anchor"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object as the last line")
    parser.add_argument("--probe-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--probe-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe_pid:
        print(json.dumps(probe(args.probe_pid, args.probe_port, args.seconds, args.period)))
        return 0

    sets = [args.only == "hostile"] if args.only else [True, False]
    runs = []
    for with_hostile in sets:
        what = f"{args.copies} of each hostile pod + " if with_hostile else "anchor: "
        print(f"{what}{args.honest} honest pods, {args.seconds:g}s ...", flush=True)
        runs.append(
            run_once(
                with_hostile,
                honest=args.honest,
                copies=args.copies,
                seconds=args.seconds,
                period=args.period,
            )
        )
    print()
    print_table(runs)
    load = os.getloadavg()[0]
    print(f"(machine: {os.cpu_count()} cores, load average {load:.2f}; "
          "targets: peak RSS < 128 MB, loop stall < 50 ms)")  # fmt: skip
    if args.json:
        main_run = dict(runs[0])
        if len(runs) > 1:
            main_run["anchor"] = runs[1]
        main_run["machine_cores"] = os.cpu_count()
        main_run["load_average"] = round(load, 2)
        print(json.dumps(main_run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
