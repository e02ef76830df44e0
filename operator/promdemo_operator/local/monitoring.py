"""Prometheus and Alertmanager for `promdemo local`, when they are installed.

Alertmanager posts every alert to a small webhook receiver inside `promdemo
local` (`AlertReceiver`), which hands it to a callback that prints it.
Prometheus scrapes the replicas with the rules the operator would deploy
(`rules.rules_file` of a default spec) and sends alerts to that Alertmanager.
Their configurations come from `promconfig`, as in the tests.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiohttp import web

from ..duration import format_seconds
from ..lessons import prometheus_major
from ..promconfig import alertmanager_config, prometheus_config
from ..rules import rules_file
from ..spec import parse_spec
from .options import HOST
from .procs import Child, ProcessGroup, wait_ready

PROMETHEUS_BINARY = "prometheus"
ALERTMANAGER_BINARY = "prometheus-alertmanager"  # Debian's name for alertmanager
INSTALL_HINT = (
    "install it with `sudo apt-get install prometheus prometheus-alertmanager` "
    "(Debian/Ubuntu) or from https://prometheus.io/download/"
)
JOB = "promdemo"


@dataclass(frozen=True)
class Tools:
    """Paths of the installed binaries; None where one is not on PATH."""

    prometheus: str | None
    alertmanager: str | None

    @classmethod
    def find(cls) -> Tools:
        return cls(shutil.which(PROMETHEUS_BINARY), shutil.which(ALERTMANAGER_BINARY))

    @classmethod
    def none(cls) -> Tools:
        return cls(None, None)


class AlertReceiver:
    """A webhook receiver on a free loopback port: Alertmanager's notifications, one by one."""

    def __init__(self, on_alert: Callable[[dict[str, Any]], None]) -> None:
        self._on_alert = on_alert
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        """Listen; returns the URL to give Alertmanager."""
        app = web.Application()
        app.router.add_post("/alerts", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://{HOST}:{port}/alerts"
        return self.url

    async def _receive(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except ValueError:
            return web.json_response({"error": "not JSON"}, status=400)
        for alert in payload.get("alerts", []) if isinstance(payload, dict) else []:
            self._on_alert(alert)
        return web.json_response({"status": "ok"})

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def start_alertmanager(
    binary: str,
    procs: ProcessGroup,
    *,
    port: int,
    webhook_url: str,
    stopping: asyncio.Event,
) -> Child:
    """Alertmanager on HOST:port posting to `webhook_url`, ready (StartError otherwise)."""
    workdir = procs.workdir
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(alertmanager_config(webhook_url), sort_keys=False))
    child = procs.start(
        "alertmanager",
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={workdir / 'alertmanager-data'}",
            f"--web.listen-address={HOST}:{port}",
            "--cluster.listen-address=",  # no gossip port on 0.0.0.0:9094
            "--log.level=warn",
        ],
    )
    await wait_ready(
        child,
        f"http://{HOST}:{port}/-/ready",
        what="Alertmanager",
        stopping=stopping,
    )
    return child


def write_rules(workdir: Path) -> Path:
    """The rules the operator deploys for a PromDemo with a default spec, as a rules file."""
    path = workdir / "rules.yml"
    rules = rules_file(parse_spec({}).monitoring.alerts, selector={"job": JOB}, alert_labels={})
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


async def start_prometheus(
    binary: str,
    procs: ProcessGroup,
    *,
    port: int,
    targets: Sequence[str],
    alertmanager: str | None,
    scrape_interval_seconds: float,
    stopping: asyncio.Event,
) -> Child:
    """Prometheus on HOST:port scraping `targets` with the rules, ready (StartError otherwise).

    The evaluation interval is the scrape interval, so an alert's state changes at
    the pace the replicas' values do.
    """
    workdir = procs.workdir
    interval = format_seconds(scrape_interval_seconds)
    config = prometheus_config(
        list(targets),
        rule_files=[str(write_rules(workdir))],
        alertmanager=alertmanager,
        scrape_interval=interval,
        evaluation_interval=interval,
        job=JOB,
    )
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    child = procs.start(
        "prometheus",
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'prometheus-data'}",
            f"--web.listen-address={HOST}:{port}",
            "--log.level=warn",
        ],
    )
    await wait_ready(
        child,
        f"http://{HOST}:{port}/-/ready",
        what="Prometheus",
        stopping=stopping,
    )
    return child


async def prometheus_major_version(url: str) -> int:
    """2 or 3, from the running Prometheus's /api/v1/status/buildinfo (2 when it cannot tell).

    The UI's query page moved from /graph to /query in Prometheus 3.
    """
    try:
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            body = (await client.get(f"{url}/api/v1/status/buildinfo")).json()
        return prometheus_major(str(body["data"]["version"]))
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return 2
