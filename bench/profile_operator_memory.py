"""Profile: what holds the operator's memory per PromDemo (bench_operator.py's RSS figure).

    python bench/profile_operator_memory.py                  # 100 PromDemos, 25 frames
    python bench/profile_operator_memory.py --count 100 --frames 1 --rest-seconds 30
    python bench/profile_operator_memory.py --top 40 --json

The same run as `bench/bench_operator.py --count N` (kmock, the real operator process,
16 warm-up PromDemos in another namespace, a Prometheus object, resync set to hours),
but the operator is started by a launcher that runs `tracemalloc` (`--frames` deep;
0 = off) and dumps, on SIGUSR2, a report of the process into a file: tracemalloc's
snapshot, Python objects counted by type (`gc.get_objects`: what the collector tracks),
asyncio tasks by coroutine, glibc's heap (`mallinfo2`) and pymalloc's arenas
(`sys._debugmallocstats`, which reports them only with `--frames 0`: tracemalloc
hides pymalloc behind its hooks). The operator's own code is not changed: the hook is in the
launcher only. Dumps are taken at the same two moments as the bench's RSS readings
(before the N, and at rest), and the difference is printed per PromDemo in KiB:

- RSS growth, split into the Python heap that tracemalloc traces (the allocations of
  Python objects and buffers, pymalloc's and malloc's alike), and the rest: pymalloc
  arenas' free space, glibc's free chunks (fragmentation) and native allocations
  (OpenSSL, zlib, thread stacks) that tracemalloc does not see;
- the top holders of the traced growth, by traceback (outermost project/kopf frame)
  and by file;
- objects by type and tasks by coroutine, per PromDemo.

tracemalloc itself costs memory and time (its traces are outside the figures it
reports, but inside RSS): read the RSS growth of this run as an upper bound of the
bench's, and the traced figures as what Python allocates.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

import contextlib  # noqa: E402

from bench_operator import (  # noqa: E402
    NS,
    RESYNC_SECONDS,
    SETTLE_SECONDS,
    WARM_UP,
    WARM_UP_NS,
    promdemo,
    prometheus_behind,
    reconciled,
    wait_for,
)

from tests.support.kmock_cluster import KmockCluster  # noqa: E402

#: Environment of the launcher: where to write the dumps, how deep tracemalloc traces.
DUMP_ENV = "PROMDEMO_MEMORY_DUMP"
FRAMES_ENV = "PROMDEMO_MEMORY_FRAMES"

#: Runs in the operator's process before `promdemo operator`: tracemalloc and the
#: SIGUSR2 dump (handled in the main thread, which only waits for kopf's thread).
LAUNCHER = r"""
import asyncio, collections, ctypes, gc, io, json, os, signal, sys, tempfile, tracemalloc

frames = int(os.environ.get("PROMDEMO_MEMORY_FRAMES", "25"))
if frames:
    tracemalloc.start(frames)
base = os.environ["PROMDEMO_MEMORY_DUMP"]
dumps = [0]

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

def mallinfo():
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    m = libc.mallinfo2()
    return {n: getattr(m, n) for n, _ in MallInfo2._fields_}

def pymalloc_stats():
    # sys._debugmallocstats writes to the C stderr: catch fd 2 in a file.
    with tempfile.TemporaryFile(mode="w+") as out:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
            ctypes.CDLL(None).fflush(None)  # C's stderr may be buffered here
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read()
    stats = {}
    for line in text.splitlines():
        key, sep, value = line.rpartition("=")
        if not sep:
            continue
        key = " ".join(w for w in key.strip().lstrip("#").split() if not w.isdigit())
        try:
            stats.setdefault(key, int(value.strip().replace(",", "")))
        except ValueError:
            pass
    return stats

def malloc_arenas():
    # malloc_info(3): glibc's arenas (the main one and one per thread that allocated),
    # each with the bytes it holds from the system and the free chunks among them.
    import xml.etree.ElementTree as ET
    libc = ctypes.CDLL("libc.so.6")
    libc.fdopen.restype = ctypes.c_void_p
    with tempfile.TemporaryFile() as out:
        fp = libc.fdopen(os.dup(out.fileno()), b"w")
        libc.malloc_info(0, ctypes.c_void_p(fp))
        libc.fclose(ctypes.c_void_p(fp))
        out.seek(0)
        root = ET.fromstring(out.read())
    arenas = []
    for heap in root.findall("heap"):
        free = sum(int(t.get("size")) for t in heap.findall("total"))
        system = next(
            int(t.get("size")) for t in heap.findall("system") if t.get("type") == "current"
        )
        arenas.append({"nr": int(heap.get("nr")), "system": system, "free": free})
    mmapped = sum(int(t.get("size")) for t in root.findall("total") if t.get("type") == "mmap")
    return {"arenas": arenas, "mmapped": mmapped}

