"""Prometheus and Alertmanager for `promdemo local`, when they are installed.

Which Prometheus: `--prometheus-bin PATH` when given; otherwise every
`prometheus` on PATH is asked for its version (`prometheus --version`) and the
newest major wins, so a Prometheus 3 anywhere on PATH is preferred to Debian's
2.x in /usr/bin (first on PATH among equals). To run a Prometheus 3 built by
hack/upstream/build.sh, put its bin directory on PATH or pass its path.

Alertmanager posts every alert to a small webhook receiver inside `promdemo
local` (`AlertReceiver`), which hands it to a callback that prints it.
Prometheus scrapes the replicas with the rules the operator would deploy
(`rules.rules_file` of a default spec) and sends alerts to that Alertmanager.
Their configurations come from `promconfig`, as in the tests.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiohttp import web

from promdemo_operator.cli.lessons import prometheus_major
from promdemo_operator.cli.local.options import HOST
from promdemo_operator.cli.local.procs import Child, ProcessGroup, wait_ready
from promdemo_operator.core.duration import format_seconds
from promdemo_operator.core.rules import rules_file
from promdemo_operator.core.spec import parse_spec
from promdemo_operator.prometheus.config import alertmanager_config, prometheus_config

PROMETHEUS_BINARY = "prometheus"
ALERTMANAGER_BINARY = "prometheus-alertmanager"  # Debian's name for alertmanager
INSTALL_HINT = (
    "install it with `sudo apt-get install prometheus prometheus-alertmanager` "
    "(Debian/Ubuntu) or from https://prometheus.io/download/"
)
JOB = "promdemo"


#: `prometheus --version` must answer within this long
VERSION_TIMEOUT_SECONDS = 10.0


class ToolError(Exception):
    """`--prometheus-bin` names no runnable Prometheus: one line, exit 2."""


@dataclass(frozen=True)
class Tools:
    """Paths of the installed binaries; None where one is not found.

    `prometheus_version` is what that Prometheus says it is (`3.16.0`,
    `2.42.0+ds`), empty when it did not say.
    """

    prometheus: str | None
    alertmanager: str | None
    prometheus_version: str = ""

    @classmethod
    def find(cls, prometheus_bin: str | None = None) -> Tools:
        """`prometheus_bin` when given (ToolError when it does not run), else the newest on PATH."""
        if prometheus_bin is not None:
            version = binary_version(prometheus_bin)
            if not version:
                raise ToolError(
                    f"--prometheus-bin {prometheus_bin}: not a Prometheus "
                    "(`--version` did not answer `prometheus, version X.Y.Z`)"
                )
            found: tuple[str, str] | None = (prometheus_bin, version)
        else:
            found = newest_on_path(PROMETHEUS_BINARY)
        path, version = found if found else (None, "")
        return cls(path, shutil.which(ALERTMANAGER_BINARY), version)

    @classmethod
    def none(cls) -> Tools:
        return cls(None, None)

    @property
    def prometheus_major(self) -> int:
        return prometheus_major(self.prometheus_version)


def binary_version(path: str) -> str:
    """`3.16.0` from `<path> --version` (`prometheus, version 3.16.0 (branch: ...)`); "" if none."""
    try:
        result = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    match = re.match(r"prometheus, version (\S+)", result.stdout or result.stderr)
    return match.group(1) if match else ""


def on_path(name: str, path: str | None = None) -> list[str]:
    """Every executable `name` in the PATH's directories, in order, each file once."""
    found: list[str] = []
    seen: set[str] = set()
    for directory in (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        real = os.path.realpath(candidate)
        if real not in seen and os.path.isfile(real) and os.access(real, os.X_OK):
            seen.add(real)
            found.append(candidate)
    return found


def newest_on_path(name: str, path: str | None = None) -> tuple[str, str] | None:
    """(path, version) of the `name` on PATH with the highest major version; first among equals."""
    best: tuple[str, str] | None = None
    for candidate in on_path(name, path):
        version = binary_version(candidate)
        if not version:
            continue
        if best is None or prometheus_major(version) > prometheus_major(best[1]):
            best = (candidate, version)
    return best


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


async def ui_answers(url: str, major: int) -> bool:
    """Whether the UI's query page answers; a Prometheus 3 built from the Go module
    without its web/ui assets answers 500 there (its HTTP API works)."""
    path = "/query" if major >= 3 else "/graph"
    try:
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            response = await client.get(f"{url}{path}", follow_redirects=True)
        return response.status_code < 500
    except httpx.HTTPError:
        return True  # unknown: say nothing


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
