"""`promdemo doctor`: for each PromDemo, the chain from its pods to its alerts, and the fix.

    promdemo doctor [-n NS | -A] [NAME] [--prometheus-url URL] [--kubeconfig FILE]
                    [--operator-namespace promdemo-system] [--lease-name promdemo-operator]

Reads the cluster with the user's credentials (cli/doctor/cluster.py: kubectl's
kubeconfig, else in-cluster), decides each PromDemo's links (prometheus/chain.py:
crds, children, pods, selected, targets, rules, alerts, heal) and prints them,
with the fix for the first broken link: a rich table on a terminal, plain
lines otherwise. Each Prometheus that selects a PromDemo is asked once, through
the API server's service proxy, or the one at --prometheus-url. When the
operator runs with --leader-elect, the last line names its leader: the holder of
its Lease and how fresh it is (cli/doctor/leader.py); it does not change the exit
status.

Exit 0 when every link of every PromDemo holds, 1 when one is broken (its fix
printed) or the cluster cannot be read, 2 for a usage error (cliargs).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from promdemo_operator.cli.doctor import cluster
from promdemo_operator.cli.doctor.leader import DEFAULT_LEASE, DEFAULT_NAMESPACE, leader_line
from promdemo_operator.core import cliargs
from promdemo_operator.prometheus import chain as chain_
from promdemo_operator.prometheus.chain import BROKEN, NOTE, OK, SKIPPED, Chain

DESCRIPTION = """\
For each PromDemo, check the whole chain (prometheus-operator's CRDs, the children,
ready pods, the Prometheus that selects it, its targets, its rules, the alerts firing,
the last heal) and print the fix for the first broken link. Exit 0 when every link
holds, 1 when one is broken, 2 on a usage error."""

PROG = "promdemo doctor"
#: Marks of a link's state on a terminal, and its word in plain text.
MARKS = {OK: "[green]✓[/]", BROKEN: "[red]✗[/]", SKIPPED: "[dim]–[/]", NOTE: "[yellow]![/]"}
WORDS = {OK: "ok", BROKEN: "BROKEN", SKIPPED: "skipped", NOTE: "note"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `promdemo doctor`."""
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("name", nargs="?", metavar="NAME", help="one PromDemo (default: all)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", help="the PromDemos' namespace (default: the context's namespace)"
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="the PromDemos of every namespace"
    )
    parser.add_argument(
        "--prometheus-url",
        type=cliargs.http_url,
        metavar="URL",
        help="ask this Prometheus (e.g. after kubectl port-forward) instead of going through"
        " the API server's service proxy to the Prometheus objects that select each PromDemo",
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, else in-cluster credentials)",
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument(
        "--operator-namespace",
        default=DEFAULT_NAMESPACE,
        metavar="NS",
        help=f"where the operator's leader-election Lease is (default {DEFAULT_NAMESPACE})",
    )
    parser.add_argument(
        "--lease-name",
        default=DEFAULT_LEASE,
        metavar="NAME",
        help=f"the operator's Lease (default {DEFAULT_LEASE})",
    )
    parser.add_argument(
        "--timeout",
        type=cliargs.positive_duration,
        default=10.0,
        metavar="DURATION",
        help="per request, to the API server and to Prometheus (default: 10s)",
    )


# --------------------------------------------------------------------------- output


def _headline(chain: Chain) -> str:
    broken = chain.broken
    if broken is None:
        return f"PromDemo {chain.key}: every link holds"
    return f"PromDemo {chain.key}: broken at {broken.name}"


def render_plain(chains: Sequence[Chain], out: TextIO) -> None:
    """Plain lines (for logs, pipes and tests): one per link, then the fix."""
    width = max(len(name) for name in chain_.LINKS)
    for chain in chains:
        print(_headline(chain), file=out)
        for link in chain.links:
            state = WORDS[link.state]
            print(f"  {link.name:<{width}}  {state:<7}  {link.detail}", file=out)
        if chain.broken is not None and chain.broken.fix:
            print(f"  fix: {chain.broken.fix}", file=out)
    if len(chains) > 1:
        print(_summary(chains), file=out)


