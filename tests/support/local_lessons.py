"""`promdemo local --lessons` as a subprocess for tests: its output, its stdin, its stop.

    with LessonsRun(tmp_path) as run:
        run.wait_for(r"lessons: Prometheus has the burst", timeout=120)
        run.send("heal")

The run gets free ports, plain output (`--no-ui`) in a file, and a pipe as stdin
(the learner's keyboard: `heal` + Enter turns healing on). Leaving the block
sends SIGTERM (promdemo local stops its children, which also carry a parent-death
signal), then SIGKILL if it has not exited within 30 s.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.ports import free_port
from tests.support.processes import wait_until

BURST_READY = r"lessons: Prometheus has the burst at"


class LessonsRun:
    def __init__(self, workdir: Path, *extra: str) -> None:
        self.workdir = workdir
        self.app_port, self.prometheus_port, self.alertmanager_port = (
            free_port(),
            free_port(),
            free_port(),
        )
        self.args = [
            "--lessons",
            "--no-ui",
            "--port",
            str(self.app_port),
            "--prometheus-port",
            str(self.prometheus_port),
            "--alertmanager-port",
            str(self.alertmanager_port),
            *extra,
        ]
        self.stdout_path = workdir / "lessons.out"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.app_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def __enter__(self) -> LessonsRun:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "promdemo_operator.cli.main", "local", *self.args],
            stdin=subprocess.PIPE,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        return self

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of `pattern` in the output; AssertionError with the output if none."""
        assert self.proc is not None
        found: list[re.Match[str]] = []

        def seen() -> bool:
            assert self.proc is not None
            match = re.search(pattern, self.stdout)
            if match:
                found.append(match)
                return True
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"promdemo local exited {self.proc.returncode} before {pattern!r}:\n"
                    f"{self.stdout}"
                )
            return False

        try:
            wait_until(seen, timeout=timeout, interval=0.2, what=pattern)
        except TimeoutError as e:
            raise AssertionError(f"{e}\n{self.stdout}") from e
        return found[0]

    def send(self, line: str) -> None:
        """A line typed into promdemo local."""
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        self.proc.stdin.flush()

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            if proc.stdin is not None:
                proc.stdin.close()
        self._out.close()
