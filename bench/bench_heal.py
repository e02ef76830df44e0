"""Benchmark auto-heal: heal latency, the engine's cost per pod, and hostile pods.

    python bench/bench_heal.py                          # every mode, tables
    python bench/bench_heal.py --mode cost --pods 500 --json
    python bench/bench_heal.py --mode latency [--trials 20]
    python bench/bench_heal.py --mode hostile [--json]

latency  Gauge first negative → reset confirmed, `--trials` times each:
         - direct: the engine checking every 1 s (`interval: 1s`, `for: 0s`), on
           the heal daemon's schedule; target p95 <= interval + 0.5 s;
         - event-driven: real Prometheus (scrape 1 s, evaluation 1 s) with the
           rendered `InventoryNegative` rule (`for: 0s`), real Alertmanager
           (`group_wait: 0s`), the operator's webhook receiver, the same engine.
         The app is a real order-service process with stock 1 and a fixed 50 ms
         dependency: two concurrent orders drive the gauge to -1. Needs
         prometheus and prometheus-alertmanager for the event-driven part
         (skipped with a note if missing).
cost     `--pods` fake pods (tests/support/fake_pods.py: one process, one
         listener per pod on 127.0.0.2-201, each serving the app's own ~18 kB
         /metrics page), checked every `--interval` s for `--seconds` s by, in
         turn, in a process of its own so its CPU is measured alone:
         - anchor: a bare aiohttp reader (one session, GET, find the line);
         - engine: one `HealEngine` per PromDemo of `--per-promdemo` pods (50,
           the spec's replica maximum), all sharing the process's `PodHttp`
           (aiohttp) and all checking at the same instant (the worst case);
         - httpx: the same engines sharing one `httpx.AsyncClient` (pool of 32).
         CPU share of one core, CPU per pod read, check duration p50/p95/max,
         false timeouts (every fake pod answers at once: any timeout is the
         reader's own), RSS. Targets: 500 pods every 5 s < 10 % of one core;
         1,000 pods checked within the interval with 0 false timeouts.
hostile  The hostile set (endless page, gzip bomb, page just under 4 MiB,
         200,000 lines, duplicates, NaN page, dripping page, endless / gzip-bomb /
         NaN / late reset answers; `--copies` of each) next to 50 honest pods,
         checked every 2 s with cooldown 0 (every due pod is reset every check)
         for `--hostile-seconds`; the anchor is the same engine with the honest
         pods alone. Printed: the event loop's longest stall (wall, and the
         part of it this process spent on CPU: on a shared machine the wall
         figure includes time the OS gave to other processes) and peak RSS.
         Targets: stall < 50 ms, peak RSS < 128 MB.

`--json` prints one JSON object as the last line (for `--mode cost --pods N`:
at least pods, cpu_fraction_of_core, cpu_ms_per_pod_read, check_p95_seconds,
false_timeouts, with the anchor's figures under "anchor"). Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import yaml  # noqa: E402

from promdemo_operator.core.heal_policy import HealPolicy, PolicyConfig  # noqa: E402
from promdemo_operator.core.rules import rules_file  # noqa: E402
from promdemo_operator.core.spec import parse_spec  # noqa: E402
from promdemo_operator.heal.alertmanager import AlertRef, host_port  # noqa: E402
from promdemo_operator.heal.engine import METRICS_PATH, HealEngine, PodTarget  # noqa: E402
from promdemo_operator.heal.pod_client import (  # noqa: E402
    ERROR_SNIPPET_BYTES,
    BodyDecoder,
    PodAnswer,
    PodHttp,
    PodReadError,
    Sink,
)
from promdemo_operator.prometheus.config import alertmanager_config, prometheus_config  # noqa: E402
from tests.support.fake_pods import fake_pods  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.processes import ManagedProcess, python_module, wait_http_ok  # noqa: E402

TOKEN = "bench-token"  # noqa: S105 - a test token
APP_ENV = {
    "PROMDEMO_RESET_TOKEN": TOKEN,
    "PROMDEMO_INITIAL_INVENTORY": "1",
    "PROMDEMO_OVERSELL": "true",
    "PROMDEMO_DEPENDENCY_MIN_SECONDS": "0.05",
    "PROMDEMO_DEPENDENCY_MAX_SECONDS": "0.05",
    "PROMDEMO_DEPENDENCY_FAILURE_RATE": "0",
    "PROMDEMO_PROCESSING_MIN_SECONDS": "0",
    "PROMDEMO_PROCESSING_MAX_SECONDS": "0",
    "PROMDEMO_LOG_LEVEL": "warning",
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def summary(name: str, values: list[float]) -> dict[str, Any]:
    return {
        "mode": name,
        "trials": len(values),
        "p50_s": round(statistics.median(values), 3) if values else None,
        "p95_s": round(pct(values, 0.95), 3) if values else None,
        "min_s": round(min(values), 3) if values else None,
        "max_s": round(max(values), 3) if values else None,
    }


def start_app(workdir: Path, host: str = "127.0.0.1") -> tuple[ManagedProcess, str]:
    port = free_port(host)
    proc = ManagedProcess(
        python_module("promdemo_app", "--host", host, "--port", str(port)),
        log_path=workdir / f"app-{port}.log",
        env=APP_ENV,
    )
    url = f"http://{host}:{port}"
    wait_http_ok(f"{url}/healthz", proc=proc, timeout=30)
    return proc, url


async def drive_negative(client: httpx.AsyncClient, url: str) -> float:
    """Two concurrent orders on stock 1 → -1; returns when the gauge went negative."""
    while True:
        inv = (await client.get(f"{url}/inventory")).json()["inventory"]
        if inv == 1:
            break
        await asyncio.sleep(0.05)
    answers = await asyncio.gather(*(client.post(f"{url}/order") for _ in range(2)))
    t_negative = time.time()
    if [a.status_code for a in answers] != [200, 200]:
        raise RuntimeError(f"orders answered {[a.status_code for a in answers]}")
    return t_negative


# -- 1a. direct -------------------------------------------------------------------------


async def direct_latency(url: str, trials: int, interval: float = 1.0) -> list[float]:
    engine = HealEngine(HealPolicy(PolicyConfig(interval=interval, cooldown=0)), token=TOKEN)
    resets: asyncio.Queue[float] = asyncio.Queue()
    pods = [PodTarget("bench", url)]

    async def loop() -> None:  # the heal daemon's schedule
        next_at = time.monotonic()
        while True:
            result = await engine.check(pods)
            for done in result.resets:
                resets.put_nowait(done.time)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    latencies = []
    async with httpx.AsyncClient(timeout=10) as client:
        task = asyncio.create_task(loop())
        try:
            for _ in range(trials):
                await asyncio.sleep(random.uniform(0.2, 1.2))
                t_neg = await drive_negative(client, url)
                t_reset = await asyncio.wait_for(resets.get(), 30)
                latencies.append(t_reset - t_neg)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await engine.aclose()
    return latencies


# -- 1b. event-driven -------------------------------------------------------------------------


class BenchLoop:
    """The webhook's view of a heal loop (as `handlers.heal.HealLoop`), without Kubernetes."""

    def __init__(self, engine: HealEngine, pod: PodTarget, resets: asyncio.Queue[float]) -> None:
        self.namespace, self.name = "bench", "bench"
        self.engine, self.pod, self.resets = engine, pod, resets

    def find_pod(self, ref: AlertRef) -> PodTarget | None:
        return self.pod if ref.instance == host_port(self.pod.base_url) else None

    async def refresh_pods(self) -> None:
        return None

    async def heal_alert(self, ref: AlertRef) -> str:
        outcome = await self.engine.heal(self.pod, first_seen=ref.starts_at)
        if outcome.reset is not None:
            self.resets.put_nowait(outcome.reset.time)
        return outcome.outcome


