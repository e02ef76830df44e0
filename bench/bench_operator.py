"""Benchmark: the real operator process against kmock, N PromDemos at once.

    python bench/bench_operator.py                      # 25, 50, 100, 200; heal on and off
    python bench/bench_operator.py --count 100 --json   # one run; its JSON is the last line
    python bench/bench_operator.py --count 100 --no-auto-heal
    python bench/bench_operator.py --count 100 --no-prometheus   # no Prometheus object

For each run (a fresh emulated API server and operator, resync set to hours so
that everything measured is event-driven):

- **reconciled_seconds**: from the first POST of N PromDemos (back to back) until
  all N are reconciled: their five children exist and status.observedGeneration
  is written; **after_last_post_seconds**: the part of it after the last POST was
  answered (on a busy machine the POSTs themselves, served by kmock, take long);
- **operator_cpu_seconds**: the operator process's CPU time (user + system) over
  that span, the steadier figure on a busy machine;
- **peak_rss_mib**: the operator's peak RSS (VmHWM); **rss_mib_per_promdemo**:
  (RSS at rest − RSS before the first of the N) / N: the cost of one more
  PromDemo. `WARM_UP` PromDemos in another namespace are reconciled first to pay
  for what is paid once: imports, the heal loops' HTTP client, the API thread
  pool grown to `--workers` threads, caches;
- **api_requests_per_second_per_promdemo_at_rest**: the operator's requests
  counted at the emulated API over `--rest-seconds` (60) once everything settled,
  per second and per PromDemo; watch streams are not counted (they are open
  connections, not requests);
- **drift_repair_p95_seconds**: `--drift-trials` (10) times, at a random moment,
  delete one child (each kind in turn) of a random PromDemo and time until a new
  one exists; p95 of those times (nearest rank: the slowest of 10);
- with `--prometheus` (the default): kube-prometheus-stack's Prometheus object
  (release `prometheus`, which every PromDemo's labels match) with a real
  Prometheus process behind its service proxy (when `prometheus` is installed;
  otherwise the proxy answers 503, which costs the operator the same requests), the
  operator started with `--prometheus-interval` (5s here, 30s by default). At rest:
  **proxy_gets_per_second** (the operator's GETs through `services/proxy`: targets,
  rules, lessons query), **proxy_gets_per_round** (per `--prometheus-interval`:
  3 for one Prometheus, whatever N), and **api_requests_at_rest** counts everything
  else (status writes included).

Prints a table (asserts nothing: bench/ is measured, never gated on); with
`--json` also one JSON object per run, the last line being the run (one count) or
`{"runs": [...]}` (several).

kmock is an in-process Python emulation serving from one thread, and shares the
machine's cores with the operator, so the figures are an upper bound for the
operator's own cost, not a prediction for a real API server.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import contextlib  # noqa: E402
import shutil  # noqa: E402

import yaml  # noqa: E402

from tests.support.kmock_cluster import (  # noqa: E402
    DEPLOYMENTS,
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
#: PromDemos reconciled before the measured ones (as many as the default --workers).
WARM_UP = 16
CHILDREN = {
    "Secret": SECRETS,
    "Deployment": DEPLOYMENTS,
    "Service": SERVICES,
    "ServiceMonitor": SERVICEMONITORS,
    "PrometheusRule": PROMETHEUSRULES,
}
SWEEP = (25, 50, 100, 200)
#: Long enough that the safety-net resync never runs during a run.
RESYNC_SECONDS = 6 * 3600
#: After all are reconciled, before counting at rest: every heal loop (5 s interval,
#: first checks spread over it) has written its first status.
SETTLE_SECONDS = 12.0
PROMETHEUS_NS = "monitoring"
KPS = ROOT / "tests" / "fixtures" / "prometheus" / "kube-prometheus-stack.yaml"


def proc_status_kib(pid: int, field: str) -> int:
    """A `VmXXX:` line of /proc/PID/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def promdemo(name: str, namespace: str, auto_heal: bool) -> dict[str, Any]:
    return {
        "apiVersion": "promdemo.dev/v1alpha1",
        "kind": "PromDemo",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "autoHeal": {"enabled": auto_heal},
            "monitoring": {"labels": {"release": "prometheus"}},
        },
    }


def child_name(kind: str, name: str) -> str:
    return f"{name}-reset-token" if kind == "Secret" else name


def reconciled(cluster: KmockCluster, names: set[str], namespace: str = NS) -> int:
    """How many of `names` have all five children and an observedGeneration."""
    done = {
        pd["metadata"]["name"]
        for pd in cluster.stored(PROMDEMOS, namespace)
        if (pd.get("status") or {}).get("observedGeneration") == pd["metadata"].get("generation")
    }
    for res in CHILDREN.values():
        have = {obj["metadata"]["name"] for obj in cluster.stored(res, namespace)}
        if res == SECRETS:
            have = {n.removesuffix("-reset-token") for n in have}
        done &= have
    return len(done & names)