def smaps():
    # RSS of the process by kind of mapping: the main heap, pymalloc's arenas,
    # glibc's thread arenas (64 MiB heaps), stacks, files; in KiB.
    kinds = collections.Counter()
    size = 0
    kind = ""
    with open("/proc/self/smaps") as f:
        for line in f:
            first = line.split()
            if "-" in first[0] and len(first) >= 5 and not first[0].endswith(":"):
                lo, hi = (int(x, 16) for x in first[0].split("-"))
                size = hi - lo
                path = first[5] if len(first) > 5 else ""
                if path == "[heap]":
                    kind = "main heap"
                elif path.startswith("["):
                    kind = path
                elif path:
                    kind = "files"
                elif lo % (64 << 20) == 0:  # glibc aligns its thread arenas' heaps so
                    kind = "anon 64 MiB-aligned (glibc thread arenas)"
                elif size in ((8 << 20), (8 << 20) + 4096):
                    kind = "anon 8 MiB (thread stacks)"
                else:  # pymalloc's 1 MiB arenas, merged by the kernel when adjacent
                    kind = "anon other (pymalloc arenas, other mmaps)"
            elif first[0] == "Rss:":
                kinds[kind] += int(first[1])
    return dict(kinds)

def rss_kib():
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmRSS:")).split()[1])

def coroutine_name(task):
    coro = task.get_coro()
    qual = getattr(coro, "__qualname__", None) or type(coro).__name__
    return qual

def dump(signum, frame):
    dumps[0] += 1
    path = f"{base}.{dumps[0]}"
    objects = gc.get_objects()
    types = collections.Counter(
        f"{type(o).__module__}.{type(o).__qualname__}" for o in objects
    )
    tasks = collections.Counter(
        coroutine_name(o) for o in objects if isinstance(o, asyncio.Task) and not o.done()
    )
    del objects
    report = {
        "rss_kib": rss_kib(),
        "threads": len(os.listdir("/proc/self/task")),
        "types": dict(types),
        "tasks": dict(tasks),
        "mallinfo": mallinfo(),
        "malloc_info": malloc_arenas(),
        "smaps": smaps(),
        "pymalloc": pymalloc_stats(),
        "gc_count": gc.get_count(),
        "gc_frozen": gc.get_freeze_count(),
    }
    if tracemalloc.is_tracing():
        report["traced"] = tracemalloc.get_traced_memory()[0]
        report["tracemalloc_overhead"] = tracemalloc.get_tracemalloc_memory()
        tracemalloc.take_snapshot().dump(path + ".snapshot")
    # What a full collection would free now (cyclic garbage the collector has not
    # reached yet): measured after the snapshot, so the figures above include it.
    report["rss_before_collect_kib"] = rss_kib()
    if tracemalloc.is_tracing():
        report["traced_before_collect"] = tracemalloc.get_traced_memory()[0]
    report["collected"] = gc.collect() if dumps[0] > 1 else None
    if tracemalloc.is_tracing():
        report["traced_after_collect"] = tracemalloc.get_traced_memory()[0]
    report["rss_after_collect_kib"] = rss_kib()
    with open(path + ".json.tmp", "w") as f:
        json.dump(report, f)
    os.replace(path + ".json.tmp", path + ".json")

