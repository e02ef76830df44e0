"""`promdemo check-selection`: would these Prometheus objects select this PromDemo? Offline.

    promdemo check-selection -f shop.yaml --prometheus prometheus.yaml [--namespace-labels k=v,...]

For each PromDemo in FILE it renders the ServiceMonitor and PrometheusRule the
operator would create (`render.render_children`, so their labels are exactly
the operator's) and checks them against every Prometheus in the --prometheus
files with prometheus-operator's rules (`selection`). Exit 0 when one
Prometheus selects both (or what `spec.monitoring` leaves on), 1 with the
reason and the fix otherwise, 2 for input it cannot read (one line on stderr).

Namespace labels come from Namespace objects in either file and from
--namespace-labels (the PromDemo's namespace); every namespace also has the
`kubernetes.io/metadata.name` label the API server sets.

A PromDemo with `spec.monitoring.matchPrometheus: auto` is checked with the labels
the operator would add (`promstatus.auto_match`), and the line says so, or why it
would add none.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from promdemo_operator.cli.commands.yaml_input import InputError, read_documents
from promdemo_operator.core.cliargs import EXIT_FAILED, EXIT_OK, EXIT_USAGE, program
from promdemo_operator.core.names import API_VERSION, KIND, MONITORING_GROUP
from promdemo_operator.prometheus.selection import (
    KINDS,
    AutoLabels,
    LabelSelector,
    MonitoringObject,
    PrometheusError,
    PrometheusSelectors,
    SelectionReport,
    SelectorError,
    check,
)

# cliargs' codes, named for this command: 1 is "checked, and not selected".
EXIT_SELECTED = EXIT_OK
EXIT_NOT_SELECTED = EXIT_FAILED

DESCRIPTION = """\
Check, before applying, that a Prometheus of prometheus-operator would select the
ServiceMonitor and the PrometheusRule of the PromDemo(s) in FILE: exit 0 when one
Prometheus selects both, 1 with the reason and the fix otherwise, 2 on bad input.
Get the Prometheus objects with: kubectl get prometheus -A -o yaml > prometheus.yaml"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `promdemo check-selection`."""
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "-f",
        "--filename",
        required=True,
        metavar="FILE",
        help="YAML holding one or more PromDemo objects (and optionally Namespaces); - reads stdin",
    )
    parser.add_argument(
        "--prometheus",
        required=True,
        action="append",
        metavar="FILE",
        help="YAML holding Prometheus objects (several documents or a List; Namespaces too);"
        " may be given more than once; - reads stdin",
    )
    parser.add_argument(
        "--namespace-labels",
        default="",
        metavar="K=V,...",
        help="labels of the PromDemo's namespace (kubernetes.io/metadata.name is always there)",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        help="namespace of a PromDemo that names none (default: default)",
    )


# --------------------------------------------------------------------------- input


def _read(filename: str, stdin: TextIO) -> list[dict[str, Any]]:
    """The objects of a YAML file: every document, the items of a `List` flattened."""
    docs = read_documents(filename, stdin)
    return list(_flatten(docs, filename))


def _flatten(docs: Iterable[Any], filename: str) -> Iterable[dict[str, Any]]:
    for doc in docs:
        if not isinstance(doc, dict):
            raise InputError(f"{filename}: every document must be an object")
        if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
            yield from _flatten(doc["items"], filename)
        else:
            yield doc


