"""`promdemo local`: the whole demo on one machine, without Kubernetes.

What runs, all on 127.0.0.1 and all stopped together:

- `--replicas` order-service processes (`python -m promdemo_app`) on `--port`,
  `--port`+1, …: each is a "pod" with its own inventory and a reset token;
- the heal engine the operator uses (`heal.engine.HealEngine`), watching a
  static list of those replicas every `--interval`;
- when `prometheus` and `prometheus-alertmanager` are on PATH: Prometheus
  scraping every replica with the rules `rules.rules_file(...)` renders, and
  Alertmanager posting alerts to a small receiver here that prints them;
- with `--with-load`, rounds of `promdemo load` spread over the replicas (as a
  Service would), so the inventory goes negative and the heal brings it back.

Ctrl-C, SIGTERM or the end of `--duration` stop every child and free every
port; the exit code is then 0. A busy port stops start-up with one line and
exit code 2, before anything was started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from .local_procs import Child, port_in_use, stop_all
from .local_ui import LiveOutput, Output, PlainOutput, ReplicaState

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

HOST = "127.0.0.1"
PROMETHEUS_BINARY = "prometheus"
ALERTMANAGER_BINARY = "prometheus-alertmanager"
INSTALL_HINT = (
    "install it with `sudo apt-get install prometheus prometheus-alertmanager` "
    "(Debian/Ubuntu) or from https://prometheus.io/download/"
)
JOB = "promdemo"
START_TIMEOUT_SECONDS = 30.0
APP_SHUTDOWN_SECONDS = 5  # in-flight orders get this long after SIGTERM

#: The lessons' queries, numbered as in docs/lessons.md, shown as Prometheus UI links.
LESSONS: tuple[tuple[str, str], ...] = (
    ("1. rate of each histogram bucket", "rate(http_request_latency_seconds_bucket[5m])"),
    ("2. request rate", 'rate(http_request_latency_seconds_bucket{le="+Inf"}[5m])'),
    (
        "3. p95 latency",
        "histogram_quantile(0.95, sum by (le) (rate(http_request_latency_seconds_bucket[5m])))",
    ),
    (
        "4. median latency",
        "histogram_quantile(0.5, sum by (le) (rate(http_request_latency_seconds_bucket[5m])))",
    ),
    (
        "5. average latency",
        "rate(http_request_latency_seconds_sum[5m]) / rate(http_request_latency_seconds_count[5m])",
    ),
    (
        "6. order success ratio",
        'sum(rate(orders_total{result="success"}[5m])) / sum(rate(orders_total[5m]))',
    ),
    ("7. why orders failed", "sum by (reason) (increase(order_failures_total[5m]))"),
    ("8. peak concurrency", "max_over_time(http_requests_in_progress[1m])"),
    ("9. the oversell: replicas below zero", "product_inventory < 0"),
    ("10. successful orders in 30m", 'increase(orders_total{result="success"}[30m])'),
    ("inventory per replica", "product_inventory"),
    ("heals so far", "inventory_resets_total"),
)

log = logging.getLogger("promdemo.local")


class UsageError(Exception):
    """A bad combination of options or a busy port: one line, exit 2."""


def graph_link(prometheus_url: str, expr: str) -> str:
    """A Prometheus UI link that opens `expr` in the table tab."""
    return f"{prometheus_url}/graph?g0.expr={quote(expr, safe='')}&g0.tab=0"


def lesson_links(prometheus_url: str) -> list[tuple[str, str, str]]:
    """(title, query, link) for every lesson query."""
    return [(title, expr, graph_link(prometheus_url, expr)) for title, expr in LESSONS]


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class LocalConfig:
    replicas: int = 2
    port: int = 8080
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    with_load: bool = False
    load_orders: int = 300
    load_concurrency: int = 300
    load_pause: float = 15.0
    load_rounds: int = 0  # 0: until stopped
    duration: float | None = None
    ui: bool = True
    interval: float = 5.0
    for_seconds: float = 0.0
    cooldown: float = 30.0
    threshold: float = 0.0
    heal: bool = True
    scrape_interval: str = "5s"
    prometheus: bool = True
    workdir: Path | None = None

    @property
    def app_ports(self) -> list[int]:
        return [self.port + i for i in range(self.replicas)]

    def validate(self) -> None:
        if not 1 <= self.replicas <= 50:
            raise UsageError(f"--replicas must be 1..50, got {self.replicas}")
        if not self.port >= 1 or self.port + self.replicas - 1 > 65535:
            raise UsageError(f"--port {self.port} with {self.replicas} replicas exceeds 65535")
        ports = {
            "--prometheus-port": self.prometheus_port,
            "--alertmanager-port": self.alertmanager_port,
        }
        for flag, value in ports.items():
            if not 1 <= value <= 65535:
                raise UsageError(f"{flag} must be 1..65535, got {value}")
            if self.prometheus and value in self.app_ports:
                raise UsageError(
                    f"{flag} {value} collides with the replicas' ports "
                    f"{self.port}..{self.port + self.replicas - 1}"
                )
        if self.prometheus and self.prometheus_port == self.alertmanager_port:
            raise UsageError("--prometheus-port and --alertmanager-port must differ")


def _duration(text: str) -> float:
    """`5s`, `1m30s`, `500ms` or a plain number of seconds."""
    from .duration import parse_duration

    try:
        return float(text) if _is_number(text) else parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration like 5s, 1m30s or 500ms"
        ) from None


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _positive_duration(text: str) -> float:
    value = _duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return value


def _int_range(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}, got {value}")
        return value

    return parse


def _prom_duration(text: str) -> str:
    _positive_duration(text)
    if _is_number(text):
        raise argparse.ArgumentTypeError(f"use a unit, e.g. {text}s")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `promdemo local`."""
    parser.description = (
        "Run the whole demo on this machine: order-service replicas, the heal engine, "
        "and Prometheus + Alertmanager when installed. Ctrl-C stops everything."
    )
    port = _int_range(1, 65535)
    parser.add_argument(
        "--replicas", metavar="N", type=_int_range(1, 50), default=2, help="default 2"
    )
    parser.add_argument(
        "--port",
        metavar="PORT",
        type=port,
        default=8080,
        help="first replica's port; the next use +1… (8080)",
    )
    parser.add_argument(
        "--prometheus-port", metavar="PORT", type=port, default=9090, help="default 9090"
    )
    parser.add_argument(
        "--alertmanager-port", metavar="PORT", type=port, default=9093, help="default 9093"
    )
    parser.add_argument(
        "--with-load",
        action="store_true",
        help="send rounds of orders (like `promdemo load`) so the inventory goes negative",
    )
    parser.add_argument(
        "--load-orders",
        metavar="N",
        type=_int_range(1, 100000),
        default=300,
        help="orders per round (300)",
    )
    parser.add_argument(
        "--load-concurrency",
        metavar="N",
        type=_int_range(1, 2000),
        default=300,
        help="orders in flight per round, spread over the replicas (300)",
    )
    parser.add_argument(
        "--load-pause",
        metavar="DURATION",
        type=_duration,
        default=15.0,
        help="pause between rounds (15s)",
    )
    parser.add_argument(
        "--load-rounds",
        metavar="N",
        type=_int_range(0, 1000000),
        default=0,
        help="0: until stopped (0)",
    )
    parser.add_argument(
        "--duration",
        metavar="DURATION",
        type=_positive_duration,
        default=None,
        help="stop by itself after this long (seconds or e.g. 5m) and exit 0",
    )
    parser.add_argument(
        "--no-ui", action="store_true", help="plain log lines instead of the live panel"
    )
    parser.add_argument(
        "--interval",
        metavar="DURATION",
        type=_positive_duration,
        default=5.0,
        help="heal check interval (5s)",
    )
    parser.add_argument(
        "--for",
        dest="for_seconds",
        metavar="DURATION",
        type=_duration,
        default=0.0,
        help="reset only after the inventory stayed below the threshold this long (0s)",
    )
    parser.add_argument(
        "--cooldown",
        metavar="DURATION",
        type=_duration,
        default=30.0,
        help="never the same replica twice within (30s)",
    )
    parser.add_argument(
        "--threshold",
        metavar="N",
        type=float,
        default=0.0,
        help="reset when inventory < threshold (0)",
    )
    parser.add_argument("--no-heal", action="store_true", help="watch only; reset by hand")
    parser.add_argument(
        "--scrape-interval",
        metavar="DURATION",
        type=_prom_duration,
        default="5s",
        help="Prometheus scrape and evaluation interval (5s)",
    )
    parser.add_argument(
        "--no-prometheus", action="store_true", help="do not start Prometheus/Alertmanager"
    )
    parser.add_argument(
        "--workdir",
        metavar="DIR",
        type=Path,
        default=None,
        help="keep configs, logs and Prometheus data here (default: a temporary directory, "
        "removed at exit)",
    )


