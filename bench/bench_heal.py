"""Benchmark auto-heal: heal latency (direct and event-driven) and the engine's cost.

    python bench/bench_heal.py [--trials 20] [--pods 500] [--cost-seconds 60]

1. Heal latency, gauge first negative → reset confirmed, over `--trials` trials each:
   - direct: the heal engine checking every 1 s (`interval: 1s`, `for: 0s`), on the
     same schedule as the operator's heal daemon;
   - event-driven: real Prometheus (scrape 1 s, evaluation 1 s) with the rendered
     `InventoryNegative` rule (`for: 0s`), real Alertmanager (`group_wait: 0s`),
     the operator's webhook receiver (`AlertReceiver`), the same engine path.
   The app is a real order-service process with stock 1 and a fixed 50 ms
   dependency: two concurrent orders drive the gauge to -1; "first negative" is
   the moment the second order's answer arrived (the decrement happens right
   before it). A random pause before each trial spreads the trials over the
   check/scrape phase.
2. Engine cost: one engine checking `--pods` pods every 5 s for `--cost-seconds`,
   against one light stand-in server (a separate process, aiohttp) serving a real
   app's /metrics page on `--pods` paths. Reported: the engine process's CPU share
   (CPU seconds / wall seconds, of one core) and RSS.

Needs prometheus and prometheus-alertmanager (Debian) for the event-driven part
(skipped with a note if missing). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import yaml  # noqa: E402

from promdemo_operator.heal.alertmanager import AlertRef, host_port  # noqa: E402
from promdemo_operator.heal.engine import HealEngine, PodTarget  # noqa: E402
from promdemo_operator.heal.policy import HealPolicy, PolicyConfig  # noqa: E402
from promdemo_operator.promconfig import alertmanager_config, prometheus_config  # noqa: E402
from promdemo_operator.rules import rules_file  # noqa: E402
from promdemo_operator.spec import parse_spec  # noqa: E402
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
    from promdemo_operator.handlers.webhook import AlertReceiver, WebhookServer

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


# -- 2. engine cost ---------------------------------------------------------------------------

STANDIN = r"""
import sys
from aiohttp import web
page, pods, port = open(sys.argv[1]).read(), int(sys.argv[2]), int(sys.argv[3])
async def metrics(request):
    return web.Response(text=page, content_type="text/plain")
app = web.Application()
app.router.add_get("/pod/{i}/metrics", metrics)
web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
"""


def cost_worker(base: str, pods: int, seconds: float, interval: float) -> dict[str, Any]:
    """Run in its own process: check `pods` pods every `interval` s for `seconds` s."""
    targets = [PodTarget(f"pod-{i}", f"{base}/pod/{i}") for i in range(pods)]

    async def main() -> dict[str, Any]:
        engine = HealEngine(
            HealPolicy(PolicyConfig(interval=interval)), token=TOKEN, timeout=4.0, concurrency=64
        )
        durations, failures = [], 0
        t0, c0 = time.monotonic(), time.process_time()
        next_at = t0
        while time.monotonic() - t0 < seconds:
            started = time.monotonic()
            result = await engine.check(targets)
            durations.append(time.monotonic() - started)
            failures += len(result.failures)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
        await engine.aclose()
        rss_kb = 0
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
        return {
            "pods": pods,
            "interval_s": interval,
            "checks": len(durations),
            "check_p50_s": round(statistics.median(durations), 3),
            "check_max_s": round(max(durations), 3),
            "failures": failures,
            "cpu_share_of_one_core": round(cpu / wall, 4),
            "cpu_seconds_per_check": round(cpu / len(durations), 3),
            "rss_mb": round(rss_kb / 1024, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }

    return asyncio.run(main())


def engine_cost(page: str, pods: int, seconds: float, workdir: Path) -> dict[str, Any]:
    page_path = workdir / "page.txt"
    page_path.write_text(page)
    script = workdir / "standin.py"
    script.write_text(STANDIN)
    port = free_port()
    standin = ManagedProcess(
        [sys.executable, str(script), str(page_path), str(pods), str(port)],
        log_path=workdir / "standin.log",
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/pod/0/metrics", proc=standin, timeout=30)
        out = subprocess.run(
            [sys.executable, __file__, "--cost-worker", f"http://127.0.0.1:{port}",
             "--pods", str(pods), "--cost-seconds", str(seconds)],
            capture_output=True, text=True, check=True, timeout=seconds + 120,
        )  # fmt: skip
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["metrics_page_bytes"] = len(page.encode())
        return result
    finally:
        standin.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--cost-seconds", type=float, default=60.0)
    parser.add_argument("--cost-worker", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cost_worker:
        print(json.dumps(cost_worker(args.cost_worker, args.pods, args.cost_seconds, 5.0)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-heal-") as tmp:
        workdir = Path(tmp)
        app, url = start_app(workdir)
        try:
            page = httpx.get(f"{url}/metrics", timeout=10).text
            print(f"direct mode: interval 1s, for 0s, {args.trials} trials ...", flush=True)
            direct = asyncio.run(direct_latency(url, args.trials))
            print(json.dumps(summary("direct interval=1s", direct)), flush=True)
            print(f"event-driven: scrape 1s, eval 1s, for 0s, {args.trials} trials ...", flush=True)
            event = asyncio.run(event_latency(url, args.trials, workdir))
            if isinstance(event, str):
                print(event)
            else:
                print(json.dumps(summary("alertmanager scrape=1s eval=1s for=0s", event)))
        finally:
            app.stop()
        print(f"engine cost: {args.pods} pods every 5s for {args.cost_seconds:g}s ...", flush=True)
        print(json.dumps(engine_cost(page, args.pods, args.cost_seconds, workdir)))
        print(f"(machine: {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
