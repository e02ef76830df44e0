"""`promdemo`: the operator's command line.

    promdemo operator [--namespace NS | --all-namespaces]   run the kopf operator
    promdemo render -f FILE [--token T] [--rules-file]     print a PromDemo's children
    promdemo load ...                                      send the demo's order burst
    promdemo local ...                                     the whole demo on one machine

Each subcommand lives in its own module exposing `add_arguments(parser)` and
`run(args) -> int`, imported only when that subcommand is used: a module that
is missing or broken makes its own subcommand fail with one line, never the
others, and `promdemo --help` imports none of them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TextIO

from promdemo_operator import __version__

EXIT_OK = 0
EXIT_USAGE = 2


@dataclass(frozen=True)
class _Command:
    module: str  # a module of promdemo_operator with add_arguments() and run()
    help: str


COMMANDS: dict[str, _Command] = {
    "operator": _Command("run", "run the operator (kopf) against the current cluster"),
    "render": _Command("cli", "print the children of a PromDemo as YAML (for GitOps and review)"),
    "load": _Command("load", "send the demo's burst of concurrent orders to an order service"),
    "local": _Command("local", "run the demo on this machine: app processes, healing, Prometheus"),
}


# --------------------------------------------------------------------------- render

RENDER_DESCRIPTION = """\
Print what the operator would create for the PromDemo(s) in FILE: the reset-token
Secret, the Deployment, the Service, the ServiceMonitor and the PrometheusRule,
as multi-document YAML. With --rules-file, print the plain Prometheus rules file
of the PromDemo instead (for a Prometheus without prometheus-operator).
An invalid spec exits with status 2 and one line on stderr."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `promdemo render`."""
    parser.add_argument(
        "-f",
        "--filename",
        required=True,
        metavar="FILE",
        help="a YAML file holding one or more PromDemo objects; - reads stdin",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        help="namespace of the children when the PromDemo has none (default: default)",
    )
    parser.add_argument(
        "--token",
        help="reset token to put in the Secret (default: a new random one, noted on stderr)",
    )
    parser.add_argument(
        "--owner-uid",
        metavar="UID",
        help="uid of the PromDemo in the cluster: adds owner references to the children"
        " (without it there are none, as there is no owner to point at)",
    )
    parser.add_argument(
        "--rules-file",
        action="store_true",
        help="print the plain Prometheus rules file ({groups: ...}) instead of the children",
    )


class _RenderError(Exception):
    """One line for stderr; exit status 2."""