async def event_latency(url: str, trials: int, workdir: Path) -> list[float] | str:
    prom_bin, am_bin = shutil.which("prometheus"), shutil.which("prometheus-alertmanager")
    if not prom_bin or not am_bin:
        return "skipped: prometheus / prometheus-alertmanager not installed"
    from promdemo_operator.runtime.handlers.webhook import AlertReceiver, WebhookServer

    engine = HealEngine(HealPolicy(PolicyConfig(cooldown=0)), token=TOKEN)
    resets: asyncio.Queue[float] = asyncio.Queue()
    pod = PodTarget("bench", url)
    receiver = AlertReceiver("hook-token", loops=lambda: [BenchLoop(engine, pod, resets)])
    server = WebhookServer(receiver, "127.0.0.1", 0)
    await server.start()
    hook = f"http://127.0.0.1:{server.port}/alertmanager"

    am_port, prom_port = free_port(), free_port()
    am_cfg = workdir / "am.yml"
    am_cfg.write_text(yaml.safe_dump(alertmanager_config(hook, bearer_token="hook-token")))  # noqa: S106
    rules = workdir / "rules.yml"
    monitoring = {"alerts": {"inventoryNegative": {"for": "0s"}}}
    rules.write_text(
        yaml.safe_dump(
            rules_file(
                parse_spec({"monitoring": monitoring}).monitoring.alerts,
                selector={"job": "promdemo"},
                alert_labels={"promdemo": "bench"},
            )
        )
    )
    prom_cfg = workdir / "prom.yml"
    prom_cfg.write_text(
        yaml.safe_dump(
            prometheus_config(
                [url.removeprefix("http://")],
                rule_files=[str(rules)],
                alertmanager=f"127.0.0.1:{am_port}",
                scrape_interval="1s",
                evaluation_interval="1s",
            )
        )
    )
    am = ManagedProcess(
        [am_bin, f"--config.file={am_cfg}", f"--storage.path={workdir / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=",
         "--log.level=warn"],
        log_path=workdir / "am.log",
    )  # fmt: skip
    prom = ManagedProcess(
        [prom_bin, f"--config.file={prom_cfg}", f"--storage.tsdb.path={workdir / 'prom-data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
        log_path=workdir / "prom.log",
    )  # fmt: skip
    latencies = []
    try:
        await asyncio.to_thread(wait_http_ok, f"http://127.0.0.1:{am_port}/-/ready", proc=am)
        await asyncio.to_thread(wait_http_ok, f"http://127.0.0.1:{prom_port}/-/ready", proc=prom)
        async with httpx.AsyncClient(timeout=10) as client:
            query = f"http://127.0.0.1:{prom_port}/api/v1/query"
            for _ in range(120):  # the first scrape is queryable only after ~5 s
                data = (await client.get(query, params={"query": "up"})).json()["data"]
                if data["result"] and data["result"][0]["value"][1] == "1":
                    break
                await asyncio.sleep(0.5)
            am_alerts = f"http://127.0.0.1:{am_port}/api/v2/alerts"
            for _ in range(trials):
                # Alertmanager swallows a re-fire of the same alert until its resolve was
                # processed (dedup by fingerprint until repeat_interval): start each trial
                # from "no active alert", like a fresh incident.
                while (await client.get(am_alerts, params={"active": "true"})).json():
                    await asyncio.sleep(0.2)
                await asyncio.sleep(random.uniform(1.5, 2.5))
                t_neg = await drive_negative(client, url)
                t_reset = await asyncio.wait_for(resets.get(), 60)
                latencies.append(t_reset - t_neg)
    finally:
        prom.stop()
        am.stop()
        await server.stop()
        await engine.aclose()
    return latencies


def latency(trials: int, workdir: Path) -> dict[str, Any]:
    app, url = start_app(workdir)
    result: dict[str, Any] = {}
    try:
        print(f"latency, direct: interval 1s, for 0s, {trials} trials ...", flush=True)
        direct = summary("direct interval=1s", asyncio.run(direct_latency(url, trials)))
        direct["target_p95_s"] = 1.5
        print(json.dumps(direct), flush=True)
        result["direct"] = direct
        print(f"latency, event-driven: scrape 1s, eval 1s, for 0s, {trials} trials ...", flush=True)
        event = asyncio.run(event_latency(url, trials, workdir))
        if isinstance(event, str):
            print(event)
            result["event_driven"] = event
        else:
            result["event_driven"] = summary("alertmanager scrape=1s eval=1s for=0s", event)
            print(json.dumps(result["event_driven"]), flush=True)
    finally:
        app.stop()
    return result


# -- 2. cost ----------------------------------------------------------------------------------

COST_READERS = ("anchor", "engine", "httpx")
READER_TITLES = {
    "anchor": "bare aiohttp (anchor)",
    "engine": "engine + PodHttp",
    "httpx": "engine + httpx (pool 32)",
}
HTTPX_POOL = 32


class StallMonitor:
    """Wakes every `period` s; the worst lateness is the event loop's longest stall.

    `max_own_ms` bounds the part of that lateness spent running this process
    (CPU time used in the late gap): on a shared machine the rest is time the OS
    gave to other processes, which no code here can avoid.
    """

    def __init__(self, period: float) -> None:
        self.period = period
        self.max_ms = 0.0
        self.max_own_ms = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0, c0 = loop.time(), time.process_time()
            await asyncio.sleep(self.period)
            late = max(0.0, loop.time() - t0 - self.period)
            own = min(late, time.process_time() - c0)
            self.max_ms = max(self.max_ms, late * 1000)
            self.max_own_ms = max(self.max_own_ms, own * 1000)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def reset(self) -> None:
        self.max_ms = self.max_own_ms = 0.0

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process, MB."""
    current = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            current = int(line.split()[1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(current / 1024, 1), round(peak / 1024, 1)


Check = Callable[[], Awaitable[Counter[str]]]


class _SinkError(Exception):
    """What the engine's sink raised, carried past httpx's error handling."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _feed(data: bytes, parts: list[bytes], sink: Sink | None) -> None:
    """Decoded bytes to the engine's sink as they arrive (as PodHttp does), else kept."""
    if not data:
        return
    if sink is None:
        parts.append(data)
        return
    try:
        sink(data)
    except Exception as e:
        raise _SinkError(e) from e


class HttpxPods:
    """The cost mode's comparison reader: the engine's bounded reads over a shared
    `httpx.AsyncClient` (what the heal loops used before `PodHttp`). It lives here,
    not in the package: nothing but this benchmark reads pods with httpx."""

    def __init__(self, client: httpx.AsyncClient, *, concurrency: int) -> None:
        self.client = client
        # The pool's bound is taken before each request's timeout starts (as PodHttp
        # does), so waiting for the pool is never counted as a slow pod.
        self._slots = asyncio.Semaphore(concurrency)

    async def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
        sink: Sink | None = None,
    ) -> PodAnswer:
        send = {"Accept-Encoding": "identity", **dict(headers or {})}
        status: int | None = None
        async with self._slots:
            try:
                async with asyncio.timeout(timeout):
                    async with self.client.stream(method, url, headers=send) as resp:
                        status = resp.status_code
                        if not 200 <= status < 300:
                            snippet = b""
                            async for chunk in resp.aiter_raw():
                                snippet = chunk[:ERROR_SNIPPET_BYTES]
                                break
                            return PodAnswer(status, snippet)
                        decoder = BodyDecoder(resp.headers.get("Content-Encoding"), max_bytes)
                        parts: list[bytes] = []
                        async for chunk in resp.aiter_raw():
                            _feed(decoder.decode(chunk), parts, sink)
                        _feed(decoder.flush(), parts, sink)
                        return PodAnswer(status, b"".join(parts))
            except _SinkError as e:
                raise e.error from None
            except PodReadError as e:
                e.status = status
                raise
            except (TimeoutError, httpx.TimeoutException) as e:
                raise PodReadError(
                    "timeout", f"no answer within {timeout:g}s", status=status
                ) from e
            except httpx.ConnectError as e:
                raise PodReadError("unreachable", str(e)[:200], sent=False) from e
            except httpx.HTTPError as e:
                raise PodReadError("unreachable", str(e)[:200], status=status) from e

    async def aclose(self) -> None:
        await self.client.aclose()