def config_from_args(args: argparse.Namespace) -> LocalConfig:
    return LocalConfig(
        replicas=args.replicas,
        port=args.port,
        prometheus_port=args.prometheus_port,
        alertmanager_port=args.alertmanager_port,
        with_load=args.with_load,
        load_orders=args.load_orders,
        load_concurrency=args.load_concurrency,
        load_pause=args.load_pause,
        load_rounds=args.load_rounds,
        duration=args.duration,
        ui=not args.no_ui,
        interval=args.interval,
        for_seconds=args.for_seconds,
        cooldown=args.cooldown,
        threshold=args.threshold,
        heal=not args.no_heal,
        scrape_interval=args.scrape_interval,
        prometheus=not args.no_prometheus,
        workdir=args.workdir,
    )


def split_evenly(total: int, parts: int) -> list[int]:
    """`total` split over `parts` as evenly as possible (the first get the remainder)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


# --------------------------------------------------------------------------- the demo


@dataclass
class Replica:
    name: str
    port: int
    child: Child
    state: ReplicaState = field(default_factory=ReplicaState)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def instance(self) -> str:
        return f"{HOST}:{self.port}"


class LocalDemo:
    """Starts, watches and stops everything; `children` is what `stop_all` stops."""

    def __init__(self, config: LocalConfig, output: Output, workdir: Path) -> None:
        self.config = config
        self.out = output
        self.workdir = workdir
        self.token = secrets.token_urlsafe(24)
        self.children: list[Child] = []
        self.replicas: list[Replica] = []
        self.prometheus: Child | None = None
        self.alertmanager: Child | None = None
        self.prometheus_url: str | None = None
        self.alertmanager_url: str | None = None
        self.heal_count = 0
        self.load_round = 0
        self.stop_reason = ""
        self._stop: asyncio.Event | None = None
        self._webhook_runner: Any = None

    # -- start ----------------------------------------------------------------

    def _app_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PROMDEMO_RESET_TOKEN_FILE", None)
        env["PROMDEMO_RESET_TOKEN"] = self.token
        env.setdefault("PROMDEMO_SHUTDOWN_TIMEOUT", str(APP_SHUTDOWN_SECONDS))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_replicas(self) -> None:
        env = self._app_env()
        for i, port in enumerate(self.config.app_ports, start=1):
            name = f"replica-{i}"
            argv = [sys.executable, "-m", "promdemo_app", "--host", HOST, "--port", str(port)]
            child = Child(name, argv, self.workdir / f"{name}.log", env=env)
            self.children.append(child)
            child.start()
            self.replicas.append(Replica(name, port, child))

    async def _wait_ready(self, child: Child, url: str, what: str) -> None:
        """Poll `url` until 200; raise RuntimeError (one line) when the child exits."""
        assert self._stop is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
            while True:
                if self._stop.is_set():
                    raise asyncio.CancelledError
                if not child.alive():
                    raise RuntimeError(
                        f"{what} exited during start-up (code {child.returncode}): "
                        f"{child.last_line()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{what} did not answer {url} within {START_TIMEOUT_SECONDS:g}s: "
                        f"{child.last_line()}"
                    )
                await asyncio.sleep(0.1)

    async def start_monitoring(self, prometheus: str, alertmanager: str | None) -> None:
        """Alertmanager (with its webhook receiver here), then Prometheus."""
        import yaml

        from .promconfig import alertmanager_config, prometheus_config
        from .rules import rules_file
        from .spec import parse_spec

        am_address = None
        if alertmanager:
            webhook_url = await self._start_webhook()
            am_path = self.workdir / "alertmanager.yml"
            am_path.write_text(yaml.safe_dump(alertmanager_config(webhook_url), sort_keys=False))
            am_port = self.config.alertmanager_port
            self.alertmanager = Child(
                "alertmanager",
                [
                    alertmanager,
                    f"--config.file={am_path}",
                    f"--storage.path={self.workdir / 'alertmanager-data'}",
                    f"--web.listen-address={HOST}:{am_port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                self.workdir / "alertmanager.log",
            )
            self.children.append(self.alertmanager)
            self.alertmanager.start()
            url = f"http://{HOST}:{am_port}"
            try:
                await self._wait_ready(self.alertmanager, f"{url}/-/ready", "Alertmanager")
                self.alertmanager_url = url
                am_address = f"{HOST}:{am_port}"
            except RuntimeError as e:
                self.out.warn(f"{e}; continuing without Alertmanager")
                stop_all([self.alertmanager], timeout=5, hurry_on_signal=False)

        rules_path = self.workdir / "rules.yml"
        rules = rules_file(parse_spec({}).monitoring.alerts, selector={"job": JOB}, alert_labels={})
        rules_path.write_text(yaml.safe_dump(rules, sort_keys=False))
        config = prometheus_config(
            [r.instance for r in self.replicas],
            rule_files=[str(rules_path)],
            alertmanager=am_address,
            scrape_interval=self.config.scrape_interval,
            evaluation_interval=self.config.scrape_interval,
            job=JOB,
        )
        prom_path = self.workdir / "prometheus.yml"
        prom_path.write_text(yaml.safe_dump(config, sort_keys=False))
        port = self.config.prometheus_port
        self.prometheus = Child(
            "prometheus",
            [
                prometheus,
                f"--config.file={prom_path}",
                f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
                f"--web.listen-address={HOST}:{port}",
                "--log.level=warn",
            ],
            self.workdir / "prometheus.log",
        )
        self.children.append(self.prometheus)
        self.prometheus.start()
        url = f"http://{HOST}:{port}"
        try:
            await self._wait_ready(self.prometheus, f"{url}/-/ready", "Prometheus")
            self.prometheus_url = url
        except RuntimeError as e:
            self.out.warn(f"{e}; continuing without Prometheus")
            stop_all([self.prometheus], timeout=5, hurry_on_signal=False)

    async def _start_webhook(self) -> str:
        """A receiver on a free loopback port that prints Alertmanager's notifications."""
        from aiohttp import web

        async def receive(request: web.Request) -> web.Response:
            try:
                payload = await request.json()
            except ValueError:
                return web.json_response({"error": "not JSON"}, status=400)
            for alert in payload.get("alerts", []) if isinstance(payload, dict) else []:
                self._on_alert(alert)
            return web.json_response({"status": "ok"})

        app = web.Application()
        app.router.add_post("/alerts", receive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0)
        await site.start()
        self._webhook_runner = runner
        port = runner.addresses[0][1]
        return f"http://{HOST}:{port}/alerts"

    def _on_alert(self, alert: dict[str, Any]) -> None:
        labels = alert.get("labels") or {}
        name = labels.get("alertname", "?")
        instance = labels.get("instance")
        who = next((r.name for r in self.replicas if r.instance == instance), instance or "all")
        status = alert.get("status", "?")
        summary = (alert.get("annotations") or {}).get("summary", "")
        self.out.event(f"alert {name} {status} ({who}) {summary}".rstrip())

    # -- run --------------------------------------------------------------------

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig, reason in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")):
            loop.add_signal_handler(sig, self.request_stop, reason)
        try:
            return await self._main()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if self._webhook_runner is not None:
                await self._webhook_runner.cleanup()

    def request_stop(self, reason: str) -> None:
        assert self._stop is not None
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    async def _main(self) -> int:
        assert self._stop is not None
        cfg = self.config
        prometheus = alertmanager = None
        if cfg.prometheus:
            prometheus = shutil.which(PROMETHEUS_BINARY)
            alertmanager = shutil.which(ALERTMANAGER_BINARY)
            if prometheus is None:
                self.out.warn(
                    f"prometheus is not installed, so the demo runs without it: {INSTALL_HINT}"
                )
            elif alertmanager is None:
                self.out.warn(
                    f"{ALERTMANAGER_BINARY} is not installed, so alerts are not delivered: "
                    f"{INSTALL_HINT}"
                )

        try:
            self.start_replicas()
            await asyncio.gather(
                *(self._wait_ready(r.child, f"{r.url}/healthz", r.name) for r in self.replicas)
            )
            if prometheus:
                await self.start_monitoring(prometheus, alertmanager)
        except asyncio.CancelledError:
            self.out.event(f"stopping ({self.stop_reason}) during start-up")
            return EXIT_OK
        except RuntimeError as e:
            self.out.error(str(e))
            return EXIT_FAILED

        self.out.banner(self._banner())
        tasks = [asyncio.create_task(self._monitor_loop(), name="monitor")]
        if cfg.heal:
            tasks.append(asyncio.create_task(self._heal_loop(), name="heal"))
        if cfg.with_load:
            tasks.append(asyncio.create_task(self._load_loop(), name="load"))
        if cfg.duration is not None:
            asyncio.get_running_loop().call_later(
                cfg.duration, self.request_stop, f"--duration {cfg.duration:g}s elapsed"
            )
        self.out.start(self)
        try:
            stop = asyncio.create_task(self._stop.wait())
            done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop and task.exception() is not None:
                    exc = task.exception()
                    self.out.error(f"{task.get_name()} stopped: {type(exc).__name__}: {exc}")
                    self.request_stop("an internal error")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.out.stop()
        self.out.event(f"stopping ({self.stop_reason}): every process, every port")
        return EXIT_OK

    def _banner(self) -> list[str]:
        cfg = self.config
        lines = [f"promdemo local: {cfg.replicas} replica(s) on {HOST}"]
        for r in self.replicas:
            lines.append(f"  {r.name:<13} {r.url}   (POST /order, GET /inventory, /metrics)")
        if self.prometheus_url:
            lines.append(
                f"  {'Prometheus':<13} {self.prometheus_url}   (scrapes every "
                f"{cfg.scrape_interval}; rules {self.workdir / 'rules.yml'})"
            )
        if self.alertmanager_url:
            lines.append(f"  {'Alertmanager':<13} {self.alertmanager_url}")
        if cfg.heal:
            lines.append(
                f"  {'heal':<13} every {cfg.interval:g}s: reset a replica whose inventory < "
                f"{cfg.threshold:g} for {cfg.for_seconds:g}s (cooldown {cfg.cooldown:g}s)"
            )
        else:
            lines.append(f"  {'heal':<13} off (--no-heal): reset by hand, see below")
        if self.prometheus_url:
            lines.append("The lessons' queries in Prometheus (explained in docs/lessons.md):")
            for title, _, link in lesson_links(self.prometheus_url):
                lines.append(f"  {title}: {link}")
        first = self.replicas[0].url
        lines.append(f"Load:  promdemo load {first}   (or: curl -X POST {first}/order)")
        lines.append(
            f"Reset by hand:  curl -X POST -H 'Authorization: Bearer {self.token}' "
            f"{first}/inventory/reset"
        )
        lines.append("promdemo local is ready; Ctrl-C stops everything.")
        return lines

    # -- loops ------------------------------------------------------------------

    async def _heal_loop(self) -> None:
        from .heal.engine import HealEngine, PodTarget
        from .heal.policy import HealPolicy, PolicyConfig

        cfg = self.config
        policy = HealPolicy(
            PolicyConfig(
                threshold=cfg.threshold,
                interval=cfg.interval,
                for_seconds=cfg.for_seconds,
                cooldown=cfg.cooldown,
            )
        )
        pods = [PodTarget(r.name, r.url) for r in self.replicas]
        by_name = {r.name: r for r in self.replicas}
        loop = asyncio.get_running_loop()
        async with HealEngine(policy, token=self.token, timeout=2.0, promdemo="local") as engine:
            while True:
                started = loop.time()
                result = await engine.check(pods)
                for reset in result.resets:
                    self.heal_count += 1
                    replica = by_name[reset.pod]
                    replica.state.heals += 1
                    replica.state.last_heal = time.time()
                    replica.state.saw(reset.before)
                    after = "?" if reset.after is None else f"{reset.after:g}"
                    msg = (
                        f"heal: reset {reset.pod} ({replica.instance}) inventory "
                        f"{reset.before:g} -> {after}"
                    )
                    if reset.latency is not None:
                        msg += (
                            f" ({reset.latency:.1f}s after it was first seen below "
                            f"{cfg.threshold:g})"
                        )
                    self.out.event(msg)
                for pod, value in result.decisions.items():
                    if value.value is not None:
                        by_name[pod].state.saw(value.value)
                for failure in result.failures:
                    by_name[failure.pod].state.problem = f"{failure.stage} {failure.reason}"
                await asyncio.sleep(max(0.0, cfg.interval - (loop.time() - started)))

    async def _monitor_loop(self) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        period = self.out.refresh_seconds(self.config.interval)
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:

            async def scrape(r: Replica) -> None:
                try:
                    text = (await client.get(f"{r.url}/metrics")).text
                    values: dict[str, float] = {}
                    for family in text_string_to_metric_families(text):
                        for s in family.samples:
                            if s.name == "orders_total":
                                key = f"orders_{s.labels.get('result')}"
                                values[key] = values.get(key, 0.0) + s.value
                            elif s.name in (
                                "product_inventory",
                                "inventory_resets_total",
                                "http_requests_total",
                            ):
                                values[s.name] = values.get(s.name, 0.0) + s.value
                    r.state.update(values, time.monotonic())
                except (httpx.HTTPError, ValueError) as e:
                    r.state.problem = f"unreachable ({type(e).__name__})"

            while True:
                await asyncio.gather(*(scrape(r) for r in self.replicas))
                self.out.status(self)
                await asyncio.sleep(period)

    async def _load_loop(self) -> None:
        from .load import LoadError, run_load

        cfg = self.config
        assert self._stop is not None
        orders = split_evenly(cfg.load_orders, len(self.replicas))
        concurrency = split_evenly(cfg.load_concurrency, len(self.replicas))
        await asyncio.sleep(min(2.0, cfg.interval))  # a first scrape before the burst
        while cfg.load_rounds == 0 or self.load_round < cfg.load_rounds:
            self.load_round += 1
            n = self.load_round
            self.out.event(
                f"load round {n}: {cfg.load_orders} orders, "
                f"{min(cfg.load_orders, cfg.load_concurrency)} at once, "
                f"over {len(self.replicas)} replica(s)"
            )
            jobs = [
                run_load(
                    r.url,
                    orders=o,
                    concurrency=max(1, min(c, o)),
                    check=False,
                    timeout=30.0,
                )
                for r, o, c in zip(self.replicas, orders, concurrency, strict=True)
                if o > 0
            ]
            results = await asyncio.gather(*jobs, return_exceptions=True)
            statuses: dict[int, int] = {}
            errors = 0
            elapsed = 0.0
            for res in results:
                if isinstance(res, LoadError | httpx.HTTPError):
                    errors += 1
                    continue
                if isinstance(res, BaseException):
                    raise res
                for code, count in res.statuses.items():
                    statuses[code] = statuses.get(code, 0) + count
                errors += res.failed_transport
                elapsed = max(elapsed, res.elapsed_seconds)
            codes = ", ".join(f"{code}: {count}" for code, count in sorted(statuses.items()))
            extra = f", {errors} without answer" if errors else ""
            self.out.event(
                f"load round {n} done in {elapsed:.1f}s: HTTP {codes or 'none'}{extra}"
                " (200 = sold, 409 = out of stock, 502 = dependency error)"
            )
            if cfg.load_rounds and self.load_round >= cfg.load_rounds:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=cfg.load_pause)
            if self._stop.is_set():
                break


