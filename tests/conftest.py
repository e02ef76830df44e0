"""Fixtures shared by every tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.processes import ManagedProcess, python_module, wait_http_ok

ROOT = Path(__file__).resolve().parent.parent


class AppProcess(ManagedProcess):
    """The order service; `probe_url` is its probe port's base URL (/healthz, /readyz)."""

    probe_url: str


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator:
    """Start real order-service processes on 127.0.0.1; all stopped at teardown.

    `start_app(env={...}, host="127.0.0.1")` returns (process, base_url); the
    process's `probe_url` is its probe port, as the operator's Deployment has one.
    """
    started: list[ManagedProcess] = []

    def _start(env: dict[str, str] | None = None, host: str = "127.0.0.1"):
        port = free_port(host)
        probe_port = free_port(host)
        argv = ["--host", host, "--port", str(port), "--probe-port", str(probe_port)]
        proc = AppProcess(
            python_module("promdemo_app", *argv),
            log_path=tmp_path / f"app-{port}.log",
            env=env,
        )
        proc.probe_url = f"http://{host}:{probe_port}"
        started.append(proc)
        url = f"http://{host}:{port}"
        wait_http_ok(f"{url}/healthz", proc=proc, timeout=30)
        wait_http_ok(f"{proc.probe_url}/healthz", proc=proc, timeout=30)
        return proc, url

    yield _start
    for proc in started:
        proc.stop()
