"""`promdemo local --no-ui ARGS` as a subprocess for tests, and the check that it left nothing.

`LocalRun` keeps stdout and stderr in files, records the processes it started
(from /proc), and is always killed at the end; `assert_all_gone` checks that no
child process and no listening port remains after a stop.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.ports import port_is_listening
from tests.support.processes import wait_until


def _alive(pid: int) -> bool:
    """Running (a zombie counts as gone: it holds no port and runs no code)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


class LocalRun:
    """`promdemo local ARGS` with stdout and stderr in files; always killed at the end."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.stdout_path = tmp / "local.out"
        self.stderr_path = tmp / "local.err"
        self._out = open(self.stdout_path, "wb")  # noqa: SIM115 - closed in close()
        self._err = open(self.stderr_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "promdemo_operator.cli.main", "local", "--no-ui", *args],
            stdout=self._out,
            stderr=self._err,
            env={**os.environ, **(env or {})},
        )
        self.children: set[int] = set()

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float, *, start: int = 0) -> re.Match[str]:
        """The first match of `pattern` in stdout from offset `start`, within `timeout` s."""
        found: list[re.Match[str]] = []

        def seen() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"promdemo local exited {self.proc.returncode} before {pattern!r}\n"
                    f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"
                )
            match = re.compile(pattern).search(self.stdout, start)
            if match:
                found.append(match)
            return bool(match)

        try:
            wait_until(seen, timeout=timeout, interval=0.2, what=pattern)
        except TimeoutError as e:
            raise AssertionError(f"{e}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}") from e
        return found[0]

    def record_children(self) -> set[int]:
        self.children |= _children(self.proc.pid)
        return self.children

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"promdemo local still running after {timeout}s\n{self.stdout}\n{self.stderr}"
            ) from None

    def close(self) -> None:
        self.record_children()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for pid in self.children:  # only what this test's `promdemo local` started
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self._out.close()
        self._err.close()


def assert_all_gone(run: LocalRun, ports: list[int]) -> None:
    """No child process, no listening port (children may take a moment to be reaped)."""
    assert run.children, "no child process was ever recorded"
    wait_until(
        lambda: not any(_alive(pid) for pid in run.children),
        timeout=30,
        what=f"children {sorted(run.children)} gone",
    )
    still = [p for p in ports if port_is_listening(p)]
    assert still == [], f"ports still listening: {still}"