# --------------------------------------------------------------------------- CLI


def _busy_ports(cfg: LocalConfig, with_prometheus: bool, with_alertmanager: bool) -> str | None:
    """One line naming the first busy port, or None when all are free."""
    wanted: list[tuple[int, str]] = [
        (port, f"replica-{i}") for i, port in enumerate(cfg.app_ports, start=1)
    ]
    if with_prometheus:
        wanted.append((cfg.prometheus_port, "Prometheus"))
        if with_alertmanager:
            wanted.append((cfg.alertmanager_port, "Alertmanager"))
    for port, what in wanted:
        if port_in_use(port, HOST):
            flag = {
                "Prometheus": "--prometheus-port",
                "Alertmanager": "--alertmanager-port",
            }.get(what, "--port")
            return (
                f"port {port} on {HOST} (for {what}) is already in use; "
                f"stop what listens there or choose another {flag}"
            )
    return None


def run(args: argparse.Namespace) -> int:
    """Run `promdemo local`; returns the exit code."""
    cfg = config_from_args(args)
    try:
        cfg.validate()
    except UsageError as e:
        print(f"promdemo local: {e}", file=sys.stderr)
        return EXIT_USAGE
    with_prometheus = cfg.prometheus and shutil.which(PROMETHEUS_BINARY) is not None
    with_alertmanager = shutil.which(ALERTMANAGER_BINARY) is not None
    busy = _busy_ports(cfg, with_prometheus, with_alertmanager)
    if busy:
        print(f"promdemo local: {busy}", file=sys.stderr)
        return EXIT_USAGE

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    use_ui = cfg.ui and sys.stdout.isatty()
    output: Output = LiveOutput() if use_ui else PlainOutput()

    keep = cfg.workdir is not None
    if cfg.workdir is not None:
        cfg.workdir.mkdir(parents=True, exist_ok=True)
        workdir = cfg.workdir
    else:
        workdir = Path(tempfile.mkdtemp(prefix="promdemo-local-"))
    demo = LocalDemo(cfg, output, workdir)
    code = EXIT_FAILED
    try:
        code = asyncio.run(demo.main())
    except KeyboardInterrupt:
        code = EXIT_OK
    finally:
        stop_all(demo.children)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if demo.children:
        output.event("stopped: every child process has exited")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m promdemo_operator.local ...` (the same as `promdemo local`)."""
    parser = argparse.ArgumentParser(prog="promdemo local")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
