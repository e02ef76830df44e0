"""What a `promdemo local` run was asked to do (`LocalConfig`) and its port plan.

The options are plain data, read from the command line by `cli/commands/local.py`;
`validate()` checks what a single option cannot (ports that collide), and
`busy_port()` finds a port something already listens on, before anything starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from promdemo_operator.cli.local.procs import port_in_use

#: Every process of the demo listens on loopback only.
HOST = "127.0.0.1"
MAX_REPLICAS = 50


class UsageError(Exception):
    """A bad combination of options or a busy port: one line, exit 2, nothing started."""


@dataclass(frozen=True)
class LocalConfig:
    """The options of one run; durations in seconds."""

    replicas: int = 2
    port: int = 8080  # the first replica's; the next ones use +1, +2...
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    with_load: bool = False
    load_orders: int = 300
    load_concurrency: int = 300
    load_pause_seconds: float = 15.0
    load_rounds: int = 0  # 0: until stopped
    duration_seconds: float | None = None  # None: until Ctrl-C or SIGTERM
    ui: bool = True
    interval_seconds: float = 5.0
    for_seconds: float = 0.0
    cooldown_seconds: float = 30.0
    threshold: float = 0.0
    heal: bool = True
    scrape_interval_seconds: float = 5.0
    prometheus: bool = True
    #: the Prometheus binary to run; None: the newest `prometheus` on PATH (monitoring.Tools)
    prometheus_bin: str | None = None
    workdir: Path | None = None  # None: a temporary directory, removed at exit
    #: docs/lessons.md's setup (lessons.SETUP): one replica, heal paused until the
    #: learner types `heal`, one burst after a quiet start, the lessons' links
    lessons: bool = False

    @property
    def app_ports(self) -> list[int]:
        return [self.port + i for i in range(self.replicas)]

    def validate(self) -> None:
        """Raise UsageError (one line) for options that cannot work together."""
        if not 1 <= self.replicas <= MAX_REPLICAS:
            raise UsageError(f"--replicas must be 1..{MAX_REPLICAS}, got {self.replicas}")
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
        if self.prometheus_bin is not None and not self.prometheus:
            raise UsageError("--prometheus-bin and --no-prometheus contradict each other")
        if self.prometheus and self.prometheus_port == self.alertmanager_port:
            raise UsageError("--prometheus-port and --alertmanager-port must differ")
        if self.lessons:
            # the page's numbers assume exactly this: refuse what would change them
            if self.replicas != 1:
                raise UsageError("--lessons runs one replica (the page's numbers assume it)")
            if self.with_load:
                raise UsageError("--lessons sends its own single burst: drop --with-load")
            if not self.prometheus:
                raise UsageError("--lessons needs Prometheus: drop --no-prometheus")


def planned_ports(
    config: LocalConfig, *, prometheus: bool, alertmanager: bool
) -> list[tuple[int, str, str]]:
    """(port, what listens there, the option that sets it) for every process to start."""
    plan = [(port, f"replica-{i}", "--port") for i, port in enumerate(config.app_ports, 1)]
    if prometheus:
        plan.append((config.prometheus_port, "Prometheus", "--prometheus-port"))
        if alertmanager:
            plan.append((config.alertmanager_port, "Alertmanager", "--alertmanager-port"))
    return plan


def busy_port(config: LocalConfig, *, prometheus: bool, alertmanager: bool) -> str | None:
    """One line naming the first planned port already in use, or None when all are free."""
    for port, what, flag in planned_ports(config, prometheus=prometheus, alertmanager=alertmanager):
        if port_in_use(port, HOST):
            return (
                f"port {port} on {HOST} (for {what}) is already in use; "
                f"stop what listens there or choose another {flag}"
            )
    return None
