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

- `/metrics` (prometheus_client) on --metrics-port: the operator's own metrics;
- `/healthz` (kopf's liveness endpoint) on --health-port;
- --webhook-port is where the Alertmanager webhook receiver listens;
- the handlers find the options, the API client and what they share in kopf's
  memo (`memo.options`, `memo.kube`, `memo.context`: `handlers/context.py`);
  nothing is passed through environment variables;
- standalone by default: one replica, no kopf peering objects (and no RBAC for them);
- every Prometheus that selects a PromDemo is asked for its targets, rules and lesson
  numbers once per --prometheus-interval (through the API server's service proxy, or
  the one at --prometheus-url): `handlers/prometheus.py`.
- every request to the API server through the operator's client (children created
  and patched, status writes, Events, reads) takes a token of one bucket first:
  --kube-api-qps per second, --kube-api-burst at once (`ratelimit.py`, client-go's
  rule, kube-controller-manager's defaults); kopf's own watch streams and the
  --leader-elect Lease are not limited.
- --leader-elect: several replicas, one acting. The process takes the Lease
  `--leader-elect-lease-name` in `--leader-elect-namespace` (default: $POD_NAMESPACE)
  BEFORE kopf starts; a standby runs no handler and no watch, only /metrics
  (`promdemo_operator_leader` 0) and /healthz. The leader renews every retry
  period; when it has not renewed within the renew deadline it exits at once with
  status 1 (the Deployment starts it again, as a standby), and a reset is never
  sent once the Lease is not fresh (`handlers/pod_http.py`). A clean stop (SIGTERM)
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
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from promdemo_operator import cliargs, ratelimit
from promdemo_operator.cliargs import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from promdemo_operator.leader.election import (
    DEFAULT_LEASE_DURATION,
    DEFAULT_RENEW_DEADLINE,
    DEFAULT_RETRY_PERIOD,
    ElectionConfig,
)

#: The Lease's default name (one per operator installation and namespace).
DEFAULT_LEASE_NAME = "promdemo-operator"

#: Enough threads for hundreds of PromDemos; more only adds idle connections to the API.
MAX_WORKERS = 256

#: The safety-net resync: the watches repair drift at once, this catches what they missed.
DEFAULT_RESYNC_SECONDS = 3 * 3600.0

#: How often each selecting Prometheus is asked (stretched to its rules' evaluation interval).
DEFAULT_PROMETHEUS_INTERVAL_SECONDS = 30.0
#: Faster than this, Prometheus (1 s is its finest usual evaluation interval) has nothing new.
MIN_PROMETHEUS_INTERVAL_SECONDS = 1.0

#: After SIGTERM/SIGINT, how long kopf (and the handlers' threads) get to stop before
#: the process exits anyway; well under kubelet's default 30 s grace period.
SHUTDOWN_GRACE_SECONDS = 8.0


@dataclass(frozen=True)
class OperatorOptions:
    """What the command line decided; handlers find it as `memo.options`."""

    namespaces: tuple[str, ...]
    bind: str
    metrics_port: int
    health_port: int
    webhook_port: int
    standalone: bool
    resync_seconds: float
    workers: int
    prometheus_interval: float = DEFAULT_PROMETHEUS_INTERVAL_SECONDS
    prometheus_url: str | None = None
    leader_election: LeaderElectionOptions | None = None
    kube_api_qps: float = ratelimit.DEFAULT_QPS
    kube_api_burst: int = ratelimit.DEFAULT_BURST

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


@dataclass(frozen=True)
class LeaderElectionOptions:
    """--leader-elect and its settings (None in `OperatorOptions` when off)."""

    namespace: str
    lease_name: str
    identity: str
    config: ElectionConfig


#: Where a pod finds its namespace when POD_NAMESPACE is not set.
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _default_lease_namespace() -> str | None:
    namespace = os.environ.get("POD_NAMESPACE", "").strip()
    if namespace:
        return namespace
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _default_identity() -> str:
    """$POD_NAME (the downward API), else client-go's `hostname_uuid`."""
    name = os.environ.get("POD_NAME", "").strip()
    if name:
        return name
    import socket
    import uuid

    return f"{socket.gethostname()}_{uuid.uuid4()}"


def _dns_label(text: str) -> str:
    if not _DNS_NAME.fullmatch(text) or len(text) > 253:
        raise argparse.ArgumentTypeError(f"{text!r}: not a Kubernetes object name")
    return text


_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


def _prometheus_interval(text: str) -> float:
    seconds = cliargs.duration(text)
    if seconds < MIN_PROMETHEUS_INTERVAL_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1s")
    return seconds


def _kube_api_qps(text: str) -> float:
    value = cliargs.finite_float(text)
    if not 0 < value <= ratelimit.MAX_QPS:
        raise argparse.ArgumentTypeError(
            f"must be a number above 0 and at most {ratelimit.MAX_QPS:g}, got {text!r}"
        )
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `promdemo operator`."""
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="serve PromDemos in this namespace (repeatable; kopf globs such as 'demo-*' work)",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="serve PromDemos in every namespace (the default when no --namespace is given)",
    )
    parser.add_argument(
        "--bind",
        default="0.0.0.0",
        metavar="ADDR",
        help="address the metrics, health and webhook servers listen on (default: 0.0.0.0)",
    )
    parser.add_argument(
        "--metrics-port",
        type=cliargs.port_or_off,
        default=8080,
        help="/metrics port (default 8080; 0 = off)",
    )
    parser.add_argument(
        "--health-port",
        type=cliargs.port_or_off,
        default=8081,
        help="/healthz port (default 8081; 0 = off)",
    )
    parser.add_argument(
        "--webhook-port",
        type=cliargs.port_or_off,
        default=8082,
        help="Alertmanager webhook receiver port (default 8082; 0 = off)",
    )
    parser.add_argument(
        "--standalone",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run without kopf peering (default: on; one operator replica)",
    )
    parser.add_argument(
        "--resync-seconds",
        type=cliargs.positive_duration,
        default=DEFAULT_RESYNC_SECONDS,
        metavar="S",
        help="also reconcile every PromDemo this often, reading every child from the API: "
        "a safety net, the watches repair drift at once (seconds or a duration such as 3h; "
        "default 10800 = 3 h)",
    )
    parser.add_argument(
        "--workers",
        type=cliargs.int_range(1, MAX_WORKERS),
        default=16,
        metavar="N",
        help="threads for blocking API calls (reconciles, status writes) and the API "
        "client's connection pool (default 16)",
    )
    parser.add_argument(
        "--prometheus-interval",
        type=_prometheus_interval,
        default=DEFAULT_PROMETHEUS_INTERVAL_SECONDS,
        metavar="DURATION",
        help="ask each Prometheus that selects a PromDemo for its targets, rules and lesson "
        "numbers this often, one request of each per Prometheus whatever the number of "
        "PromDemos; never faster than their rules are evaluated (default 30s, at least 1s)",
    )
    parser.add_argument(
        "--prometheus-url",
        type=cliargs.http_url,
        metavar="URL",
        help="ask this Prometheus for every PromDemo instead of the Prometheus objects that "
        "select it (through the API server's service proxy); no Kubernetes credentials "
        "are sent to it",
    )
    parser.add_argument(
        "--kube-api-qps",
        type=_kube_api_qps,
        default=ratelimit.DEFAULT_QPS,
        metavar="QPS",
        help="requests per second the operator sends to the API server on average, writes "
        "(children, status, Events) and reads alike; the Lease of --leader-elect apart "
        f"(default {ratelimit.DEFAULT_QPS:g}, kube-controller-manager's)",
    )
    parser.add_argument(
        "--kube-api-burst",
        type=cliargs.int_range(1, ratelimit.MAX_BURST),
        default=ratelimit.DEFAULT_BURST,
        metavar="N",
        help="requests it may send at once above --kube-api-qps "
        f"(default {ratelimit.DEFAULT_BURST}, kube-controller-manager's)",
    )
    election = parser.add_argument_group("leader election (several replicas, one acting)")
    election.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="act only while holding a coordination.k8s.io/v1 Lease; a standby runs no "
        "handler and no watch until the Lease expires (default: off, one replica)",
    )
    election.add_argument(
        "--leader-elect-lease-duration",
        type=cliargs.positive_duration,
        default=DEFAULT_LEASE_DURATION,
        metavar="DURATION",
        help="how long a standby waits, after it last saw the Lease change, before taking "
        "it (default 15s)",
    )
    election.add_argument(
        "--leader-elect-renew-deadline",
        type=cliargs.positive_duration,
        default=DEFAULT_RENEW_DEADLINE,
        metavar="DURATION",
        help="the leader stops (exit 1) when it could not renew for this long; shorter "
        "than the lease duration (default 10s)",
    )
    election.add_argument(
        "--leader-elect-retry-period",
        type=cliargs.positive_duration,
        default=DEFAULT_RETRY_PERIOD,
        metavar="DURATION",
        help="how often the leader renews and a standby tries (default 2s)",
    )
    election.add_argument(
        "--leader-elect-lease-name",
        type=_dns_label,
        default=DEFAULT_LEASE_NAME,
        metavar="NAME",
        help=f"the Lease's name (default {DEFAULT_LEASE_NAME})",
    )
    election.add_argument(
        "--leader-elect-namespace",
        type=_dns_label,
        default=None,
        metavar="NS",
        help="the Lease's namespace (default: $POD_NAMESPACE, else the pod's service "
        "account namespace)",
    )
    election.add_argument(
        "--leader-elect-identity",
        default=None,
        metavar="ID",
        help="this candidate's name in the Lease (default: $POD_NAME, else hostname_uuid)",
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log more")
    verbosity.add_argument("--debug", action="store_true", help="log everything, kopf included")


def election_from_args(args: argparse.Namespace) -> LeaderElectionOptions | None:
    """The leader election's options (None without --leader-elect); ValueError: a bad one."""
    if not getattr(args, "leader_elect", False):
        return None
    config = ElectionConfig(
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
    )
    namespace = args.leader_elect_namespace or _default_lease_namespace()
    if not namespace:
        raise ValueError(
            "--leader-elect needs the Lease's namespace: --leader-elect-namespace or $POD_NAMESPACE"
        )
    identity = (args.leader_elect_identity or "").strip() or _default_identity()
    return LeaderElectionOptions(
        namespace=namespace, lease_name=args.leader_elect_lease_name, identity=identity,
        config=config,
    )  # fmt: skip


def options_from_args(args: argparse.Namespace) -> OperatorOptions:
    """The options; ValueError when --leader-elect's settings do not fit together."""
    return OperatorOptions(
        namespaces=tuple(args.namespace or ()),
        bind=args.bind,
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        webhook_port=args.webhook_port,
        standalone=args.standalone,
        resync_seconds=args.resync_seconds,
        workers=args.workers,
        prometheus_interval=args.prometheus_interval,
        prometheus_url=args.prometheus_url,
        leader_election=election_from_args(args),
        kube_api_qps=args.kube_api_qps,
        kube_api_burst=args.kube_api_burst,
    )


def default_options() -> OperatorOptions:
    """The options of `promdemo operator` without arguments."""
    parser = cliargs.CommandParser(prog="promdemo operator")
    add_arguments(parser)
    return options_from_args(parser.parse_args([]))


def _url_host(bind: str) -> str:
    return f"[{bind}]" if ":" in bind else bind


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
    from prometheus_client import start_http_server

    from promdemo_operator.handlers.context import OperatorContext, SharedMemo
    from promdemo_operator.handlers.watches import GenerationEssence
    from promdemo_operator.opmetrics import metrics

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

    import promdemo_operator.handlers  # noqa: F401 - registers the kopf handlers

    metrics()  # every series exists from start-up
    metrics_server = None
    if options.metrics_port:
        try:
            metrics_server, _ = start_http_server(options.metrics_port, addr=options.bind)
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

    liveness = None
    if options.health_port:
        liveness = f"http://{_url_host(options.bind)}:{options.health_port}/healthz"
    scope = ", ".join(options.namespaces) if options.namespaces else "all namespaces"
    log.info("serving PromDemos in %s; resync every %ss", scope, options.resync_seconds)

    def close_metrics() -> None:
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()

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
            liveness_endpoint=liveness,
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
        from promdemo_operator.handlers.pod_http import PodHttpClients
        from promdemo_operator.handlers.reset_journal import ResetJournal
        from promdemo_operator.kube import Kube
        from promdemo_operator.leader.election import LeaderElector
        from promdemo_operator.leader.lease import KubeLeaseStore
        from promdemo_operator.leader.runner import ElectionRunner
        from promdemo_operator.opmetrics import metrics

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
        from promdemo_operator.leader.standby import StandbyHealth

        le = self.settings
        self.log.info(
            "leader election: Lease %s/%s as %s (lease %gs, renew deadline %gs, retry %gs)",
            le.namespace, le.lease_name, le.identity,
            le.config.lease_duration, le.config.renew_deadline, le.config.retry_period,
        )  # fmt: skip
        health = None
        if self.options.health_port:
            health = StandbyHealth(self.options.bind, self.options.health_port)
        try:
            if not self.runner.acquire(shutdown.event):
                return False
        finally:
            if health is not None:
                health.close()  # kopf's liveness endpoint takes the port
        self.runner.start()
        return True

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
    """`python -m promdemo_operator.run ...`: the same as `promdemo operator ...`."""
    parser = cliargs.CommandParser(prog="promdemo operator")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