signal.signal(signal.SIGUSR2, dump)
from promdemo_operator.cli.main import main
sys.exit(main())
"""


class ProfiledCluster(KmockCluster):
    """KmockCluster whose operator runs under the launcher above."""

    def __init__(self, *args: Any, dump_base: Path, frames: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dump_base = dump_base
        self.frames = frames

    def operator_argv(self, *args: str) -> list[str]:
        return [sys.executable, "-c", LAUNCHER, "operator", *args]

    def operator_env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        env = super().operator_env(kubeconfig)
        env[DUMP_ENV] = str(self.dump_base)
        env[FRAMES_ENV] = str(self.frames)
        return env


def take_dump(pid: int, base: Path, number: int) -> dict[str, Any]:
    """SIGUSR2 the operator and wait for its report number `number`."""
    os.kill(pid, signal.SIGUSR2)
    path = Path(f"{base}.{number}.json")
    deadline = time.monotonic() + 120
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no memory dump {path}")
        time.sleep(0.2)
    report = json.loads(path.read_text())
    snap = Path(f"{base}.{number}.snapshot")
    report["snapshot"] = tracemalloc.Snapshot.load(str(snap)) if snap.exists() else None
    return report


#: Frames every allocation of the operator has: not who allocates.
ENTRY_POINTS = ("promdemo_operator/runtime/startup.py", "promdemo_operator/cli/main.py", "<string>")


def holder(tb: tracemalloc.Traceback) -> str:
    """The frame that says who allocates: the innermost frame of the operator's own code
    (its entry points aside), else the innermost of kopf, else the innermost frame."""
    frames = list(reversed(tb))  # a Traceback is oldest frame first: innermost first here
    for wanted in ("promdemo_operator", "kopf", ""):
        for f in frames:
            if wanted in f.filename and not f.filename.endswith(ENTRY_POINTS):
                return f"{short(f.filename)}:{f.lineno}"
    return "?"


def chain(tb: tracemalloc.Traceback, depth: int = 3) -> str:
    """The `depth` innermost frames of libraries and the operator (the standard library and
    the entry points aside): who asked for the memory, and who asked them."""
    frames = [
        f
        for f in reversed(tb)  # innermost first
        if ("site-packages" in f.filename or "promdemo_operator" in f.filename)
        and not f.filename.endswith(ENTRY_POINTS)
    ]
    return " < ".join(f"{short(f.filename)}:{f.lineno}" for f in frames[:depth]) or "?"


def short(filename: str) -> str:
    for mark in ("site-packages/", "operator/", "lib/python3"):
        if mark in filename:
            return filename.split(mark, 1)[1]
    return filename


def diff_by(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, key: str
) -> list[tracemalloc.StatisticDiff]:
    filters = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    ]
    return after.filter_traces(filters).compare_to(before.filter_traces(filters), key)


def grouped_by_holder(diffs: list[tracemalloc.StatisticDiff]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for d in diffs:
        totals[holder(d.traceback)] += d.size_diff
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--frames", type=int, default=25, help="tracemalloc depth (0 = off)")
    parser.add_argument("--rest-seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--auto-heal", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--prometheus", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--tracebacks", type=int, default=0, help="print N full tracebacks")
    parser.add_argument("--save", type=Path, help="keep the two dumps in this directory")
    parser.add_argument("--json", action="store_true", help="also print JSON (last line)")
    args = parser.parse_args(argv)
    n = args.count

    with (
        tempfile.TemporaryDirectory(prefix="profile-operator-") as tmp,
        ProfiledCluster(
            Path(tmp),
            namespaces=(NS, WARM_UP_NS, "monitoring"),
            prometheus=args.prometheus,
            dump_base=Path(tmp) / "dump",
            frames=args.frames,
        ) as cluster,
        contextlib.ExitStack() as stack,
    ):
        if args.prometheus:
            stack.enter_context(prometheus_behind(cluster, Path(tmp)))
        op = cluster.start_operator(
            "--workers", str(args.workers), "--prometheus-interval", "5",
            resync_seconds=RESYNC_SECONDS,
        )  # fmt: skip
        warm_up = {f"warm-up-{i}" for i in range(WARM_UP)}
        for name in sorted(warm_up):
            cluster.create(promdemo(name, WARM_UP_NS, args.auto_heal))
        wait_for(lambda: reconciled(cluster, warm_up, WARM_UP_NS) == WARM_UP, op, "the warm-up")
        time.sleep(6.0)
        before = take_dump(op.pid, cluster.dump_base, 1)
        names = [f"demo-{i:03d}" for i in range(n)]
        for name in names:
            cluster.create(promdemo(name, NS, args.auto_heal))
        wait_for(lambda: reconciled(cluster, set(names)) == n, op, f"{n} reconciled")
        time.sleep(SETTLE_SECONDS + args.rest_seconds)
        after = take_dump(op.pid, cluster.dump_base, 2)
        cluster.stop_operator(op)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            for dump in Path(tmp).glob("dump.*"):
                shutil.copy(dump, args.save / dump.name)

    per = 1024 * n
    # RSS as each dump began (the bench's two moments); the first dump's own transient
    # memory (a snapshot) is inside the second reading, hence the two figures below.
    rss0, rss1 = before["rss_kib"], after["rss_kib"]

    def kib(b: float) -> float:
        return round(b / per, 2)

    result: dict[str, Any] = {
        "count": n,
        "frames": args.frames,
        "rss_kib_per_promdemo": round((rss1 - rss0) / n, 1),
        "rss_kib_per_promdemo_from_first_dump_end": round(
            (rss1 - before["rss_before_collect_kib"]) / n, 1
        ),
        "threads": [before["threads"], after["threads"]],
    }
    mb, ma = before["mallinfo"], after["mallinfo"]
    result["malloc_kib_per_promdemo"] = {
        "in_use": kib(ma["uordblks"] - mb["uordblks"]),
        "free_in_heap": kib(ma["fordblks"] - mb["fordblks"]),
        "mmapped": kib(ma["hblkhd"] - mb["hblkhd"]),
        "arena": kib(ma["arena"] - mb["arena"]),
    }
    ib, ia = before["malloc_info"], after["malloc_info"]

    def arenas(info: dict[str, Any], main: bool, what: str) -> int:
        return sum(a[what] for a in info["arenas"] if (a["nr"] == 0) == main)

    result["glibc_arenas_kib_per_promdemo"] = {
        f"{where} {what}": kib(arenas(ia, main, what) - arenas(ib, main, what))
        for where, main in (("main arena", True), ("thread arenas", False))
        for what in ("system", "free")
    }
    result["glibc_arenas_kib_per_promdemo"]["mmapped chunks"] = kib(ia["mmapped"] - ib["mmapped"])
    result["glibc_thread_arenas"] = [len(ib["arenas"]) - 1, len(ia["arenas"]) - 1]
    sb, sa = Counter(before["smaps"]), Counter(after["smaps"])
    result["rss_by_mapping_kib_per_promdemo"] = {
        k: round((sa[k] - sb.get(k, 0)) / n, 1) for k in sa if sa[k] != sb.get(k, 0)
    }
    if after.get("collected") is not None:
        result["full_collection_at_rest"] = {
            "objects_freed_per_promdemo": round(after["collected"] / n, 1),
            "rss_kib_freed_per_promdemo": round(
                (after["rss_before_collect_kib"] - after["rss_after_collect_kib"]) / n, 1
            ),
        }
        if after.get("traced_before_collect") is not None:
            result["full_collection_at_rest"]["traced_kib_freed_per_promdemo"] = kib(
                after["traced_before_collect"] - after["traced_after_collect"]
            )
    pb, pa = before["pymalloc"], after["pymalloc"]
    result["pymalloc_kib_per_promdemo"] = {
        k: kib(pa[k] - pb.get(k, 0))
        for k in pa
        if k.startswith("bytes in") or "arenas" in k or k.startswith("Total")
    }
    if after.get("traced") is not None:
        traced = after["traced"] - before["traced"]
        result["traced_kib_per_promdemo"] = kib(traced)
        result["untraced_rss_kib_per_promdemo"] = round((rss1 - rss0) / n - traced / per, 1)
        result["tracemalloc_own_kib_per_promdemo"] = kib(
            after["tracemalloc_overhead"] - before["tracemalloc_overhead"]
        )
        diffs = diff_by(before["snapshot"], after["snapshot"], "traceback")
        holders = grouped_by_holder(diffs)
        chains: Counter[str] = Counter()
        for d in diffs:
            chains[chain(d.traceback)] += d.size_diff
        result["top_chains_kib"] = {
            k: kib(v) for k, v in chains.most_common(args.top) if abs(v) >= 0.2 * per
        }
        result["top_holders_kib"] = {
            k: kib(v) for k, v in holders.most_common(args.top) if abs(v) >= 0.05 * per
        }
        files = diff_by(before["snapshot"], after["snapshot"], "filename")
        files.sort(key=lambda d: -d.size_diff)
        result["top_files_kib"] = {
            short(d.traceback[0].filename): kib(d.size_diff)
            for d in files[: args.top]
            if d.size_diff >= 0.05 * per
        }
        for d in sorted(diffs, key=lambda d: -d.size_diff)[: args.tracebacks]:
            print(f"--- {kib(d.size_diff)} KiB/PD, {d.count_diff / n:+.2f} blocks/PD")
            for line in d.traceback.format(most_recent_first=True)[:40]:
                print("   ", line)
    tb, ta = Counter(before["types"]), Counter(after["types"])
    grown = Counter({k: ta[k] - tb.get(k, 0) for k in ta})
    result["objects_per_promdemo"] = {
        k: round(v / n, 2) for k, v in grown.most_common(args.top) if v >= n // 2
    }
    result["objects_total_per_promdemo"] = round((sum(ta.values()) - sum(tb.values())) / n, 1)
    kb, ka = Counter(before["tasks"]), Counter(after["tasks"])
    result["tasks"] = {"before": sum(kb.values()), "after": sum(ka.values())}
    result["tasks_per_promdemo"] = {
        k: round((ka[k] - kb.get(k, 0)) / n, 2) for k in ka if ka[k] != kb.get(k, 0)
    }

    for key, value in result.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {v:>10} {k}")
        else:
            print(f"{key}: {value}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