async def bare_reader(targets: list[PodTarget], timeout: float) -> tuple[Check, Any]:
    """The anchor: what any aiohttp program reading the gauge from every pod would cost."""
    import aiohttp

    session = aiohttp.ClientSession()
    # The one thing added to a bare reader: at most 64 reads in flight, each timed from
    # when it starts (with 1,000 pods a timeout that includes the wait for a pooled
    # connection reports hundreds of pods as slow that never were).
    slots = asyncio.Semaphore(64)

    async def one(url: str) -> str:
        try:
            # What the engine asks for: the gauge alone (same page size on both sides).
            get = session.get(f"{url}{METRICS_PATH}")
            async with slots, asyncio.timeout(timeout), get as resp:
                body = await resp.read()
            start = body.index(b"\nproduct_inventory ") + 19
            float(body[start : body.index(b"\n", start)])
            return "ok"
        except TimeoutError:
            return "timeout"
        except Exception:
            return "error"

    async def check() -> Counter[str]:
        return Counter(await asyncio.gather(*(one(t.base_url or "") for t in targets)))

    return check, session.close


async def engine_reader(
    targets: list[PodTarget], timeout: float, kind: str, per_promdemo: int, cooldown: float = 30.0
) -> tuple[Check, Any]:
    """Heal engines as the operator runs them: one per PromDemo of `per_promdemo` pods,
    all checking at the same instant (the worst case) through one shared client."""
    client: Any
    if kind == "httpx":
        limits = httpx.Limits(max_connections=HTTPX_POOL, max_keepalive_connections=HTTPX_POOL)
        client = HttpxPods(
            httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout)),
            concurrency=HTTPX_POOL,
        )
    else:
        client = PodHttp(max_connections=int(os.environ.get("BENCH_MAX_CONNECTIONS", "128")))
    groups = [targets[i : i + per_promdemo] for i in range(0, len(targets), per_promdemo)]
    engines = [
        HealEngine(
            HealPolicy(PolicyConfig(interval=5.0, cooldown=cooldown)),
            client=client,
            token=TOKEN,
            timeout=timeout,
            namespace="bench",
            promdemo=f"pd-{i}",
        )
        for i in range(len(groups))
    ]

    async def check() -> Counter[str]:
        counts: Counter[str] = Counter()
        results = await asyncio.gather(*(e.check(g) for e, g in zip(engines, groups, strict=True)))
        for result in results:
            counts.update(f"{f.stage}_{f.reason}" for f in result.failures)
            counts["ok"] += len(result.inventory)
            counts["resets"] += len(result.resets)
        return counts

    async def close() -> None:
        for engine in engines:
            await engine.aclose()
        await client.aclose()

    return check, close


