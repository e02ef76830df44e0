"""Start and stop the real processes tests need, and never leak them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx


class ManagedProcess:
    """A child process with its output in a log file; `stop()` always reaps it.

    Use as a context manager, or call `stop()` from a fixture's teardown.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        full_env = dict(os.environ)
        full_env.update(env or {})
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        # A new session, so that stop() can signal the whole group.
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL the group after `timeout`; returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
) -> None:
    """Poll `predicate` until it is true; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as e:
            last_error = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


def wait_http_ok(url: str, *, timeout: float = 20.0, proc: ManagedProcess | None = None) -> None:
    """Wait for `url` to answer 200 (and fail early if `proc` died)."""

    def ok() -> bool:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"process exited with {proc.proc.returncode}:\n{proc.log()}")
        return httpx.get(url, timeout=1.0).status_code == 200

    deadline = time.monotonic() + timeout
    while True:
        try:
            if ok():
                return
        except RuntimeError:
            raise
        except Exception:  # noqa: S110 - not up yet
            pass
        if time.monotonic() > deadline:
            log = proc.log() if proc is not None else ""
            raise TimeoutError(f"{url} did not answer 200 within {timeout}s\n{log}")
        time.sleep(0.1)


def python_module(module: str, *args: str) -> list[str]:
    """argv running `python -m module args` with this interpreter."""
    return [sys.executable, "-m", module, *args]
