"""Benchmark: the whole `promdemo operator` process with pods, N PromDemos x M pods.

    python bench/bench_operator.py --promdemos 10 --pods 50 --json
    python bench/bench_operator.py --promdemos 100 --pods 5 --rounds 5 --json
    python bench/bench_operator.py --promdemos 1000 --pods 1 --json

One run (root; bench/realapi.py): a real control plane built from upstream (etcd,
kube-apiserver, kube-controller-manager in a network namespace of their own,
`tests/support/controlplane.py`), the real operator process (`promdemo operator
--all-namespaces` with its ServiceAccount's token, resync set to hours so that all it
does is event-driven), one fake-pods process serving every pod at its own pod IP
(`tests/support/fake_pods.py`: the app's real /metrics page, and the gauge alone for
`?name[]=product_inventory`, as the app's prometheus_client answers), and one real
order-service process (`bench/appserver.py`) for the pod's own cost. The controller
manager makes the Deployments' ReplicaSets and Pods; the bench plays the scheduler
and the kubelet (realapi.LightKubelet: binds each Pod to one Node, reports it Running
and Ready). The operator process's CPU time is read from /proc/PID/stat, its RSS from
/proc/PID/status; its API requests from the API server's audit log.
`--api real` is still accepted (the only choice, the default) for older commands.

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
5. drift repair: `--drift-samples` children deleted one at a time, seconds until the
   API server holds a new one -> **drift_repair_seconds_p95**; then memory: RSS after
   the rounds minus RSS after the warm-up, / N -> **rss_mib_per_promdemo** (each with
   its M pods); then spec.replicas raised by up to M (to at most 50), the new pods
   checked for two intervals, and the RSS growth / the pods added ->
   **rss_kib_per_pod** (null at M = 50: no pod can be added).

Medians over the rounds, with `*_spread` = [min, max] beside; the reconcile and memory
figures are one measurement per run (N PromDemos / N x M pods averaged).
`--json` prints one JSON object as the last line (keys: bench/README.md).

The bench, the control plane, the pod servers and the app share the machine's cores
with the operator: on a busy machine the windows' CPU is the operator's own (from
/proc), the latencies are not.
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
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from appserver import AppServer  # noqa: E402

# Read by bench/realapi.py as bench_operator's attributes (`bench.METRICS_PATH`).
from promdemo_operator.heal.engine import METRICS_PATH  # noqa: E402, F401
from promdemo_operator.heal.status import STATUS_WRITE_PERIOD_SECONDS  # noqa: E402

NS = "bench"
WARM_UP_NS = "bench-warm-up"
#: Long enough that the safety-net resync never runs during a run.
RESYNC_SECONDS = 6 * 3600
#: After all are reconciled, before counting: every heal loop has checked and written
#: (a coalesced write comes up to a period and a check after the last change).
SETTLE_SECONDS = STATUS_WRITE_PERIOD_SECONDS + 7.0
HEAL_INTERVAL_SECONDS = 5.0
#: Every pod's inventory: well above the threshold, so no reset happens.
POD_VALUE = 100_000


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
        choices=["real"],
        default="real",
        help="the API server: a real control plane built from upstream (bench/realapi.py; "
        "root and `make controlplane`), the only one (the flag stays for old commands)",
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
        help="children deleted one at a time to time their repair (default 20)",
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
    from tests.support.controlplane import missing_requirements

    reason = missing_requirements()
    if reason is not None:
        print(f"bench_operator.py: {reason}", file=sys.stderr)
        return 2
    import realapi

    result = realapi.run_real(args, sys.modules[__name__])
    print_table(result)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