def worker(
    kind: str, urls_file: Path, seconds: float, interval: float, period: float, per_promdemo: int
) -> dict:
    """One reader in this process: a first (warm-up) check, then `seconds` of checks."""
    urls: dict[str, str] = json.loads(urls_file.read_text())
    targets = [PodTarget(name, url) for name, url in urls.items()]
    timeout = 2.0

    async def main() -> dict[str, Any]:
        monitor = StallMonitor(period)
        monitor.start()
        if kind == "anchor":
            check, close = await bare_reader(targets, timeout)
        else:
            cooldown = 0.0 if kind == "hostile" else 30.0
            check, close = await engine_reader(targets, timeout, kind, per_promdemo, cooldown)
        rss_start, _ = rss_mb()
        if os.environ.get("BENCH_GC_FREEZE") == "1":
            # What a process can do after start-up: move everything allocated so far
            # out of the collector's reach, so a full collection scans only what the
            # checks allocate (a full collection is the longest stall left otherwise).
            gc.freeze()
        t_first = time.monotonic()
        first = await check()
        first_seconds = time.monotonic() - t_first
        monitor.reset()
        durations: list[float] = []
        totals: Counter[str] = Counter()
        overruns = 0
        t0, c0 = time.monotonic(), time.process_time()
        next_at = t0
        while time.monotonic() - t0 < seconds:
            started = time.monotonic()
            totals += await check()
            durations.append(time.monotonic() - started)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay <= 0:  # the check overran the interval: start the next one now
                overruns += 1
                next_at = time.monotonic()
            else:
                await asyncio.sleep(delay)
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
        monitor.stop()
        await close()
        rss, peak = rss_mb()
        reads = len(durations) * len(targets)
        timeouts = sum(v for k, v in totals.items() if k.endswith("timeout"))
        return {
            "reader": kind,
            "pods": len(targets),
            "pods_per_promdemo": per_promdemo if kind != "anchor" else None,
            "interval_seconds": interval,
            "checks": len(durations),
            "reads": reads,
            "cpu_fraction_of_core": round(cpu / wall, 4),
            "cpu_ms_per_pod_read": round(cpu * 1000 / reads, 3) if reads else None,
            "check_p50_seconds": round(statistics.median(durations), 3),
            "check_p95_seconds": round(pct(durations, 0.95), 3),
            "check_max_seconds": round(max(durations), 3),
            "first_check_seconds": round(first_seconds, 3),
            "overruns": overruns,
            "false_timeouts": timeouts if kind != "hostile" else None,
            "outcomes": dict(sorted((totals + Counter()).items())),
            "first_check_outcomes": dict(sorted(first.items())),
            "loop_max_stall_ms": round(monitor.max_ms, 1),
            "loop_max_stall_own_cpu_ms": round(monitor.max_own_ms, 1),
            "rss_start_mb": rss_start,
            "rss_mb": rss,
            "peak_rss_mb": peak,
        }

    return asyncio.run(main())