def _load_documents(filename: str, stdin: TextIO) -> list[Any]:
    import yaml

    try:
        if filename == "-":
            text = stdin.read()
        else:
            with open(filename, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as exc:
        raise _RenderError(f"{filename}: {exc.strerror or exc}") from exc
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise _RenderError(f"{filename}: not valid YAML{line}: {problem}") from exc


def _promdemos(docs: list[Any], filename: str) -> list[dict[str, Any]]:
    from promdemo_operator.resource import API_VERSION, KIND

    found = []
    for doc in docs:
        if not isinstance(doc, dict):
            raise _RenderError(f"{filename}: every document must be an object")
        if doc.get("kind") == KIND:
            if doc.get("apiVersion") != API_VERSION:
                raise _RenderError(
                    f"{filename}: apiVersion {doc.get('apiVersion')!r} of a PromDemo"
                    f" must be {API_VERSION}"
                )
            found.append(doc)
    if not found:
        raise _RenderError(f"{filename}: no PromDemo ({API_VERSION}) in the file")
    return found


def _body(doc: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    meta = dict(doc.get("metadata") or {})
    if not meta.get("namespace"):
        meta["namespace"] = args.namespace or "default"
    if args.owner_uid:
        meta["uid"] = args.owner_uid
    else:
        meta.pop("uid", None)
    return {**doc, "metadata": meta}


def _render(args: argparse.Namespace, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from promdemo_operator import render as render_mod
    from promdemo_operator.rules import rule_groups
    from promdemo_operator.spec import SpecError, parse_spec

    output: list[dict[str, Any]] = []
    if args.rules_file and len(bodies) != 1:
        raise _RenderError(f"{args.filename}: --rules-file needs exactly one PromDemo")
    token = args.token or render_mod.new_reset_token()
    for body in bodies:
        name = body["metadata"].get("name")
        try:
            spec = parse_spec(body.get("spec"))
            if args.rules_file:
                groups = rule_groups(
                    spec.monitoring.alerts,
                    selector={"job": "promdemo"},
                    alert_labels={"promdemo": name},
                )
                output.append({"groups": groups})
            else:
                output.extend(
                    render_mod.render_children(
                        name,
                        body["metadata"]["namespace"],
                        spec,
                        token=token,
                        owner=render_mod.owner_reference(body),
                    )
                )
        except SpecError as exc:
            raise _RenderError(f"{args.filename}: PromDemo {name!r}: {exc.message}") from exc
    if not args.rules_file and not args.token:
        print(
            "promdemo render: generated a new reset token for the Secret"
            " (pass --token to keep one across renders)",
            file=sys.stderr,
        )
    return output


def run(args: argparse.Namespace, *, stdin: TextIO | None = None) -> int:
    """`promdemo render`: YAML on stdout; an invalid spec exits 2 with one stderr line."""
    import yaml

    try:
        docs = _load_documents(args.filename, stdin or sys.stdin)
        bodies = [_body(doc, args) for doc in _promdemos(docs, args.filename)]
        output = _render(args, bodies)
    except _RenderError as exc:
        print(f"promdemo render: {exc}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(
        yaml.safe_dump_all(output, sort_keys=False, default_flow_style=False, width=100)
    )
    return EXIT_OK


# --------------------------------------------------------------------------- dispatch


def _subcommand(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv (the first word that is not an option)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


def _load(command: _Command) -> ModuleType:
    return importlib.import_module(f"promdemo_operator.{command.module}")


def build_parser(selected: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, Any]]:
    """The parser; only the `selected` subcommand's module is imported to add its options.

    Returns the parser and {subcommand: run function or the import error}.
    """
    parser = argparse.ArgumentParser(
        prog="promdemo",
        description="Learn Prometheus on Kubernetes: the PromDemo operator and its tools.",
    )
    parser.add_argument("--version", action="version", version=f"promdemo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    runners: dict[str, Any] = {}
    for name, command in COMMANDS.items():
        if name != selected:
            sub.add_parser(name, help=command.help, description=command.help)
            continue
        if name == "render":
            child = sub.add_parser(
                name,
                help=command.help,
                description=RENDER_DESCRIPTION,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
            add_arguments(child)
            runners[name] = run
            continue
        try:
            module = _load(command)
            add_args: Callable[[argparse.ArgumentParser], None] = module.add_arguments
            runners[name] = module.run
        except Exception as exc:  # a missing or broken module disables its subcommand only
            broken = sub.add_parser(
                name,
                help=command.help,
                description=f"{command.help} (unavailable: {type(exc).__name__}: {exc})",
            )
            del broken  # its options are unknown; main() ignores them
            runners[name] = exc
            continue
        child = sub.add_parser(name, help=command.help, description=command.help)
        add_args(child)
    return parser, runners


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `promdemo` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    selected = _subcommand(args_list)
    parser, runners = build_parser(selected if selected in COMMANDS else None)
    try:
        args, extra = parser.parse_known_args(args_list)
        runner = runners.get(args.command)
        if isinstance(runner, BaseException):
            print(
                f"promdemo {args.command}: unavailable ({type(runner).__name__}: {runner})",
                file=sys.stderr,
            )
            return EXIT_USAGE
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help, --version and usage errors
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    if runner is None:  # pragma: no cover - argparse only accepts known commands
        parser.error(f"unknown command {args.command!r}")
    try:
        return int(runner(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
