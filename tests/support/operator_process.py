"""A running `promdemo operator` process and the addresses it answers on.

bench/realapi.py starts the real operator on the host against the real control plane
and hands one of these to bench/bench_operator.py, which reads its CPU and RSS from
/proc by `pid` and stops it at the end of a run.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.support.processes import ManagedProcess


@dataclass
class OperatorProcess:
    """A running `promdemo operator` and where it answers."""

    process: ManagedProcess
    metrics_url: str
    health_url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> int | None:
        """Stop the process (SIGTERM, then SIGKILL after 20 s); its exit code."""
        return self.process.stop(timeout=20)