def run_worker(kind: str, urls: dict[str, str], seconds: float, interval: float, period: float,
               workdir: Path, per_promdemo: int = 50) -> dict[str, Any]:  # fmt: skip
    urls_file = workdir / f"urls-{kind}-{len(urls)}.json"
    urls_file.write_text(json.dumps(urls))
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--urls-file", str(urls_file),
         "--seconds", str(seconds), "--interval", str(interval), "--period", str(period),
         "--per-promdemo", str(per_promdemo)],
        capture_output=True, text=True, check=True, timeout=seconds + 300,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def cost(sizes: list[int], seconds: float, interval: float, readers: list[str],
         workdir: Path, per_promdemo: int) -> list[dict[str, Any]]:  # fmt: skip
    runs = []
    for pods in sizes:
        # Healthy pods (inventory 50): the steady state, nothing to reset.
        with fake_pods(workdir, counts=[f"{pods}:ok"], value=50) as (_, urls):
            row: dict[str, Any] = {}
            for kind in readers:
                print(f"  {pods} pods, {READER_TITLES[kind]} ...", flush=True)
                row[kind] = run_worker(kind, urls, seconds, interval, 0.02, workdir, per_promdemo)
        main = dict(row.get("engine") or next(iter(row.values())))
        for kind, figures in row.items():
            if kind != main["reader"]:
                main[kind] = figures
        if "anchor" in row and "engine" in row and row["anchor"]["cpu_ms_per_pod_read"]:
            main["cpu_ratio_to_anchor"] = round(
                row["engine"]["cpu_ms_per_pod_read"] / row["anchor"]["cpu_ms_per_pod_read"], 2
            )
        runs.append(main)
    return runs


