"""`promdemo operator`: run the kopf operator.

    promdemo operator [--namespace NS ... | --all-namespaces]
                      [--metrics-port 8080] [--health-port 8081] [--webhook-port 8082]
                      [--bind 0.0.0.0] [--standalone | --no-standalone]
                      [--resync-seconds 10800] [--workers 16]
                      [--prometheus-interval 30s] [--prometheus-url URL]
                      [--kube-api-qps 20] [--kube-api-burst 30]
                      [--leader-elect [--leader-elect-lease-duration 15s]
                       [--leader-elect-renew-deadline 10s] [--leader-elect-retry-period 2s]
                       [--leader-elect-lease-name promdemo-operator]
                       [--leader-elect-namespace NS] [--leader-elect-identity ID]]
                      [--verbose | --debug]

- `/metrics` on --metrics-port: the operator's own metrics (prometheus_client's
  registry, served from a thread of its own);
- `/healthz` on --health-port, from kopf's event loop (`runtime/handlers/health.py`);
- every port closes a connection idle for 15 s and keeps at most 512 open, the
  oldest closed first (`runtime/bounded_http.py`);
- --webhook-port is where the Alertmanager webhook receiver listens;
- the handlers find the options, the API client and what they share in kopf's
  memo (`memo.options`, `memo.kube`, `memo.context`: `runtime/handlers/context.py`);
  nothing is passed through environment variables;
- standalone by default: one replica, no kopf peering objects (and no RBAC for them);
- every Prometheus that selects a PromDemo is asked for its targets, rules and lesson
  numbers once per --prometheus-interval (through the API server's service proxy, or
  the one at --prometheus-url): `runtime/handlers/prometheus.py`.
- every request to the API server through the operator's client (children created
  and patched, status writes, Events, reads) takes a token of one bucket first:
  --kube-api-qps per second, --kube-api-burst at once (`runtime/ratelimit.py`, client-go's
  rule, kube-controller-manager's defaults); kopf's own watch streams and the
  --leader-elect Lease are not limited.
- --leader-elect: several replicas, one acting. The process takes the Lease
  `--leader-elect-lease-name` in `--leader-elect-namespace` (default: $POD_NAMESPACE)
  BEFORE kopf starts; a standby runs no handler and no watch, only /metrics
  (`promdemo_operator_leader` 0), /healthz, and on --webhook-port a 503 naming the
  leader (Alertmanager retries it; leader/standby_webhook.py). The leader renews every retry
  period; when it has not renewed within the renew deadline it exits at once with
  status 1 (the Deployment starts it again, as a standby), and a reset is never
  sent once the Lease is not fresh (`runtime/handlers/pod_clients.py`). A clean stop (SIGTERM)
  releases the Lease after kopf stopped, so the standby takes over at its next
  retry. `leader/` holds the election (client-go's semantics).

SIGTERM or SIGINT stops it, with exit status 0, within `SHUTDOWN_GRACE_SECONDS`
whether or not the API server still answers: kopf runs in a thread of its own
and gets a stop flag; it stops its watches, daemons and timers and runs the
cleanup handlers, then the metrics server is shut down. kopf waits for a sync
handler (a reconcile) until its thread returns, and an API call to a server that
accepted the connection but never answers only returns after the client's
timeouts and retries (minutes): when kopf or the handlers' threads are not done
by the deadline, the process exits anyway, abandoning those calls (every
reconcile is idempotent and is redone on the next start). A second signal exits
at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from promdemo_operator.core import cliargs
from promdemo_operator.core.cliargs import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from promdemo_operator.runtime.options import (
    OperatorOptions,
    add_arguments,
    options_from_args,
)

#: `promdemo operator` (cli/main.py) finds its options and entry point here.
__all__ = ["add_arguments", "main", "run"]

#: After SIGTERM/SIGINT, how long kopf (and the handlers' threads) get to stop before
#: the process exits anyway; well under kubelet's default 30 s grace period.
SHUTDOWN_GRACE_SECONDS = 8.0


def _can_listen(host: str, port: int) -> bool:
    """Could a server listen on host:port now (nothing else does)?"""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4])
    except OSError:
        return False
    return True


class _Shutdown:
    """SIGTERM/SIGINT → kopf's stop flag (an asyncio.Event on kopf's loop) and a deadline.

    The signal handler runs in the main thread and only records and forwards;
    kopf's thread attaches its loop and flag when it starts (either may come first).
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.requested_at: float | None = None
        self.signal_name = ""
        self.signals = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flag: asyncio.Event | None = None
        #: Set by the first signal: what a standby waiting for the Lease waits on.
        self.event = threading.Event()

    def attach(self, loop: asyncio.AbstractEventLoop, flag: asyncio.Event) -> None:
        """Called on kopf's loop: from now on a signal sets `flag`."""
        self._loop, self._flag = loop, flag
        if self.requested_at is not None:
            flag.set()

    def request(self, signum: int, frame: Any = None) -> None:
        """The signal handler."""
        self.signals += 1
        if self.requested_at is None:
            self.requested_at = time.monotonic()
            self.signal_name = signal.Signals(signum).name
        self.event.set()
        loop, flag = self._loop, self._flag
        if loop is not None and flag is not None:
            with contextlib.suppress(RuntimeError):  # kopf's loop is already closed
                loop.call_soon_threadsafe(flag.set)

    @property
    def deadline(self) -> float | None:
        if self.requested_at is None:
            return None
        if self.signals > 1:  # a second Ctrl-C: do not wait any longer
            return self.requested_at
        return self.requested_at + self.grace


