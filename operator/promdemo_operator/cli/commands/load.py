"""`promdemo load`: the options, the progress bar and the summary of a load run.

The sending is `promdemo_operator.cli.load.run_load`; this module turns options into
its arguments and prints the `LoadSummary` as a table (or JSON with `--json`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from promdemo_operator.cli.load import (
    DEFAULT_CONCURRENCY,
    DEFAULT_ORDERS,
    DEFAULT_TIMEOUT_SECONDS,
    LoadError,
    LoadSummary,
    OrderResult,
    run_load,
)
from promdemo_operator.core import cliargs

DESCRIPTION = (
    "Send a burst of concurrent POST /order requests, like the Flask practice demo's "
    "`for i in {1..300}; do curl -s -X POST URL/order & done`, and summarise them."
)

#: What each status code means in the demo (the app's contract, docs/app.md).
STATUS_HINTS = {
    200: "success",
    409: "out of stock",
    502: "dependency error",
    503: "not ready / shutting down",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `promdemo load`."""
    parser.description = DESCRIPTION
    parser.add_argument(
        "url",
        metavar="URL",
        help="the order service, e.g. http://127.0.0.1:8080 (a trailing /order is accepted)",
    )
    parser.add_argument(
        "--orders",
        metavar="N",
        type=cliargs.positive_int,
        default=DEFAULT_ORDERS,
        help=f"orders per round (default {DEFAULT_ORDERS})",
    )
    parser.add_argument(
        "--concurrency",
        metavar="N",
        type=cliargs.positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"orders in flight at once; also the connection limit (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--rounds", metavar="N", type=cliargs.positive_int, default=1, help="rounds (default 1)"
    )
    parser.add_argument(
        "--pause",
        metavar="DURATION",
        type=cliargs.duration,
        default=0.0,
        help="pause between rounds: seconds or e.g. 15s, 1m (default 0)",
    )
    parser.add_argument(
        "--timeout",
        metavar="DURATION",
        type=cliargs.positive_duration,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"per-request timeout: seconds or e.g. 500ms (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as JSON (for scripts)"
    )


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def render_summary(summary: LoadSummary) -> Table:
    """A rich table of the summary."""
    table = Table(title=f"promdemo load → {summary.url}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "orders",
        f"{summary.attempted} sent ({summary.rounds} round(s), concurrency {summary.concurrency})",
    )
    for status, count in sorted(summary.statuses.items()):
        hint = STATUS_HINTS.get(status)
        table.add_row(f"HTTP {status}", f"{count} ({hint})" if hint else str(count))
    for name, count in sorted(summary.errors.items()):
        table.add_row(name, f"{count} (no HTTP answer)")
    table.add_row("elapsed", f"{summary.elapsed_seconds:.2f} s")
    table.add_row("throughput", f"{summary.throughput:.1f} orders/s")
    table.add_row(
        "latency",
        f"p50 {_ms(summary.latency(50))}, p95 {_ms(summary.latency(95))}, "
        f"p99 {_ms(summary.latency(99))}, max {_ms(summary.latency_max)}",
    )
    return table


def run(args: argparse.Namespace) -> int:
    """Run `promdemo load`; 1 when the target is unreachable or an order got no answer."""
    err = Console(stderr=True)
    # The bar is for a person watching: not in a pipe or a log file.
    progress = Progress(
        TextColumn("orders"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
        transient=True,
    )
    task = progress.add_task("orders", total=args.orders * args.rounds)

    def on_result(_: OrderResult) -> None:
        progress.advance(task)

    try:
        with progress:
            summary = asyncio.run(
                run_load(
                    args.url,
                    orders=args.orders,
                    concurrency=args.concurrency,
                    rounds=args.rounds,
                    pause_seconds=args.pause,
                    timeout_seconds=args.timeout,
                    on_result=on_result,
                )
            )
    except LoadError as e:
        print(f"promdemo load: {e}", file=sys.stderr)
        return cliargs.EXIT_FAILED
    except KeyboardInterrupt:
        print("promdemo load: interrupted", file=sys.stderr)
        return cliargs.EXIT_INTERRUPTED

    if args.json:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        Console().print(render_summary(summary))
    if summary.failed_transport:
        print(
            f"promdemo load: {summary.failed_transport} of {summary.attempted} orders "
            "got no HTTP answer",
            file=sys.stderr,
        )
        return cliargs.EXIT_FAILED
    return cliargs.EXIT_OK
