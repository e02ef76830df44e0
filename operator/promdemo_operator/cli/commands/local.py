"""`promdemo local`: the options of the demo on one machine, and its exit code.

The demo itself is the `promdemo_operator.cli.local` package; this module reads the
command line into a `LocalConfig`, refuses a bad combination or a busy port
(exit 2, one line, nothing started), picks the output (a live panel on a
terminal, plain lines otherwise) and runs it. Exit 0 after Ctrl-C, SIGTERM or
`--duration`; 1 when a child did not start or a loop of the demo failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from promdemo_operator.cli.lessons import SETUP
from promdemo_operator.cli.local.demo import run_demo
from promdemo_operator.cli.local.monitoring import INSTALL_HINT, ToolError, Tools
from promdemo_operator.cli.local.options import MAX_REPLICAS, LocalConfig, UsageError, busy_port
from promdemo_operator.cli.local.ui import LiveOutput, Output, PlainOutput
from promdemo_operator.core import cliargs

PROG = "promdemo local"
DESCRIPTION = (
    "Run the whole demo on this machine: order-service replicas, the heal engine, "
    "and Prometheus + Alertmanager when installed. Ctrl-C stops everything. "
    "Durations are seconds (15, 0.5) or with a unit (500ms, 15s, 5m, 1m30s)."
)
DEFAULTS = LocalConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `promdemo local` (defaults are LocalConfig's)."""
    d = DEFAULTS
    parser.description = DESCRIPTION
    add = parser.add_argument
    add(
        "--lessons",
        action="store_true",
        help="docs/lessons.md's setup: one replica scraped every "
        f"{SETUP.scrape_interval}, one burst of {SETUP.burst_orders} orders after "
        f"{SETUP.quiet_seconds:g}s, heal off until you type `heal`, the lessons' links",
    )
    add(
        "--replicas",
        metavar="N",
        type=cliargs.int_range(1, MAX_REPLICAS),
        default=None,  # LocalConfig's, or 1 with --lessons
        help=f"order-service processes ({d.replicas}; 1 with --lessons)",
    )
    add(
        "--port",
        metavar="PORT",
        type=cliargs.port,
        default=d.port,
        help=f"first replica's port; the next ones use +1, +2… ({d.port})",
    )
    add(
        "--prometheus-port",
        metavar="PORT",
        type=cliargs.port,
        default=d.prometheus_port,
        help=f"Prometheus's port ({d.prometheus_port})",
    )
    add(
        "--alertmanager-port",
        metavar="PORT",
        type=cliargs.port,
        default=d.alertmanager_port,
        help=f"Alertmanager's port ({d.alertmanager_port})",
    )
    add(
        "--with-load",
        action="store_true",
        help="send rounds of orders (like `promdemo load`) so the inventory goes negative",
    )
    add(
        "--load-orders",
        metavar="N",
        type=cliargs.int_range(1, 100_000),
        default=d.load_orders,
        help=f"orders per round ({d.load_orders})",
    )
    add(
        "--load-concurrency",
        metavar="N",
        type=cliargs.int_range(1, 2000),
        default=d.load_concurrency,
        help=f"orders in flight per round, spread over the replicas ({d.load_concurrency})",
    )
    add(
        "--load-pause",
        metavar="DURATION",
        type=cliargs.duration,
        default=d.load_pause_seconds,
        help=f"pause between rounds ({d.load_pause_seconds:g}s)",
    )
    add(
        "--load-rounds",
        metavar="N",
        type=cliargs.int_range(0, 1_000_000),
        default=d.load_rounds,
        help="rounds to send; 0: until stopped (0)",
    )
    add(
        "--duration",
        metavar="DURATION",
        type=cliargs.positive_duration,
        default=None,
        help="stop by itself after this long and exit 0 (default: run until Ctrl-C)",
    )
    add("--no-ui", action="store_true", help="plain log lines instead of the live panel")
    add(
        "--interval",
        metavar="DURATION",
        type=cliargs.positive_duration,
        default=d.interval_seconds,
        help=f"heal check interval ({d.interval_seconds:g}s)",
    )
    add(
        "--for",
        dest="for_seconds",
        metavar="DURATION",
        type=cliargs.duration,
        default=d.for_seconds,
        help=f"reset only after the inventory stayed below the threshold this long "
        f"({d.for_seconds:g}s)",
    )
    add(
        "--cooldown",
        metavar="DURATION",
        type=cliargs.duration,
        default=d.cooldown_seconds,
        help=f"never reset the same replica twice within ({d.cooldown_seconds:g}s)",
    )
    add(
        "--threshold",
        metavar="N",
        type=cliargs.finite_float,
        default=d.threshold,
        help=f"reset when inventory < threshold ({d.threshold:g})",
    )
    add("--no-heal", action="store_true", help="watch only; reset by hand")
    add(
        "--scrape-interval",
        metavar="DURATION",
        type=cliargs.positive_duration,
        default=None,  # LocalConfig's, or the lessons' with --lessons
        help=f"Prometheus scrape and evaluation interval ({d.scrape_interval_seconds:g}s; "
        f"{SETUP.scrape_interval} with --lessons)",
    )
    add("--no-prometheus", action="store_true", help="do not start Prometheus/Alertmanager")
    add(
        "--prometheus-bin",
        metavar="PATH",
        default=None,
        help="the Prometheus binary to run (default: of the `prometheus` binaries on PATH, "
        "the newest major version: a Prometheus 3 before Debian's 2.x)",
    )
    add(
        "--workdir",
        metavar="DIR",
        type=Path,
        default=None,
        help="keep configs, logs and Prometheus data here (default: a temporary directory, "
        "removed at exit)",
    )


