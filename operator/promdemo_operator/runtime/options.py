"""`promdemo operator`'s options: the flags, their defaults and checks, and the frozen
`OperatorOptions` the handlers find as `memo.options`. A bad value is one line and exit 2
(`core/cliargs`'s rules, the same for every command)."""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass

from promdemo_operator.core import cliargs
from promdemo_operator.runtime import ratelimit
from promdemo_operator.runtime.leader.election import (
    DEFAULT_LEASE_DURATION,
    DEFAULT_RENEW_DEADLINE,
    DEFAULT_RETRY_PERIOD,
    ElectionConfig,
)

#: Where a pod finds its namespace when POD_NAMESPACE is not set.
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")

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
