"""`promdemo operator`: run the kopf operator.

    promdemo operator [--namespace NS ... | --all-namespaces]
                      [--metrics-port 8080] [--health-port 8081] [--webhook-port 8082]
                      [--bind 0.0.0.0] [--standalone | --no-standalone]
                      [--resync-seconds 30] [--workers 16] [--verbose | --debug]

- `/metrics` (prometheus_client) on --metrics-port: the operator's own metrics;
- `/healthz` (kopf's liveness endpoint) on --health-port;
- --webhook-port is where the Alertmanager webhook receiver listens (the heal
  loop reads it from `memo.options`);
- standalone by default: one replica, no kopf peering objects (and no RBAC for them).

SIGTERM or SIGINT stops it cleanly: kopf finishes or cancels the running
handlers, then the metrics server is shut down; the exit status is 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 1


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

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535 (0 = off), got {value}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
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
        "--metrics-port", type=_port, default=8080, help="/metrics port (default 8080; 0 = off)"
    )
    parser.add_argument(
        "--health-port", type=_port, default=8081, help="/healthz port (default 8081; 0 = off)"
    )
    parser.add_argument(
        "--webhook-port",
        type=_port,
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
        type=_positive,
        default=float(os.environ.get("PROMDEMO_RESYNC_SECONDS", "30")),
        metavar="S",
        help="reconcile every PromDemo again this often, without an event (default 30)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=16,
        metavar="N",
        help="threads running reconciles at once (default 16)",
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log more")
    verbosity.add_argument("--debug", action="store_true", help="log everything, kopf included")


def options_from_args(args: argparse.Namespace) -> OperatorOptions:
    return OperatorOptions(
        namespaces=tuple(args.namespace or ()),
        bind=args.bind,
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        webhook_port=args.webhook_port,
        standalone=args.standalone,
        resync_seconds=args.resync_seconds,
        workers=max(1, args.workers),
    )


def _url_host(bind: str) -> str:
    return f"[{bind}]" if ":" in bind else bind


def run(args: argparse.Namespace) -> int:
    """Run the operator until SIGTERM/SIGINT; 0 on a clean stop."""
    options = options_from_args(args)
    # The resync timer's interval is fixed when the handlers module is imported.
    os.environ["PROMDEMO_RESYNC_SECONDS"] = str(options.resync_seconds)

    import kopf
    from prometheus_client import start_http_server

    from promdemo_operator.kube import Kube
    from promdemo_operator.opmetrics import metrics

    kopf.configure(debug=args.debug, verbose=args.verbose, log_format=kopf.LogFormat.PLAIN)
    log = logging.getLogger("promdemo.operator")

    try:
        kube = Kube.from_default_config(pool_size=options.workers)
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
            return EXIT_FAILED
        log.info("metrics on http://%s:%d/metrics", options.bind, options.metrics_port)

    settings = kopf.OperatorSettings()
    # kopf's own "Handler succeeded" messages would become an Event per resync;
    # the reconcile posts its own Events for what it changed.
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = options.workers
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
    settings.networking.request_timeout = 60

    liveness = None
    if options.health_port:
        liveness = f"http://{_url_host(options.bind)}:{options.health_port}/healthz"
    scope = ", ".join(options.namespaces) if options.namespaces else "all namespaces"
    log.info("serving PromDemos in %s; resync every %ss", scope, options.resync_seconds)
    try:
        kopf.run(
            clusterwide=options.clusterwide,
            namespaces=list(options.namespaces),
            standalone=options.standalone,
            liveness_endpoint=liveness,
            settings=settings,
            memo=kopf.Memo(kube=kube, options=options),
        )
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
    log.info("stopped")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """`python -m promdemo_operator.run ...`: the same as `promdemo operator ...`."""
    parser = argparse.ArgumentParser(prog="promdemo operator")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
