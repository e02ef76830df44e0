"""`promdemo`: the command line, which only dispatches to one module per subcommand.

    promdemo operator [--namespace NS | --all-namespaces]   the kopf operator (runtime/startup.py)
    promdemo render -f FILE [--token T] [--rules-file]     print a PromDemo's children
    promdemo load URL [--orders N] ...                     send the demo's order burst
    promdemo local [--with-load] ...                       the whole demo on one machine
    promdemo check-selection -f FILE --prometheus FILE     would that Prometheus select it?
    promdemo doctor [-n NS | -A] [NAME]                    each PromDemo's chain, and the fix

Each subcommand module exposes `add_arguments(parser)` and `run(args) -> int`
and is imported only when that subcommand is used: a module that is missing or
broken makes its own subcommand fail with one line, never the others, and
`promdemo --help` imports none of them. Exit codes and option rules are
`core/cliargs`'s, the same for every command.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from promdemo_operator import __version__
from promdemo_operator.core import cliargs


@dataclass(frozen=True)
class _Command:
    module: str  # a module of promdemo_operator with add_arguments() and run()
    help: str


COMMANDS: dict[str, _Command] = {
    "operator": _Command("runtime.startup", "run the operator (kopf) against the current cluster"),
    "render": _Command(
        "cli.commands.render", "print the children of a PromDemo as YAML (for GitOps and review)"
    ),
    "load": _Command(
        "cli.commands.load", "send the demo's burst of concurrent orders to an order service"
    ),
    "local": _Command(
        "cli.commands.local", "run the demo on this machine: app processes, healing, Prometheus"
    ),
    "check-selection": _Command(
        "cli.commands.check_selection",
        "check offline that a Prometheus selects a PromDemo's ServiceMonitor and rules",
    ),
    "doctor": _Command(
        "cli.commands.doctor",
        "check each PromDemo in the cluster, from its pods to its alerts, and print the fix",
    ),
}

Runner = Callable[[argparse.Namespace], int]
DESCRIPTION = "Learn Prometheus on Kubernetes: the PromDemo operator and its tools."


def _subcommand(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv (the first word that is not an option)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


def build_parser(
    selected: str | None = None,
    *,
    prog: str = "promdemo",
    commands: Sequence[str] = tuple(COMMANDS),
    description: str = DESCRIPTION,
) -> tuple[argparse.ArgumentParser, dict[str, Runner | BaseException]]:
    """The parser of `commands` (named `prog` in usage lines); only the `selected`
    subcommand's module is imported to add its options.

    Returns the parser and {selected: its run function, or the error importing it}.
    """
    parser = cliargs.CommandParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"promdemo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    runners: dict[str, Runner | BaseException] = {}
    for name in commands:
        command = COMMANDS[name]
        child = sub.add_parser(name, help=command.help, description=command.help)
        # So that an unknown option is reported by the subcommand's parser, as its own.
        child.set_defaults(command_parser=child)
        if name != selected:
            continue
        try:
            module = importlib.import_module(f"promdemo_operator.{command.module}")
            module.add_arguments(child)
            runners[name] = module.run
        except Exception as exc:  # a missing or broken module disables its subcommand only
            child.description = f"{command.help} (unavailable: {type(exc).__name__}: {exc})"
            runners[name] = exc
    return parser, runners


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = "promdemo",
    commands: Sequence[str] = tuple(COMMANDS),
    description: str = DESCRIPTION,
) -> int:
    """Entry point of the `promdemo` console script (and, with its own `prog`,
    `commands` and `description`, of the kubectl plugin); returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    selected = _subcommand(args_list)
    parser, runners = build_parser(
        selected if selected in commands else None,
        prog=prog,
        commands=commands,
        description=description,
    )
    try:
        # Known args first: a broken subcommand has no options, and its one line
        # must not be hidden behind "unrecognized arguments".
        args, extra = parser.parse_known_args(args_list)
        runner: Any = runners.get(args.command)
        if isinstance(runner, BaseException):
            return cliargs.usage_error(
                f"{prog} {args.command}", f"unavailable ({type(runner).__name__}: {runner})"
            )
        if extra:
            args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help, --version and usage errors
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else cliargs.EXIT_USAGE)
    try:
        return int(runner(args) or 0)
    except KeyboardInterrupt:
        return cliargs.EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