def print_cost(runs: list[dict[str, Any]]) -> None:
    print()
    print("pods  reader                     CPU % core  CPU ms/read  check p50  p95     max"
          "     false timeouts  peak RSS MB")  # fmt: skip
    for run in runs:
        rows = [run] + [run[k] for k in COST_READERS if isinstance(run.get(k), dict)]
        for r in sorted(rows, key=lambda r: COST_READERS.index(r["reader"])):
            print(
                f"{r['pods']:<5} {READER_TITLES[r['reader']]:<26} "
                f"{100 * r['cpu_fraction_of_core']:>9.1f}  {r['cpu_ms_per_pod_read']:>11.3f}  "
                f"{r['check_p50_seconds']:>8.3f}s {r['check_p95_seconds']:>6.3f}s "
                f"{r['check_max_seconds']:>6.3f}s  {r['false_timeouts']:>14}  "
                f"{r['peak_rss_mb']:>11}"
            )
        if "cpu_ratio_to_anchor" in run:
            print(f"      engine CPU per read / anchor's: {run['cpu_ratio_to_anchor']}x")


# -- 3. hostile pods --------------------------------------------------------------------------

HOSTILE = (
    "endless", "gzip-bomb", "big-page", "many-lines", "duplicates", "nan", "drip",
    "ok:endless@-5", "ok:gzip-bomb@-5", "ok:nan@-5", "ok:late@-5",
)  # fmt: skip