def _labels_option(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise InputError(f"--namespace-labels: {part!r} is not KEY=VALUE")
        labels[key.strip()] = value.strip()
    try:  # the same checks Kubernetes applies to label keys and values
        LabelSelector.parse({"matchLabels": labels}, where="--namespace-labels")
    except SelectorError as exc:
        raise InputError(str(exc).replace(".matchLabels", "")) from exc
    return labels


def _namespaces(objects: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for obj in objects:
        if obj.get("kind") == "Namespace" and obj.get("apiVersion") == "v1":
            meta = obj.get("metadata") or {}
            if isinstance(meta.get("name"), str):
                labels = meta.get("labels") or {}
                found[meta["name"]] = {str(k): str(v) for k, v in labels.items()}
    return found


def _prometheuses(objects: Iterable[Mapping[str, Any]], files: str) -> list[PrometheusSelectors]:
    found = []
    for obj in objects:
        if obj.get("kind") == "Prometheus":
            try:
                found.append(PrometheusSelectors.from_object(obj))
            except PrometheusError as exc:
                raise InputError(f"{files}: {exc}") from exc
    if not found:
        raise InputError(f"{files}: no Prometheus ({MONITORING_GROUP}/v1) in the file")
    return found


def _promdemo_namespace(doc: Mapping[str, Any], default_namespace: str) -> str:
    return str((doc.get("metadata") or {}).get("namespace") or default_namespace)


def _promdemo_objects(
    doc: Mapping[str, Any],
    filename: str,
    default_namespace: str,
    prometheuses: list[Mapping[str, Any]],
    namespaces: Mapping[str, Mapping[str, str]],
) -> tuple[str, list[MonitoringObject], AutoLabels | None]:
    """`namespace/name`, the ServiceMonitor/PrometheusRule the operator would render, and
    what `matchPrometheus: auto` would add (None when off)."""
    from promdemo_operator.core.render import render_children
    from promdemo_operator.core.spec import SpecError, parse_spec
    from promdemo_operator.prometheus.status import auto_match

    if doc.get("apiVersion") != API_VERSION:
        raise InputError(
            f"{filename}: apiVersion {doc.get('apiVersion')!r} of a PromDemo must be {API_VERSION}"
        )
    meta = doc.get("metadata") or {}
    name = meta.get("name")
    namespace = _promdemo_namespace(doc, default_namespace)
    try:
        spec = parse_spec(doc.get("spec"))
        spec, auto = auto_match(str(name), namespace, spec, prometheuses, namespaces)
        # Only the labels matter; the rendered Secret (and so its token) is thrown away.
        children = render_children(name, namespace, spec, token="unused")  # noqa: S106
    except SpecError as exc:
        raise InputError(f"{filename}: PromDemo {name!r}: {exc.message}") from exc
    objects = [MonitoringObject.from_object(c) for c in children if c.get("kind") in KINDS]
    return f"{namespace}/{name}", objects, auto


# --------------------------------------------------------------------------- output


def _mark(report: SelectionReport, prometheus: str, kind: str) -> str | None:
    for p in report.prometheuses:
        if p.prometheus == prometheus:
            for v in p.verdicts:
                if v.kind == kind:
                    return "yes" if v.selected else "no"
    return None  # the kind is off in spec.monitoring


def _why(report: SelectionReport, prometheus: str) -> str:
    for p in report.prometheuses:
        if p.prometheus == prometheus and not p.selects_all:
            return p.message.removeprefix(f"Prometheus {prometheus} ")
    return ""


def _plain(key: str, report: SelectionReport, out: TextIO) -> None:
    if report.selected:
        print(f"PromDemo {key}: {report.message}", file=out)
        return
    print(f"PromDemo {key}: not selected ({report.reason})", file=out)
    for p in report.prometheuses:
        marks = ", ".join(
            f"{o.kind.kind} {_mark(report, p.prometheus, o.kind.kind)}" for o in report.objects
        )
        why = _why(report, p.prometheus)
        print(f"  Prometheus {p.prometheus} ({marks})" + (f": {why}" if why else ""), file=out)
    if report.reason == "SelectedByDifferentPrometheuses":
        print(f"  {report.message}", file=out)
    if report.fix:
        print(f"  fix: {report.fix}", file=out)


def _rich(key: str, report: SelectionReport, out: TextIO) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(file=out, highlight=False)
    if report.selected:
        console.print(f"[green]✓[/] PromDemo [bold]{key}[/]: {escape(report.message)}")
        return
    console.print(f"[red]✗[/] PromDemo [bold]{key}[/]: not selected ([bold]{report.reason}[/])")
    for p in report.prometheuses:
        marks = "  ".join(
            f"{o.kind.kind} " + ("[green]✓[/]" if m == "yes" else "[red]✗[/]")
            for o in report.objects
            for m in [_mark(report, p.prometheus, o.kind.kind)]
        )
        console.print(f"  Prometheus [bold]{p.prometheus}[/]  {marks}")
        why = _why(report, p.prometheus)
        if why:
            console.print(f"    {escape(why)}")
    if report.reason == "SelectedByDifferentPrometheuses":
        console.print(f"  {escape(report.message)}")
    if report.fix:
        console.print(f"  [bold yellow]fix:[/] {escape(report.fix)}")


# --------------------------------------------------------------------------- command


def run(
    args: argparse.Namespace, *, stdin: TextIO | None = None, stdout: TextIO | None = None
) -> int:
    """`promdemo check-selection`: 0 selected, 1 not selected (reason and fix), 2 bad input."""
    stdin = stdin or sys.stdin
    out = stdout or sys.stdout
    try:
        if [args.filename, *args.prometheus].count("-") > 1:
            raise InputError("only one of -f and --prometheus can read stdin (-)")
        promdemo_docs = _read(args.filename, stdin)
        prometheus_docs = [doc for f in args.prometheus for doc in _read(f, stdin)]
        files = ", ".join(args.prometheus)
        prometheuses = _prometheuses(prometheus_docs, files)
        namespaces = _namespaces([*prometheus_docs, *promdemo_docs])
        extra = _labels_option(args.namespace_labels)
        promdemos = [d for d in promdemo_docs if d.get("kind") == KIND]
        if not promdemos:
            raise InputError(f"{args.filename}: no PromDemo ({API_VERSION}) in the file")
        default_namespace = args.namespace or "default"
        for doc in promdemos:
            namespace = _promdemo_namespace(doc, default_namespace)
            namespaces[namespace] = {**namespaces.get(namespace, {}), **extra}
        raw_prometheuses = [d for d in prometheus_docs if d.get("kind") == "Prometheus"]
        checked = []
        for doc in promdemos:
            key, objects, auto = _promdemo_objects(
                doc, args.filename, default_namespace, raw_prometheuses, namespaces
            )
            checked.append((key, check(prometheuses, objects, namespaces), auto))
    except InputError as exc:
        prog = program(args, "promdemo check-selection")
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    show = _rich if out.isatty() else _plain
    for key, report, auto in checked:
        show(key, report, out)
        if auto is not None and auto.refused:
            print(f"  {auto.message}", file=out)  # "matchPrometheus: auto found ..."
        elif auto is not None and auto.labels:
            print(f"  matchPrometheus: auto {auto.message}", file=out)
    return EXIT_SELECTED if all(r.selected for _, r, _ in checked) else EXIT_NOT_SELECTED
