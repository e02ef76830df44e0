"""Real Prometheus and Alertmanager processes for tests, on free loopback ports.

    with run_prometheus(tmp_path, ["127.0.0.1:8081"], rule_files=[rules]) as prom:
        prom.wait_for_up(1)
        prom.query_value('sum(rate(http_requests_total[1m]))')

Both are always stopped (ManagedProcess) when the block ends, also on failure.
The configurations come from `promdemo_operator.prometheus.config`, the same generator
`promdemo local` uses. Pytest fixtures `start_prometheus` / `start_alertmanager`
wrap the context managers: import them into a test module or conftest.

Facts that shaped this, found by running them: `/-/ready` answers in
~0.1 s, but the first scrape is queryable only ~5 s later, so `run_prometheus`
waits for `up == 1` on every target by default; `--cluster.listen-address=`
(empty) keeps Alertmanager off 0.0.0.0:9094.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from promdemo_operator.prometheus.config import alertmanager_config, prometheus_config
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess, wait_http_ok, wait_until
from tests.support.prometheus_versions import prometheus as prometheus_binary
from tests.support.tools import require_binary


class PromQLError(RuntimeError):
    """Prometheus refused a query (bad expression, ...): the API's error text."""


@dataclass
class Prometheus:
    """A running Prometheus: its base URL and a few API helpers."""

    url: str
    process: ManagedProcess
    config_path: Path
    #: every expression passed to query*/series*, in order (for "was it executed" checks)
    executed: list[str] = field(default_factory=list)

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10.0)
        body = response.json()
        if body.get("status") != "success":
            raise PromQLError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """The instant vector (or scalar, as one sample without labels) of `promql`."""
        self.executed.append(promql)
        params: dict[str, Any] = {"query": promql}
        if at is not None:
            params["time"] = at
        data = self._get("/api/v1/query", params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        if data["resultType"] == "matrix":
            return data["result"]
        return data["result"]

    def query_values(self, promql: str) -> dict[tuple[tuple[str, str], ...], float]:
        """{sorted label pairs: value} of an instant-vector query."""
        return {
            tuple(sorted(s["metric"].items())): float(s["value"][1]) for s in self.query(promql)
        }

    def query_value(self, promql: str) -> float | None:
        """The single value of `promql`, None when empty; fails when it has several series."""
        result = self.query(promql)
        if not result:
            return None
        if len(result) > 1:
            raise AssertionError(f"{promql} returned {len(result)} series, expected one")
        return float(result[0]["value"][1])

    def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        self.executed.append(promql)
        params = {"query": promql, "start": start, "end": end, "step": step}
        return self._get("/api/v1/query_range", params)["result"]

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule, each with its group name added as `group`."""
        rules = []
        for group in self._get("/api/v1/rules")["groups"]:
            for rule in group["rules"]:
                rules.append({**rule, "group": group["name"]})
        return rules

    def alerts(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/alerts")["alerts"]

    def targets(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/targets")["activeTargets"]

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[float | None], bool],
        *,
        timeout: float = 30.0,
        what: str | None = None,
    ) -> float | None:
        """Poll `promql` (single value) until `predicate(value)`; return that value."""
        seen: list[float | None] = []

        def check() -> bool:
            value = self.query_value(promql)
            seen.append(value)
            return predicate(value)

        try:
            wait_until(check, timeout=timeout, interval=0.25, what=what or promql)
        except TimeoutError as e:
            raise TimeoutError(f"{e}; last values {seen[-5:]}\n{self.process.log()[-2000:]}") from e
        return seen[-1]

    def wait_for_up(self, count: int, *, timeout: float = 30.0) -> None:
        """Wait until `count` targets have been scraped successfully (`up == 1`)."""
        self.wait_for(
            "count(up == 1)",
            lambda v: v is not None and v >= count,
            timeout=timeout,
            what=f"{count} targets up",
        )

    def wait_for_scrapes(self, n: int = 2, *, interval: float = 1.0) -> None:
        """Let `n` more scrape (and evaluation) rounds pass."""
        time.sleep(n * interval + 0.2)


@contextmanager
def run_prometheus(
    workdir: Path,
    targets: Sequence[str],
    *,
    rule_files: Sequence[str | Path] = (),
    alertmanager: str | None = None,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    job: str = "promdemo",
    wait_up: bool = True,
    timeout: float = 30.0,
    major: int | None = None,
) -> Iterator[Prometheus]:
    """Start Prometheus scraping `targets`; wait for readiness and for `up == 1` on all.

    `major` 2 or 3 runs that version (tests/support/prometheus_versions.py); None
    the `prometheus` on PATH, whatever it is.
    """
    binary = require_binary("prometheus") if major is None else prometheus_binary(major)
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = prometheus_config(
        list(targets),
        rule_files=[str(p) for p in rule_files],
        alertmanager=alertmanager,
        scrape_interval=scrape_interval,
        evaluation_interval=evaluation_interval,
        job=job,
    )
    config_path = workdir / f"prometheus-{port}.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    storage = workdir / f"prometheus-data-{port}"
    proc = ManagedProcess(
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ],
        log_path=workdir / f"prometheus-{port}.log",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{url}/-/ready", proc=proc, timeout=timeout)
        prom = Prometheus(url=url, process=proc, config_path=config_path)
        if wait_up and targets:
            prom.wait_for_up(len(targets), timeout=timeout)
        yield prom
    finally:
        proc.stop()


@dataclass
class Alertmanager:
    url: str
    process: ManagedProcess

    def alerts(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.url}/api/v2/alerts", timeout=5.0).json()


@contextmanager
def run_alertmanager(
    workdir: Path,
    webhook_url: str,
    *,
    timeout: float = 20.0,
    **config: Any,
) -> Iterator[Alertmanager]:
    """Start Alertmanager posting every alert to `webhook_url` (see alertmanager_config)."""
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / f"alertmanager-{port}.yml"
    config_path.write_text(yaml.safe_dump(alertmanager_config(webhook_url, **config)))
    proc = ManagedProcess(
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={workdir / f'alertmanager-data-{port}'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        log_path=workdir / f"alertmanager-{port}.log",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{url}/-/ready", proc=proc, timeout=timeout)
        yield Alertmanager(url=url, process=proc)
    finally:
        proc.stop()


class WebhookSink:
    """An HTTP server on 127.0.0.1 that records every JSON POST (Alertmanager's webhook)."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with sink._lock:
                    sink.payloads.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alerts"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def alerts(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every alert of every payload received so far (optionally only `status`)."""
        with self._lock:
            alerts = [a for p in self.payloads for a in p.get("alerts", [])]
        return [a for a in alerts if status is None or a.get("status") == status]

    def __enter__(self) -> WebhookSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    """`start_prometheus(targets, rule_files=..., major=3)` -> Prometheus; stopped at teardown."""
    with _Stack() as stack:

        def _start(targets: Sequence[str], **kwargs: Any) -> Prometheus:
            workdir = tmp_path / f"prom-{len(stack.items)}"
            return stack.enter(run_prometheus(workdir, targets, **kwargs))

        yield _start


@pytest.fixture
def start_alertmanager(tmp_path: Path) -> Iterator[Callable[..., Alertmanager]]:
    """`start_alertmanager(webhook_url, **config)` -> Alertmanager; stopped at teardown."""
    with _Stack() as stack:

        def _start(webhook_url: str, **kwargs: Any) -> Alertmanager:
            workdir = tmp_path / f"am-{len(stack.items)}"
            return stack.enter(run_alertmanager(workdir, webhook_url, **kwargs))

        yield _start


class _Stack:
    """A contextlib.ExitStack that also counts what it entered."""

    def __init__(self) -> None:
        from contextlib import ExitStack

        self._stack = ExitStack()
        self.items: list[Any] = []

    def enter(self, cm: Any) -> Any:
        value = self._stack.enter_context(cm)
        self.items.append(value)
        return value

    def __enter__(self) -> _Stack:
        self._stack.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.__exit__(*exc)
