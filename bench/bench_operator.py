"""Benchmark: the real operator process against kmock, 100 PromDemos at once.

    python bench/bench_operator.py [--count 100] [--workers 16]

Measures the seconds from applying N PromDemos (POSTed back to back) until all
N are reconciled — their five children exist and status.observedGeneration is
written — and the operator process's peak RSS (VmHWM from /proc/PID/status).
Prints the figures; asserts nothing (bench/ is measured, never gated on).

kmock is an in-process Python emulation serving from one thread, and shares the
machine's cores with the operator, so the figures are an upper bound for the
operator's own cost, not a prediction for a real API server.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.kmock_cluster import (  # noqa: E402
    DEPLOYMENTS,
    PROMDEMOS,
    PROMETHEUSRULES,
    SECRETS,
    SERVICEMONITORS,
    SERVICES,
    KmockCluster,
)

NS = "bench"
CHILD_RESOURCES = (SECRETS, DEPLOYMENTS, SERVICES, SERVICEMONITORS, PROMETHEUSRULES)


def peak_rss_kib(pid: int) -> int:
    """VmHWM (peak resident set size) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def reconciled(cluster: KmockCluster, names: set[str]) -> int:
    """How many of `names` have all five children and an observedGeneration."""
    done = {
        pd["metadata"]["name"]
        for pd in cluster.stored(PROMDEMOS, NS)
        if (pd.get("status") or {}).get("observedGeneration") == pd["metadata"].get("generation")
    }
    for res in CHILD_RESOURCES:
        have = {obj["metadata"]["name"] for obj in cluster.stored(res, NS)}
        if res == SECRETS:
            have = {n.removesuffix("-reset-token") for n in have}
        done &= have
    return len(done & names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--auto-heal",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="spec.autoHeal.enabled of the PromDemos (default on: each gets a heal loop)",
    )
    args = parser.parse_args(argv)

    with (
        tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp,
        KmockCluster(Path(tmp), namespaces=(NS,)) as cluster,
    ):
        # A long resync: the figure is the event-driven path, not the timer.
        op = cluster.start_operator("--workers", str(args.workers), resync_seconds=3600)
        idle_rss = peak_rss_kib(op.pid)
        names = {f"demo-{i:03d}" for i in range(args.count)}
        started = time.monotonic()
        for name in sorted(names):
            cluster.create({
                "apiVersion": "promdemo.dev/v1alpha1",
                "kind": "PromDemo",
                "metadata": {"name": name, "namespace": NS},
                "spec": {
                    "replicas": 1,
                    "autoHeal": {"enabled": args.auto_heal},
                    "monitoring": {"labels": {"release": "prometheus"}},
                },
            })  # fmt: skip
        applied = time.monotonic() - started
        done = 0
        while done < args.count:
            if time.monotonic() - started > args.timeout:
                print(f"timed out: {done}/{args.count} reconciled", file=sys.stderr)
                print(op.process.log()[-3000:], file=sys.stderr)
                return 1
            if not op.process.alive():
                print(op.process.log()[-3000:], file=sys.stderr)
                return 1
            time.sleep(0.5)
            done = reconciled(cluster, names)
        elapsed = time.monotonic() - started
        peak = peak_rss_kib(op.pid)
        reconciles = op.metric_value("promdemo_reconciles_total", {"result": "success"})
        calls = [c for c in cluster.api_calls() if c.client == "operator"]
        by_kind = Counter(f"{c.verb} {c.resource}" for c in calls).most_common(8)
        stop_started = time.monotonic()
        exit_code = cluster.stop_operator(op)
        stop_seconds = time.monotonic() - stop_started

    print(f"PromDemos:                        {args.count}")
    print(f"operator workers:                 {args.workers}")
    print(f"autoHeal (a heal loop each):      {'on' if args.auto_heal else 'off'}")
    print(f"apply (POST all):                 {applied:.2f} s")
    print(f"apply → all reconciled:           {elapsed:.2f} s")
    print(f"throughput:                       {args.count / elapsed:.1f} PromDemos/s")
    print(
        f"operator peak RSS (VmHWM):        {peak / 1024:.1f} MiB (idle {idle_rss / 1024:.1f} MiB)"
    )
    print(f"successful reconciles:            {reconciles:.0f}")
    print(f"SIGTERM → exit:                   {stop_seconds:.1f} s, status {exit_code}")
    print(f"API requests by the operator:     {len(calls)}")
    for what, n in by_kind:
        print(f"  {n:6d} {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