def config_from_args(args: argparse.Namespace) -> LocalConfig:
    lessons = bool(getattr(args, "lessons", False))
    replicas = args.replicas
    if replicas is None:
        replicas = SETUP.replicas if lessons else DEFAULTS.replicas
    scrape = args.scrape_interval
    if scrape is None:
        scrape = SETUP.scrape_seconds if lessons else DEFAULTS.scrape_interval_seconds
    return LocalConfig(
        lessons=lessons,
        replicas=replicas,
        port=args.port,
        prometheus_port=args.prometheus_port,
        alertmanager_port=args.alertmanager_port,
        with_load=args.with_load,
        load_orders=args.load_orders,
        load_concurrency=args.load_concurrency,
        load_pause_seconds=args.load_pause,
        load_rounds=args.load_rounds,
        duration_seconds=args.duration,
        ui=not args.no_ui,
        interval_seconds=args.interval,
        for_seconds=args.for_seconds,
        cooldown_seconds=args.cooldown,
        threshold=args.threshold,
        heal=not args.no_heal,
        scrape_interval_seconds=scrape,
        prometheus=not args.no_prometheus,
        prometheus_bin=args.prometheus_bin,
        workdir=args.workdir,
    )


def run(args: argparse.Namespace) -> int:
    """Run `promdemo local`; returns the exit code."""
    config = config_from_args(args)
    try:
        config.validate()
    except UsageError as e:
        return cliargs.usage_error(PROG, str(e))
    try:
        tools = Tools.find(config.prometheus_bin) if config.prometheus else Tools.none()
    except ToolError as e:
        return cliargs.usage_error(PROG, str(e))
    if config.lessons and tools.prometheus is None:
        return cliargs.usage_error(
            PROG, f"--lessons needs Prometheus, which is not installed: {INSTALL_HINT}"
        )
    busy = busy_port(
        config, prometheus=tools.prometheus is not None, alertmanager=tools.alertmanager is not None
    )
    if busy:
        return cliargs.usage_error(PROG, busy)

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    output: Output = LiveOutput() if config.ui and sys.stdout.isatty() else PlainOutput()
    ok = run_demo(config, output, tools)
    return cliargs.EXIT_OK if ok else cliargs.EXIT_FAILED
