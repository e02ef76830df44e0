"""`promdemo render`: print what the operator would create for a PromDemo file.

Reads the PromDemo object(s) of a YAML file, validates each spec with
`spec.parse_spec`, and prints `render.render_children` (or, with
`--rules-file`, the plain Prometheus rules file of `rules.rule_groups`) as YAML.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

import yaml

from promdemo_operator.cli.commands.yaml_input import InputError, read_documents
from promdemo_operator.core import cliargs
from promdemo_operator.core import render as render_mod
from promdemo_operator.core.names import API_VERSION, KIND
from promdemo_operator.core.rules import rule_groups
from promdemo_operator.core.spec import SpecError, parse_spec

DESCRIPTION = """\
Print what the operator would create for the PromDemo(s) in FILE: the reset-token
Secret, the Deployment, the Service, the ServiceMonitor and the PrometheusRule,
as multi-document YAML. With --rules-file, print the plain Prometheus rules file
of the PromDemo instead (for a Prometheus without prometheus-operator).
An invalid spec exits with status 2 and one line on stderr."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `promdemo render`."""
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
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


def _promdemos(docs: list[Any], filename: str) -> list[dict[str, Any]]:
    found = []
    for doc in docs:
        if not isinstance(doc, dict):
            raise InputError(f"{filename}: every document must be an object")
        if doc.get("kind") == KIND:
            if doc.get("apiVersion") != API_VERSION:
                raise InputError(
                    f"{filename}: apiVersion {doc.get('apiVersion')!r} of a PromDemo"
                    f" must be {API_VERSION}"
                )
            found.append(doc)
    if not found:
        raise InputError(f"{filename}: no PromDemo ({API_VERSION}) in the file")
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
    output: list[dict[str, Any]] = []
    if args.rules_file and len(bodies) != 1:
        raise InputError(f"{args.filename}: --rules-file needs exactly one PromDemo")
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
            raise InputError(f"{args.filename}: PromDemo {name!r}: {exc.message}") from exc
    if not args.rules_file and not args.token:
        prog = cliargs.program(args, "promdemo render")
        print(
            f"{prog}: generated a new reset token for the Secret"
            " (pass --token to keep one across renders)",
            file=sys.stderr,
        )
    return output


def run(args: argparse.Namespace, *, stdin: TextIO | None = None) -> int:
    """`promdemo render`: YAML on stdout; an invalid spec exits 2 with one stderr line."""
    try:
        docs = read_documents(args.filename, stdin or sys.stdin)
        bodies = [_body(doc, args) for doc in _promdemos(docs, args.filename)]
        output = _render(args, bodies)
    except InputError as exc:
        print(f"{cliargs.program(args, 'promdemo render')}: {exc}", file=sys.stderr)
        return cliargs.EXIT_USAGE
    sys.stdout.write(
        yaml.safe_dump_all(output, sort_keys=False, default_flow_style=False, width=100)
    )
    return cliargs.EXIT_OK