def hostile(seconds: float, copies: int, workdir: Path) -> dict[str, Any]:
    pods = [f"h{i}-{kind.split('@')[0].replace(':', '-')}={kind}"
            for i in range(copies) for kind in HOSTILE]  # fmt: skip
    with fake_pods(workdir, pods=pods, counts=["50:ok"], value=50) as (_, urls):
        honest = {n: u for n, u in urls.items() if n.startswith("pod-")}
        print(f"  {len(urls) - len(honest)} hostile pods + {len(honest)} honest ...", flush=True)
        with_hostile = run_worker("hostile", urls, seconds, 2.0, 0.005, workdir)
        print(f"  {len(honest)} honest pods alone (anchor) ...", flush=True)
        anchor = run_worker("hostile", honest, seconds, 2.0, 0.005, workdir)
    return {"mode": "hostile", "hostile_pods": len(urls) - len(honest), **with_hostile,
            "anchor": anchor}  # fmt: skip


def print_hostile(result: dict[str, Any]) -> None:
    print()
    print("pods                        loop max stall  (own CPU)  peak RSS MB  check p95")
    for title, r in (("hostile set + 50 honest", result), ("50 honest (anchor)", result["anchor"])):
        print(f"{title:<27} {r['loop_max_stall_ms']:>11.1f} ms "
              f"{r['loop_max_stall_own_cpu_ms']:>7.1f} ms"
              f" {r['peak_rss_mb']:>12} {r['check_p95_seconds']:>9.3f}s")  # fmt: skip
    print(f"outcomes per {result['checks']} checks: {result['outcomes']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("all", "latency", "cost", "hostile"), default="all")
    parser.add_argument("--trials", type=int, default=20, help="latency: trials per mode")
    parser.add_argument("--pods", type=int, action="append", help="cost: pods (repeatable)")
    parser.add_argument("--seconds", type=float, default=30.0, help="cost: seconds per reader")
    parser.add_argument("--interval", type=float, default=5.0, help="cost: check interval")
    parser.add_argument("--readers", default=",".join(COST_READERS), help="cost: which readers")
    parser.add_argument(
        "--per-promdemo", type=int, default=50, help="cost: pods per engine (spec maximum: 50)"
    )
    parser.add_argument("--hostile-seconds", type=float, default=20.0)
    parser.add_argument("--copies", type=int, default=3, help="hostile: copies of each kind")
    parser.add_argument(
        "--gc-freeze", action="store_true", help="readers call gc.freeze() after start-up"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object as the last line")
    parser.add_argument("--worker", choices=(*COST_READERS, "hostile"), help=argparse.SUPPRESS)
    parser.add_argument("--urls-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--period", type=float, default=0.02, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(
            args.worker, args.urls_file, args.seconds, args.interval, args.period, args.per_promdemo
        )
        print(json.dumps(result))
        return 0

    if args.gc_freeze:
        os.environ["BENCH_GC_FREEZE"] = "1"  # read by the reader processes
    out: dict[str, Any] = {"machine_cores": os.cpu_count(), "gc_freeze": args.gc_freeze}
    with tempfile.TemporaryDirectory(prefix="bench-heal-") as tmp:
        workdir = Path(tmp)
        if args.mode in ("all", "latency"):
            out["latency"] = latency(args.trials, workdir)
        if args.mode in ("all", "cost"):
            sizes = args.pods or [100, 250, 500, 1000]
            readers = [r for r in args.readers.split(",") if r]
            print(f"cost: {sizes} pods, every {args.interval:g}s for {args.seconds:g}s each, "
                  f"readers {readers}", flush=True)  # fmt: skip
            runs = cost(sizes, args.seconds, args.interval, readers, workdir, args.per_promdemo)
            print_cost(runs)
            out["cost"] = runs
        if args.mode in ("all", "hostile"):
            print(
                f"hostile: {args.copies} of each hostile kind, {args.hostile_seconds:g}s",
                flush=True,
            )
            out["hostile"] = hostile(args.hostile_seconds, args.copies, workdir)
            print_hostile(out["hostile"])
    print(f"(machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f})")
    if args.json:
        if args.mode == "cost" and len(out["cost"]) == 1:
            print(json.dumps({"mode": "cost", **out["cost"][0]}))
        elif args.mode == "cost":
            print(json.dumps({"mode": "cost", "runs": out["cost"]}))
        elif args.mode == "hostile":
            print(json.dumps(out["hostile"]))
        elif args.mode == "latency":
            print(json.dumps({"mode": "latency", **out["latency"]}))
        else:
            print(json.dumps({"mode": "all", **out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