def render_rich(chains: Sequence[Chain], out: TextIO) -> None:
    """One table per PromDemo, the first broken link's fix under it."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=out, highlight=False)
    for chain in chains:
        ok = chain.broken is None
        title = f"{'[green]✓[/]' if ok else '[red]✗[/]'} PromDemo [bold]{chain.key}[/]"
        table = Table(title=title, title_justify="left", show_header=False, box=None)
        table.add_column("state", no_wrap=True)
        table.add_column("link", no_wrap=True, style="bold")
        table.add_column("detail", overflow="fold")
        for link in chain.links:
            style = "dim" if link.state == SKIPPED else None
            table.add_row(MARKS[link.state], link.name, escape(link.detail), style=style)
        console.print(table)
        broken = chain.broken
        if broken is not None and broken.fix:
            console.print(f"  [bold yellow]fix ({broken.name}):[/] {escape(broken.fix)}")
        console.print()
    if len(chains) > 1:
        console.print(_summary(chains))


def _summary(chains: Sequence[Chain]) -> str:
    broken = sum(1 for c in chains if not c.healthy)
    return f"{len(chains)} PromDemos: {len(chains) - broken} healthy, {broken} broken"


# --------------------------------------------------------------------------- command


async def diagnose(
    args: argparse.Namespace, leader: list[str] | None = None
) -> tuple[list[Chain], str | None]:
    """The chains of the PromDemos `args` names, and a message when there are none.

    `leader` (when given) receives the line about the operator's leader.
    """
    connection = cluster.connect(args.kubeconfig, args.context)
    namespace = None if args.all_namespaces else (args.namespace or connection.namespace)
    async with connection.client(args.timeout) as client:
        facts = await cluster.read_facts(client, namespace, args.name)
        if leader is not None:
            lease_ns = getattr(args, "operator_namespace", DEFAULT_NAMESPACE)
            lease_name = getattr(args, "lease_name", DEFAULT_LEASE)
            lease, error = await cluster.read_lease(client, lease_ns, lease_name)
            if lease is not None or error is not None:  # no Lease: no leader election
                now = time.time()
                line = leader_line(lease, namespace=lease_ns, name=lease_name, now=now, error=error)
                leader.append(line)
        if not facts.promdemos:
            where = f"namespace {namespace}" if namespace else "any namespace"
            what = f"PromDemo {args.name}" if args.name else "no PromDemo"
            message = f"{what} not found in {where}" if args.name else f"{what} in {where}"
            return [], message
        reports = chain_.select(facts)
        direct = None
        answers: dict[str, Any] = {}
        if args.prometheus_url:
            direct = await cluster.ask_url(args.prometheus_url, timeout=args.timeout)
        else:
            every = facts.prometheuses or []
            asked = chain_.prometheuses_to_ask(facts, reports)
            results = await asyncio.gather(
                *(cluster.ask_prometheus(client, p, every, timeout=args.timeout) for p in asked)
            )
            answers = {a.prometheus: a for a in results}
    return chain_.diagnose(facts, reports, answers, direct=direct), None


def run(args: argparse.Namespace, *, stdout: TextIO | None = None) -> int:
    """`promdemo doctor`: 0 every link holds, 1 a link is broken (or no cluster), 2 usage."""
    out = stdout or sys.stdout
    if args.name and args.all_namespaces:
        return cliargs.usage_error(PROG, "a NAME is looked up in one namespace: drop -A")
    leader: list[str] = []
    try:
        chains, message = asyncio.run(diagnose(args, leader))
    except cluster.CredentialsError as exc:
        return cliargs.usage_error(PROG, str(exc))
    except cluster.ReadError as exc:
        context = f" (context {args.context})" if args.context else ""
        print(f"{PROG}: cannot read the cluster{context}: {exc}", file=sys.stderr)
        return cliargs.EXIT_FAILED
    if message is not None:
        print(message, file=out)
        for line in leader:
            print(line, file=out)
        return cliargs.EXIT_FAILED if args.name else cliargs.EXIT_OK
    (render_rich if out.isatty() else render_plain)(chains, out)
    for line in leader:
        print(line, file=out)
    return cliargs.EXIT_OK if all(c.healthy for c in chains) else cliargs.EXIT_FAILED