class _NoSignalWarning(logging.Filter):
    """kopf warns that it ignores OS signals in a thread: run() handles them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "OS signals are ignored" not in record.getMessage()


def _run_kopf(shutdown: _Shutdown, outcome: dict[str, BaseException], **kwargs: Any) -> None:
    """kopf's thread: the operator on a loop of its own, stopped by `shutdown`'s flag."""
    import kopf

    async def operate() -> None:
        stop = asyncio.Event()
        shutdown.attach(asyncio.get_running_loop(), stop)
        await kopf.operator(stop_flag=stop, **kwargs)

    try:
        asyncio.run(operate())
    except asyncio.CancelledError:
        pass
    except BaseException as e:  # re-raised by run() in the main thread
        outcome["error"] = e
    finally:
        # Idle workers exit now; one still in a handler exits when its call returns.
        kwargs["settings"].execution.executor.shutdown(wait=False, cancel_futures=True)


class _Supervisor:
    """Runs kopf's thread until it returns, or a signal's deadline passes.

    The main thread only waits here, so signals reach it.

    Why not kopf's own `settings.process.ultimate_exiting_timeout`: kopf arms it only
    when it stops on an OS signal it caught itself (never for a stop flag), and what it
    does at the deadline is SIGKILL its thread, that is the process: exit status 137,
    no Lease released (`--leader-elect`), no last log line. Here the deadline ends
    with exit 0 and the Lease handed over; kopf's own timeouts still bound each
    daemon (`cancellation_timeout`) and each API call (`settings.networking`).
    """

    def __init__(self, shutdown: _Shutdown, log: logging.Logger) -> None:
        self.shutdown = shutdown
        self.log = log
        self._before: set[threading.Thread] = set()
        self._announced = False

    def stragglers(self) -> list[threading.Thread]:
        """Threads started since kopf was (its executors' workers, abandoned API calls).

        Still running, they would keep the interpreter from exiting: it joins every
        executor's workers at exit, daemon or not.
        """
        return [t for t in threading.enumerate() if t not in self._before and t.is_alive()]

    def _announce(self) -> None:
        if self.shutdown.requested_at is not None and not self._announced:
            self._announced = True
            self.log.info(
                "%s received: stopping (at most %.0fs)",
                self.shutdown.signal_name,
                self.shutdown.grace,
            )

    def _past(self, deadline: float | None) -> bool:
        self._announce()
        return deadline is not None and time.monotonic() >= deadline

    def run(self, target: Callable[[], None]) -> bool:
        """True when kopf and every thread it started stopped; False when the deadline passed."""
        self._before = set(threading.enumerate())
        thread = threading.Thread(target=target, name="kopf", daemon=True)
        thread.start()
        while thread.is_alive():
            if self._past(self.shutdown.deadline):
                return False
            thread.join(0.1)
        # kopf has returned. A handler's thread kopf gave up on may still be in an API call.
        fallback = time.monotonic() + self.shutdown.grace
        while self.stragglers():
            if self._past(self.shutdown.deadline or fallback):
                return False
            time.sleep(0.1)
        self._announce()
        return True


def run(args: argparse.Namespace) -> int:
    """Run the operator until SIGTERM/SIGINT; 0 on a clean stop."""
    try:
        options = options_from_args(args)
    except ValueError as e:
        return cliargs.usage_error("promdemo operator", str(e))

    import kopf

    from promdemo_operator.runtime.bounded_http import ThreadedServer
    from promdemo_operator.runtime.handlers.context import OperatorContext, SharedMemo
    from promdemo_operator.runtime.handlers.watches import GenerationEssence
    from promdemo_operator.runtime.metrics import metrics, metrics_app

    kopf.configure(debug=args.debug, verbose=args.verbose, log_format=kopf.LogFormat.PLAIN)
    if not (args.debug or args.verbose):
        # kopf says "Handler ... succeeded" for every watch event of every child: the
        # operator logs what it changes itself (warnings and errors still come through).
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        # httpx logs every request to Prometheus (three per Prometheus per interval).
        logging.getLogger("httpx").setLevel(logging.WARNING)
    log = logging.getLogger("promdemo.operator")

    try:
        context = OperatorContext.create(options)
    except Exception as e:  # no kubeconfig, no service account
        print(f"promdemo operator: no Kubernetes credentials: {e}", file=sys.stderr)
        return EXIT_FAILED

    import promdemo_operator.runtime.handlers  # noqa: F401 - registers the kopf handlers
    from promdemo_operator.runtime.handlers.webhook import raise_open_files_limit

    # Before any port listens (a standby serves /metrics and /healthz too): each of the
    # ports' up to 512 connections is a descriptor.
    raise_open_files_limit()
    metrics()  # every series exists from start-up
    metrics_server = None
    if options.metrics_port:
        try:
            metrics_server = ThreadedServer(
                metrics_app, options.bind, options.metrics_port, name="metrics"
            )
        except OSError as e:
            print(
                f"promdemo operator: cannot listen on {options.bind}:{options.metrics_port}: {e}",
                file=sys.stderr,
            )
            return EXIT_USAGE  # a busy port is the same as a bad option: nothing started
        log.info("metrics on http://%s:%d/metrics", options.bind, options.metrics_port)

    election = None
    if options.leader_election is not None:
        election = _Election(options, context, log)
    else:
        metrics().leader.set(1)  # no election: this process is the one acting
        if options.health_port and not _can_listen(options.bind, options.health_port):
            # /healthz is served by a start-up handler inside kopf (handlers/health.py):
            # say a taken port here, in one line, rather than in kopf's traceback.
            if metrics_server is not None:
                metrics_server.close()
            where = f"{options.bind}:{options.health_port}"
            print(f"promdemo operator: cannot listen on {where}: in use", file=sys.stderr)
            return EXIT_USAGE

    settings = kopf.OperatorSettings()
    # kopf's own "Handler succeeded" messages would become an Event per resync;
    # the reconcile posts its own Events for what it changed.
    settings.posting.level = logging.WARNING
    # One pool for every blocking API call (the handlers' `context.call`), kopf's included.
    settings.execution.executor = context.pool
    settings.execution.max_workers = options.workers
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
    settings.networking.request_timeout = 60
    # The essence kopf diffs at every event: the generation only (no handler of ours
    # detects changes; see GenerationEssence).
    settings.persistence.diffbase_storage = GenerationEssence()

    scope = ", ".join(options.namespaces) if options.namespaces else "all namespaces"
    log.info("serving PromDemos in %s; resync every %ss", scope, options.resync_seconds)

    def close_metrics() -> None:
        if metrics_server is not None:
            metrics_server.close()

    # kopf runs in a thread, stopped by a flag: a signal handler of its own (main thread)
    # could not bound its shutdown, which waits for every sync handler's thread.
    logging.getLogger("kopf._core.reactor.running").addFilter(_NoSignalWarning())
    shutdown = _Shutdown(SHUTDOWN_GRACE_SECONDS)
    outcome: dict[str, BaseException] = {}
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, shutdown.request) for sig in signals}

    if election is not None:
        busy: OSError | None = None
        try:
            leading = election.acquire(shutdown)
        except OSError as e:  # the standby's /healthz port is taken
            leading, busy = False, e
        if not leading:
            # Stopped while a standby: nothing ran, nothing to stop but the servers.
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            close_metrics()
            if busy is not None:
                where = f"{options.bind}:{options.health_port}"
                print(f"promdemo operator: cannot listen on {where}: {busy}", file=sys.stderr)
                return EXIT_USAGE  # as for the metrics port: nothing started
            log.info("stopped (standby)")
            return EXIT_OK

    def target() -> None:
        _run_kopf(
            shutdown,
            outcome,
            clusterwide=options.clusterwide,
            namespaces=list(options.namespaces),
            standalone=options.standalone,
            settings=settings,
            memo=SharedMemo(kube=context.kube, options=options, context=context),
        )

    # Everything imported so far (kopf, the Kubernetes client, the handlers) lives as long
    # as the process: out of the collector's sight, a full collection scans only what the
    # checks allocate (its stall on the event loop fell from ~40 to ~16 ms in bench_heal).
    gc.collect()
    gc.freeze()
    supervisor = _Supervisor(shutdown, log)
    try:
        stopped = supervisor.run(target)
        if "error" in outcome:
            close_metrics()
            raise outcome["error"]
        if not stopped:
            # Threads blocked in API calls cannot be interrupted, and the interpreter
            # would wait for them at exit: leave without them.
            busy = ", ".join(sorted(t.name for t in supervisor.stragglers()))
            log.warning(
                "not stopped %.0fs after %s (threads waiting for the API server? %s); "
                "exiting anyway",
                shutdown.grace,
                shutdown.signal_name or "the stop",
                busy,
            )
            if election is not None:
                election.stop()
            close_metrics()
            log.info("stopped")
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_OK)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if election is not None:
        election.stop()  # kopf has stopped: now the standby may take over at once
    close_metrics()
    log.info("stopped")
    return EXIT_OK


class _Election:
    """--leader-elect in this process: the Lease, the standby's /healthz, the fence.

    `acquire` blocks (a standby) until the Lease is taken or a signal arrives; from
    then on the runner renews it, and the loss of it ends the process at once with
    status 1: nothing this process started can act after its renew deadline.
    """

    def __init__(self, options: OperatorOptions, context: Any, log: logging.Logger) -> None:
        from promdemo_operator.runtime.handlers.pod_clients import PodHttpClients
        from promdemo_operator.runtime.handlers.reset_journal import ResetJournal
        from promdemo_operator.runtime.kube import Kube
        from promdemo_operator.runtime.leader.election import LeaderElector
        from promdemo_operator.runtime.leader.lease import KubeLeaseStore
        from promdemo_operator.runtime.leader.runner import ElectionRunner
        from promdemo_operator.runtime.metrics import metrics

        assert options.leader_election is not None
        self.settings = le = options.leader_election
        self.options = options
        self.log = log
        # Each Lease call is bounded well inside the renew deadline (the watchdog
        # does not wait for a call that hangs anyway).
        kube = Kube(context.kube.api, request_timeout=max(1.0, le.config.renew_deadline / 2))
        store = KubeLeaseStore(kube, le.namespace, le.lease_name)
        self.elector = LeaderElector(store, le.identity, le.config)
        gauge = metrics().leader
        gauge.set(0)
        self.runner = ElectionRunner(
            self.elector,
            on_lost=self._lost,
            on_change=lambda leading: gauge.set(1 if leading else 0),
        )
        # The heal loops' shared pod client, fenced: no reset once the Lease is stale, and
        # none before its cooldown is in the status (the next leader restores it).
        context.pod_http = PodHttpClients(
            context.kube,
            fence=self.elector.fresh,
            on_fenced=metrics().fenced_resets.inc,
            journal=ResetJournal(context),
        )

    def acquire(self, shutdown: _Shutdown) -> bool:
        from promdemo_operator.runtime.leader.standby import StandbyHealth

        le = self.settings
        self.log.info(
            "leader election: Lease %s/%s as %s (lease %gs, renew deadline %gs, retry %gs)",
            le.namespace, le.lease_name, le.identity,
            le.config.lease_duration, le.config.renew_deadline, le.config.retry_period,
        )  # fmt: skip
        health = None
        if self.options.health_port:
            health = StandbyHealth(self.options.bind, self.options.health_port)
        webhook = self._standby_webhook()
        try:
            if not self.runner.acquire(shutdown.event):
                return False
        finally:
            if health is not None:
                health.close()  # the leader's /healthz (runtime/handlers/health.py) takes the port
            if webhook is not None:
                webhook.close()  # and the leader's receiver the webhook port
        self.runner.start()
        return True

    def _standby_webhook(self) -> Any:
        """503 naming the leader on the webhook port while a standby (leader/standby_webhook.py),
        where the leader would serve the receiver: a port and a token. None otherwise."""
        from promdemo_operator.runtime.handlers.webhook import webhook_token
        from promdemo_operator.runtime.leader.standby_webhook import StandbyWebhook
        from promdemo_operator.runtime.metrics import metrics

        if not self.options.webhook_port or not webhook_token():
            return None
        try:
            return StandbyWebhook(
                self.options.bind,
                self.options.webhook_port,
                holder=lambda: self.elector.observed_holder,
                refused=metrics().standby_webhook_refused.inc,
            )
        except OSError as e:  # as the leader's receiver does: said, and the operator goes on
            self.log.error(
                "standby webhook answer cannot listen on %s:%d: %s",
                self.options.bind, self.options.webhook_port, e,
            )  # fmt: skip
            return None

    def _lost(self, reason: str) -> None:
        # Exit now, from the watchdog's thread: no handler, heal loop or webhook of this
        # process may act once another candidate can take the Lease.
        self.log.error("stopping at once (exit %d): %s", EXIT_FAILED, reason)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_FAILED)

    def stop(self) -> None:
        self.runner.stop(release=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m promdemo_operator.runtime.startup ...`: the same as `promdemo operator ...`."""
    parser = cliargs.CommandParser(prog="promdemo operator")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