def operator_requests(cluster: KmockCluster, since: int = 0) -> list[Any]:
    """The operator's API requests (watch streams and the service proxy aside)."""
    return [
        c
        for c in cluster.api_calls()[since:]
        if c.client == "operator" and c.verb != "watch" and c.resource != "services/proxy"
    ]


def proxy_gets(cluster: KmockCluster, since: int = 0) -> list[Any]:
    """The operator's GETs through the API server's service proxy (to Prometheus)."""
    return [
        c
        for c in cluster.api_calls()[since:]
        if c.client == "operator" and c.resource == "services/proxy"
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


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def drift_repair(
    cluster: KmockCluster, op: OperatorProcess, names: list[str], trials: int, rng: random.Random
) -> list[float]:
    """Seconds from deleting a child to its replacement existing, per trial."""
    kinds = list(CHILDREN)
    times = []
    for trial in range(trials):
        kind = kinds[trial % len(kinds)]
        resource = CHILDREN[kind]
        name = child_name(kind, rng.choice(names))
        time.sleep(rng.uniform(0.0, 1.0))  # a random moment (e.g. of the heal loops' ticks)
        old = (cluster.get(resource, NS, name) or {})["metadata"]["uid"]
        started = time.monotonic()
        cluster.delete(resource, NS, name)
        while True:
            obj = cluster.get(resource, NS, name)
            if obj is not None and obj["metadata"]["uid"] != old:
                times.append(time.monotonic() - started)
                break
            if time.monotonic() - started > 120 or not op.process.alive():
                raise RuntimeError(f"{kind} {name} was not restored within 120 s")
            time.sleep(0.005)
    return times


def wait_for(predicate: Any, op: OperatorProcess, what: str, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline or not op.process.alive():
            print(op.process.log()[-3000:], file=sys.stderr)
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def run_once(
    count: int,
    *,
    auto_heal: bool,
    workers: int,
    rest_seconds: float,
    trials: int,
    seed: int,
    prometheus: bool = True,
    prometheus_interval: float = 5.0,
) -> dict[str, Any]:
    rng = random.Random(seed)
    with (
        tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp,
        KmockCluster(
            Path(tmp), namespaces=(NS, WARM_UP_NS, PROMETHEUS_NS), prometheus=prometheus
        ) as cluster,
        contextlib.ExitStack() as stack,
    ):
        real_prometheus = None
        if prometheus:
            real_prometheus = stack.enter_context(prometheus_behind(cluster, Path(tmp)))
        op = cluster.start_operator(
            "--workers", str(workers), "--prometheus-interval", f"{prometheus_interval:g}",
            resync_seconds=RESYNC_SECONDS,
        )  # fmt: skip
        warm_up = {f"warm-up-{i}" for i in range(WARM_UP)}
        for name in sorted(warm_up):
            cluster.create(promdemo(name, WARM_UP_NS, auto_heal))
        wait_for(lambda: reconciled(cluster, warm_up, WARM_UP_NS) == WARM_UP, op, "the warm-up")
        time.sleep(6.0)  # their heal loops' first checks (5 s interval)
        idle_rss = proc_status_kib(op.pid, "VmRSS")
        names = [f"demo-{i:03d}" for i in range(count)]
        cpu_before = cpu_seconds(op.pid)
        started = time.monotonic()
        for name in names:
            cluster.create(promdemo(name, NS, auto_heal))
        applied = time.monotonic() - started
        wait_for(lambda: reconciled(cluster, set(names)) == count, op, f"{count} reconciled")
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(op.pid) - cpu_before
        by_kind = Counter(f"{c.verb} {c.resource}" for c in operator_requests(cluster))

        time.sleep(SETTLE_SECONDS)
        mark = len(cluster.api_calls())
        time.sleep(rest_seconds)
        at_rest = operator_requests(cluster, mark)
        proxied = proxy_gets(cluster, mark)
        rest_rss = proc_status_kib(op.pid, "VmRSS")

        repairs = drift_repair(cluster, op, names, trials, rng)
        peak = proc_status_kib(op.pid, "VmHWM")
        exit_code = cluster.stop_operator(op)

    return {
        "count": count,
        "auto_heal": auto_heal,
        "workers": workers,
        "apply_seconds": round(applied, 3),
        "reconciled_seconds": round(elapsed, 3),
        "after_last_post_seconds": round(elapsed - applied, 3),
        "operator_cpu_seconds": round(cpu, 2),
        "peak_rss_mib": round(peak / 1024, 1),
        "idle_rss_mib": round(idle_rss / 1024, 1),
        "rest_rss_mib": round(rest_rss / 1024, 1),
        "rss_mib_per_promdemo": round((rest_rss - idle_rss) / 1024 / count, 4),
        "rest_seconds": rest_seconds,
        "api_requests_at_rest": len(at_rest),
        "api_requests_per_second_per_promdemo_at_rest": round(
            len(at_rest) / rest_seconds / count, 5
        ),
        "at_rest_by_kind": dict(Counter(f"{c.verb} {c.resource}" for c in at_rest)),
        "prometheus": prometheus,
        "real_prometheus": real_prometheus is not None,
        "prometheus_interval_seconds": prometheus_interval,
        "proxy_gets_at_rest": len(proxied),
        "proxy_gets_per_second": round(len(proxied) / rest_seconds, 4),
        "proxy_gets_per_round": round(len(proxied) / (rest_seconds / prometheus_interval), 2),
        "proxy_paths": dict(Counter(c.proxied_path for c in proxied)),
        "drift_repair_seconds": [round(t, 3) for t in repairs],
        "drift_repair_p50_seconds": round(nearest_rank(repairs, 0.5), 3),
        "drift_repair_p95_seconds": round(nearest_rank(repairs, 0.95), 3),
        "requests_to_reconcile": dict(by_kind.most_common(10)),
        "exit_code": exit_code,
    }


def print_table(runs: list[dict[str, Any]]) -> None:
    head = (
        f"{'PromDemos':>9} {'heal':>4} {'reconciled':>10} {'(after POSTs)':>13} {'CPU':>6} "
        f"{'peak RSS':>9} {'RSS/PD':>9} "
        f"{'req/s/PD rest':>13} {'drift p50':>9} {'drift p95':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in runs:
        print(
            f"{r['count']:>9} {'on' if r['auto_heal'] else 'off':>4} "
            f"{r['reconciled_seconds']:>9.2f}s {r['after_last_post_seconds']:>12.2f}s "
            f"{r['operator_cpu_seconds']:>5.1f}s "
            f"{r['peak_rss_mib']:>6.1f}MiB "
            f"{r['rss_mib_per_promdemo']:>6.3f}MiB "
            f"{r['api_requests_per_second_per_promdemo_at_rest']:>13.5f} "
            f"{r['drift_repair_p50_seconds']:>8.3f}s {r['drift_repair_p95_seconds']:>8.3f}s"
        )
    for r in runs:
        top = ", ".join(f"{n} {what}" for what, n in r["requests_to_reconcile"].items())
        rest = r["at_rest_by_kind"] or "none"
        heal = "on" if r["auto_heal"] else "off"
        print(f"  {r['count']} PromDemos, heal {heal}: to reconcile: {top}; at rest: {rest}")
        if r["prometheus"]:
            behind = "a real Prometheus" if r["real_prometheus"] else "nothing (503)"
            print(
                f"    Prometheus object present ({behind} behind its proxy), asked every"
                f" {r['prometheus_interval_seconds']:g}s: {r['proxy_gets_at_rest']} proxy GETs"
                f" in {r['rest_seconds']:g}s = {r['proxy_gets_per_second']:g}/s,"
                f" {r['proxy_gets_per_round']:g} per round ({r['proxy_paths']});"
                f" other API requests at rest: {r['api_requests_at_rest']}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, help="one run with N PromDemos (default: a sweep)")
    parser.add_argument(
        "--auto-heal",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="spec.autoHeal.enabled of the PromDemos (default: on for --count, both in a sweep)",
    )
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rest-seconds", type=float, default=60.0)
    parser.add_argument("--drift-trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--prometheus",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a kube-prometheus-stack Prometheus object selecting every PromDemo (default: on)",
    )
    parser.add_argument(
        "--prometheus-interval",
        type=float,
        default=5.0,
        help="the operator's --prometheus-interval in seconds (default 5)",
    )
    parser.add_argument("--json", action="store_true", help="also print JSON (last line)")
    args = parser.parse_args(argv)

    counts = [args.count] if args.count else list(SWEEP)
    if args.auto_heal is None:
        heals = [True] if args.count else [True, False]
    else:
        heals = [args.auto_heal]
    runs = []
    for count in counts:
        for heal in heals:
            run = run_once(
                count, auto_heal=heal, workers=args.workers, rest_seconds=args.rest_seconds,
                trials=args.drift_trials, seed=args.seed, prometheus=args.prometheus,
                prometheus_interval=args.prometheus_interval,
            )  # fmt: skip
            runs.append(run)
            if args.json and len(counts) * len(heals) > 1:
                print(json.dumps(run), flush=True)
    print_table(runs)
    if args.json:
        print(json.dumps(runs[0] if len(runs) == 1 else {"runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
