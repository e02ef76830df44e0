"""The demo loop of `promdemo local`: start everything, run the loops, stop everything.

`LocalDemo.main()` starts the replicas (and Prometheus and Alertmanager where
installed), prints the banner, then runs the loops of `loops.py` until Ctrl-C,
SIGTERM, `--duration` or a loop's failure, and cancels them. `run_demo()` wraps
it with the work directory and stops every child process at the end, whatever
happened: no process and no port outlives it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from promdemo_operator.cli.local import lessons_mode, loops
from promdemo_operator.cli.local.banner import banner_lines
from promdemo_operator.cli.local.monitoring import (
    ALERTMANAGER_BINARY,
    INSTALL_HINT,
    AlertReceiver,
    Tools,
    prometheus_major_version,
    start_alertmanager,
    start_prometheus,
    ui_answers,
)
from promdemo_operator.cli.local.options import HOST, LocalConfig
from promdemo_operator.cli.local.procs import (
    ProcessGroup,
    StartError,
    StopRequested,
    stop_all,
    wait_ready,
)
from promdemo_operator.cli.local.session import DemoState, Replica
from promdemo_operator.cli.local.ui import Output
from promdemo_operator.core.duration import format_seconds

#: In-flight orders get this long after SIGTERM (the app's PROMDEMO_SHUTDOWN_TIMEOUT).
APP_SHUTDOWN_SECONDS = 5


class LocalDemo:
    """One run of the demo: its processes (`procs`), what it saw (`state`), its output."""

    def __init__(self, config: LocalConfig, output: Output, workdir: Path, tools: Tools) -> None:
        self.config = config
        self.out = output
        self.tools = tools
        self.token = secrets.token_urlsafe(24)  # lives only in the replicas' environment
        self.procs = ProcessGroup(workdir)
        self.state = DemoState(config)
        self.stopping = asyncio.Event()
        self.stop_reason = ""
        self._receiver: AlertReceiver | None = None

    @property
    def workdir(self) -> Path:
        return self.procs.workdir

    # -- start ----------------------------------------------------------------

    def _app_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PROMDEMO_RESET_TOKEN_FILE", None)  # the token below must win
        env["PROMDEMO_RESET_TOKEN"] = self.token
        env.setdefault("PROMDEMO_SHUTDOWN_TIMEOUT", str(APP_SHUTDOWN_SECONDS))
        env["PYTHONUNBUFFERED"] = "1"  # a crash's last line reaches the log at once
        return env

    async def start_replicas(self) -> None:
        """One `python -m promdemo_app` per replica, all answering /healthz."""
        env = self._app_env()
        for i, port in enumerate(self.config.app_ports, start=1):
            name = f"replica-{i}"
            # -P: the user's working directory stays off sys.path, so a file or folder
            # there named like a module the app imports cannot replace it.
            argv = [sys.executable, "-P", "-m", "promdemo_app", "--host", HOST, "--port", str(port)]
            child = self.procs.start(name, argv, env=env)
            self.state.replicas.append(Replica(name, port, child))
        await asyncio.gather(
            *(
                wait_ready(
                    r.child,
                    f"{r.url}/healthz",
                    what=r.name,
                    stopping=self.stopping,
                )
                for r in self.state.replicas
            )
        )

    async def start_monitoring(self) -> None:
        """Alertmanager (and its receiver here), then Prometheus; each optional.

        One that fails to start is stopped and reported in one line; the demo goes on.
        """
        prometheus, alertmanager = self.tools.prometheus, self.tools.alertmanager
        if prometheus is None:
            self.state.prometheus_off = (
                "not installed" if self.config.prometheus else "--no-prometheus"
            )
            return
        am_address = None
        if alertmanager:
            self._receiver = AlertReceiver(self._on_alert)
            port = self.config.alertmanager_port
            try:
                await start_alertmanager(
                    alertmanager,
                    self.procs,
                    port=port,
                    webhook_url=await self._receiver.start(),
                    stopping=self.stopping,
                )
                self.state.alertmanager_url = f"http://{HOST}:{port}"
                am_address = f"{HOST}:{port}"
            except StartError as e:
                self.out.warn(f"{e}; continuing without Alertmanager")
                stop_all([e.child], timeout=5, hurry_on_signal=False)
        port = self.config.prometheus_port
        try:
            self.state.prometheus_child = await start_prometheus(
                prometheus,
                self.procs,
                port=port,
                targets=[r.instance for r in self.state.replicas],
                alertmanager=am_address,
                scrape_interval_seconds=self.config.scrape_interval_seconds,
                stopping=self.stopping,
            )
            self.state.prometheus_url = f"http://{HOST}:{port}"
            self.state.prometheus_ready_at = time.monotonic()
            self.state.prometheus_major = await prometheus_major_version(self.state.prometheus_url)
            self.state.prometheus_version = self.tools.prometheus_version
            self.state.prometheus_binary = prometheus
            self.state.prometheus_ui = await ui_answers(
                self.state.prometheus_url, self.state.prometheus_major
            )
        except StartError as e:
            self.out.warn(f"{e}; continuing without Prometheus")
            stop_all([e.child], timeout=5, hurry_on_signal=False)
            self.state.prometheus_off = "it did not start, see above"

    def _on_alert(self, alert: dict[str, Any]) -> None:
        labels = alert.get("labels") or {}
        instance = labels.get("instance")
        replica = self.state.replica_at(instance)
        who = replica.name if replica else instance or "all"
        name, status = labels.get("alertname", "?"), alert.get("status", "?")
        summary = (alert.get("annotations") or {}).get("summary", "")
        self.out.event(f"alert {name} {status} ({who}) {summary}".rstrip())

    def _warn_missing_tools(self) -> None:
        if not self.config.prometheus:
            return
        if self.tools.prometheus is None:
            self.out.warn(
                f"prometheus is not installed, so the demo runs without it: {INSTALL_HINT}"
            )
        elif self.tools.alertmanager is None:
            self.out.warn(
                f"{ALERTMANAGER_BINARY} is not installed, so alerts are not delivered: "
                f"{INSTALL_HINT}"
            )

    # -- run --------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """Stop the demo (the first reason given is the one printed)."""
        if not self.stopping.is_set():
            self.stop_reason = reason
            self.stopping.set()

    def make_loops(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The loops to run once everything is up, by name (a failing one is named)."""
        running = {"monitor": loops.monitor_loop(self.state, self.out)}
        if self.state.prometheus_url is not None:
            running["prometheus"] = loops.prometheus_loop(
                self.state, self.out, workdir=self.workdir
            )
        heal_enabled: asyncio.Event | None = None
        if self.config.lessons:
            # the page's numbers need the oversold inventory: heal waits for the learner
            heal_enabled = asyncio.Event()
            self.state.heal_paused = self.config.heal
            running["lessons"] = lessons_mode.lessons_loop(
                self.state, self.out, stopping=self.stopping
            )
            running["commands"] = lessons_mode.command_loop(
                self.state, self.out, heal_enabled=heal_enabled
            )
        if self.config.heal:
            running["heal"] = loops.heal_loop(
                self.state, self.out, token=self.token, enabled=heal_enabled
            )
        if self.config.with_load:
            running["load"] = loops.load_loop(self.state, self.out, stopping=self.stopping)
        return running

    async def main(self) -> bool:
        """Run until stopped; False when a child failed to start or a loop failed."""
        loop = asyncio.get_running_loop()
        for sig, reason in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")):
            loop.add_signal_handler(sig, self.request_stop, reason)
        try:
            return await self._main()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if self._receiver is not None:
                await self._receiver.close()

    async def _main(self) -> bool:
        self._warn_missing_tools()
        try:
            await self.start_replicas()
            await self.start_monitoring()
        except StopRequested:
            self.out.event(f"stopping ({self.stop_reason}) during start-up")
            return True
        except StartError as e:
            self.out.error(str(e))
            return False

        self.out.banner(banner_lines(self.state, token=self.token, workdir=self.workdir))
        duration = self.config.duration_seconds
        if duration is not None:
            asyncio.get_running_loop().call_later(
                duration, self.request_stop, f"--duration {format_seconds(duration)} elapsed"
            )
        ok = await self._run_loops()
        self.out.event(f"stopping ({self.stop_reason}): every process, every port")
        return ok

    async def _run_loops(self) -> bool:
        """The loops until a stop is requested or one of them fails; then cancel them all.

        A loop that ends by itself (the load after `--load-rounds`) ends alone.
        """
        tasks = [asyncio.create_task(coro, name=name) for name, coro in self.make_loops().items()]
        stop = asyncio.create_task(self.stopping.wait())
        self.out.start(self.state)
        ok = True
        try:
            running = set(tasks)
            while not self.stopping.is_set():
                done, running = await asyncio.wait(
                    {stop, *running}, return_when=asyncio.FIRST_COMPLETED
                )
                running.discard(stop)
                for task in done - {stop}:
                    exc = task.exception()
                    if exc is not None:
                        self.out.error(f"{task.get_name()} stopped: {type(exc).__name__}: {exc}")
                        self.request_stop("an internal error")
                        ok = False
        finally:
            for task in [*tasks, stop]:
                task.cancel()
            await asyncio.gather(*tasks, stop, return_exceptions=True)
            self.out.stop()
        return ok


def run_demo(config: LocalConfig, output: Output, tools: Tools) -> bool:
    """Run the demo in `config.workdir` (or a temporary directory, removed at the end).

    Every child process is stopped before this returns, also on Ctrl-C or an error.
    Returns False when something failed (already reported through `output`).
    """
    keep = config.workdir is not None
    if config.workdir is not None:
        config.workdir.mkdir(parents=True, exist_ok=True)
        workdir = config.workdir
    else:
        workdir = Path(tempfile.mkdtemp(prefix="promdemo-local-"))
    demo = LocalDemo(config, output, workdir, tools)
    ok = False
    try:
        ok = asyncio.run(demo.main())
    except KeyboardInterrupt:  # a Ctrl-C outside the loop's handlers: still a normal stop
        ok = True
    finally:
        demo.procs.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if demo.procs.children:
        output.event("stopped: every child process has exited")
    return ok
