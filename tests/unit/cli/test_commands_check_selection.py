"""`promdemo check-selection`: exit 0 selected, 1 with the reason and the fix, 2 on bad input."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from promdemo_operator.cli.commands import check_selection

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "prometheus"
KPS = str(FIXTURES / "kube-prometheus-stack.yaml")
KPS_ALL = str(FIXTURES / "kube-prometheus-stack-select-all.yaml")
KUBE_PROMETHEUS = str(FIXTURES / "kube-prometheus.yaml")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def promdemo(name: str = "shop", namespace: str | None = "demo", **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "promdemo.dev/v1alpha1",
        "kind": "PromDemo",
        "metadata": meta,
        "spec": spec,
    }


def prometheus(name: str = "p", namespace: str = "monitoring", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def write(tmp_path: Path, name: str, *docs: Any) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(list(docs)))
    return str(path)


def run(*argv: str, stdin: str = "", tty: bool = False) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="promdemo check-selection")
    check_selection.add_arguments(parser)
    args = parser.parse_args(list(argv))
    out = Terminal() if tty else io.StringIO()
    code = check_selection.run(args, stdin=io.StringIO(stdin), stdout=out)
    return code, out.getvalue()


# --------------------------------------------------------------------------- verdicts


def test_kube_prometheus_stack_ignores_the_default_promdemo(tmp_path: Path) -> None:
    shop = write(tmp_path, "shop.yaml", promdemo())
    code, out = run("-f", shop, "--prometheus", KPS)
    assert code == 1
    assert out.splitlines() == [
        "PromDemo demo/shop: not selected (LabelsNotMatched)",
        "  Prometheus monitoring/prometheus-kube-prometheus-prometheus (ServiceMonitor no,"
        " PrometheusRule no): selects ServiceMonitors and PrometheusRules labelled"
        " release=prometheus",
        "  fix: add spec.monitoring.labels: {release: prometheus}",
    ]


def test_match_prometheus_auto_is_checked_as_the_operator_applies_it(tmp_path: Path) -> None:
    shop = write(tmp_path, "shop.yaml", promdemo(monitoring={"matchPrometheus": "auto"}))
    code, out = run("-f", shop, "--prometheus", KPS)
    assert code == 0
    assert out.splitlines() == [
        "PromDemo demo/shop: selected by Prometheus"
        " monitoring/prometheus-kube-prometheus-prometheus (ServiceMonitor and PrometheusRule)",
        "  matchPrometheus: auto added {release: prometheus} so that Prometheus"
        " monitoring/prometheus-kube-prometheus-prometheus selects the PromDemo",
    ]
    # Two Prometheus wanting different labels: the operator adds none, and neither does this.
    other = yaml.safe_load(Path(KPS).read_text())
    other["metadata"]["name"] = "other"
    for field in ("serviceMonitorSelector", "ruleSelector"):
        other["spec"][field] = {"matchLabels": {"release": "other"}}
    both = write(tmp_path, "both.yaml", yaml.safe_load(Path(KPS).read_text()), other)
    code, out = run("-f", shop, "--prometheus", both)
    assert code == 1
    assert out.splitlines()[0] == "PromDemo demo/shop: not selected (LabelsNotMatched)"
    assert out.splitlines()[-1].startswith(
        "  matchPrometheus: auto found several Prometheus needing different labels"
    )


def test_the_fix_it_prints_makes_it_pass(tmp_path: Path) -> None:
    shop = write(tmp_path, "shop.yaml", promdemo(monitoring={"labels": {"release": "prometheus"}}))
    code, out = run("-f", shop, "--prometheus", KPS)
    assert code == 0
    assert out == (
        "PromDemo demo/shop: selected by Prometheus"
        " monitoring/prometheus-kube-prometheus-prometheus (ServiceMonitor and PrometheusRule)\n"
    )


@pytest.mark.parametrize("fixture", [KPS_ALL, KUBE_PROMETHEUS])
def test_prometheus_selecting_everything(tmp_path: Path, fixture: str) -> None:
    shop = write(tmp_path, "shop.yaml", promdemo())
    assert run("-f", shop, "--prometheus", fixture)[0] == 0


def test_several_prometheus_in_several_files_and_lists(tmp_path: Path) -> None:
    shop = write(tmp_path, "shop.yaml", promdemo())
    everything = {"serviceMonitorSelector": {}, "ruleSelector": {}}
    everything |= {"serviceMonitorNamespaceSelector": {}, "ruleNamespaceSelector": {}}
    items = [prometheus("a"), prometheus("b", **everything)]
    as_list = write(tmp_path, "list.yaml", {"apiVersion": "v1", "kind": "List", "items": items})
    code, out = run("-f", shop, "--prometheus", KPS, "--prometheus", as_list)
    assert code == 0
    assert out.startswith("PromDemo demo/shop: selected by Prometheus monitoring/b ")
    # without the List's second item, none selects
    only_a = write(tmp_path, "a.yaml", prometheus("a"))
    code, out = run("-f", shop, "--prometheus", KPS, "--prometheus", only_a)
    assert code == 1
    assert "Prometheus monitoring/a (ServiceMonitor no, PrometheusRule no): has no" in out


def test_a_disabled_service_monitor_is_not_required(tmp_path: Path) -> None:
    rules_only = prometheus(ruleSelector={}, ruleNamespaceSelector={})
    prom = write(tmp_path, "prom.yaml", rules_only)
    off = write(tmp_path, "off.yaml", promdemo(monitoring={"serviceMonitor": False}))
    on = write(tmp_path, "on.yaml", promdemo())
    assert run("-f", off, "--prometheus", prom)[0] == 0
    code, out = run("-f", on, "--prometheus", prom)
    assert code == 1
    assert "has no serviceMonitorSelector" in out


def test_namespace_labels_from_the_option_or_a_namespace_object(tmp_path: Path) -> None:
    prom = write(
        tmp_path,
        "prom.yaml",
        prometheus(
            serviceMonitorSelector={},
            ruleSelector={},
            serviceMonitorNamespaceSelector={"matchLabels": {"monitoring": "on"}},
            ruleNamespaceSelector={"matchLabels": {"monitoring": "on"}},
        ),
    )
    shop = write(tmp_path, "shop.yaml", promdemo())
    code, out = run("-f", shop, "--prometheus", prom)
    assert code == 1
    assert "fix: label the namespace: kubectl label namespace demo monitoring=on" in out
    assert (
        run("-f", shop, "--prometheus", prom, "--namespace-labels", "team=a,monitoring=on")[0] == 0
    )
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "demo", "labels": {"monitoring": "on"}},
    }
    with_namespace = write(tmp_path, "with-ns.yaml", namespace, promdemo())
    assert run("-f", with_namespace, "--prometheus", prom)[0] == 0


def test_namespace_defaults_like_kubectl_and_the_option(tmp_path: Path) -> None:
    own_namespace_only = write(
        tmp_path, "prom.yaml", prometheus(serviceMonitorSelector={}, ruleSelector={})
    )
    shop = write(tmp_path, "shop.yaml", promdemo(namespace=None))
    code, out = run("-f", shop, "--prometheus", own_namespace_only)
    assert code == 1
    assert "PromDemo default/shop" in out
    assert run("-f", shop, "--prometheus", own_namespace_only, "-n", "monitoring")[0] == 0


def test_every_promdemo_must_be_selected(tmp_path: Path) -> None:
    both = write(
        tmp_path,
        "both.yaml",
        promdemo("a", monitoring={"labels": {"release": "prometheus"}}),
        promdemo("b"),
    )
    code, out = run("-f", both, "--prometheus", KPS)
    assert code == 1
    assert out.splitlines()[0].startswith("PromDemo demo/a: selected by")
    assert out.splitlines()[1] == "PromDemo demo/b: not selected (LabelsNotMatched)"


def test_reads_the_promdemo_from_stdin(tmp_path: Path) -> None:
    code, _ = run("-f", "-", "--prometheus", KUBE_PROMETHEUS, stdin=yaml.safe_dump(promdemo()))
    assert code == 0


def test_rich_output_on_a_terminal(tmp_path: Path) -> None:
    shop = write(tmp_path, "shop.yaml", promdemo())
    code, out = run("-f", shop, "--prometheus", KPS, tty=True)
    assert code == 1
    assert "\x1b[" in out  # styled
    assert "✗" in out
    assert "add spec.monitoring.labels: {release: prometheus}" in out


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("files", "extra", "message"),
    [
        (
            {"shop.yaml": [promdemo()]},
            ["--prometheus", "missing.yaml"],
            "missing.yaml: No such file",
        ),
        (
            {"shop.yaml": [promdemo()], "p.yaml": "a: [b"},
            ["--prometheus", "p.yaml"],
            "not valid YAML",
        ),
        (
            {"shop.yaml": [promdemo()], "p.yaml": [{"kind": "Service"}]},
            ["--prometheus", "p.yaml"],
            "no Prometheus",
        ),
        (
            {"shop.yaml": [prometheus()], "p.yaml": [prometheus()]},
            ["--prometheus", "p.yaml"],
            "no PromDemo",
        ),
        (
            {"shop.yaml": [promdemo(replicas=-1)], "p.yaml": [prometheus()]},
            ["--prometheus", "p.yaml"],
            "PromDemo 'shop': spec.replicas",
        ),
        (
            {"shop.yaml": [promdemo(name="Bad_Name")], "p.yaml": [prometheus()]},
            ["--prometheus", "p.yaml"],
            "metadata.name",
        ),
        (
            {"shop.yaml": [promdemo()], "p.yaml": [{**prometheus(), "metadata": {"name": "p"}}]},
            ["--prometheus", "p.yaml"],
            "Prometheus 'p': no metadata.namespace",
        ),
        (
            {"shop.yaml": [promdemo()], "p.yaml": [prometheus()]},
            ["--prometheus", "p.yaml", "--namespace-labels", "team"],
            "--namespace-labels: 'team' is not KEY=VALUE",
        ),
        (
            {"shop.yaml": [promdemo()], "p.yaml": [prometheus()]},
            ["--prometheus", "p.yaml", "--namespace-labels", "team=-x"],
            "not a valid label value",
        ),
        (
            {"shop.yaml": [promdemo()]},
            ["--prometheus", "-", "-f", "-"],
            "only one of -f and --prometheus",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, Any],
    extra: list[str],
    message: str,
) -> None:
    for name, content in files.items():
        text = content if isinstance(content, str) else yaml.safe_dump_all(content)
        (tmp_path / name).write_text(text)
    argv = ["-f", str(tmp_path / "shop.yaml")]
    argv += [str(tmp_path / a) if a.endswith(".yaml") else a for a in extra]
    code, out = run(*argv)
    err = capsys.readouterr().err
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("promdemo check-selection: ")
    assert message in err


# --------------------------------------------------------------------------- the docs' example


def test_the_example_in_docs_selection_md_is_what_the_command_prints() -> None:
    root = Path(__file__).resolve().parents[3]
    text = (root / "docs" / "selection.md").read_text(encoding="utf-8")
    block = text.split("```console\n", 1)[1].split("```", 1)[0].splitlines()
    command = next(line for line in block if line.startswith("$ promdemo check-selection"))
    start = block.index(command)
    end = block.index("$ echo $?")
    argv = command.removeprefix("$ promdemo check-selection ").split()
    argv = [
        KPS if a == "prometheus.yaml" else str(root / a) if a.endswith(".yaml") else a for a in argv
    ]
    code, out = run(*argv)
    assert out.splitlines() == block[start + 1 : end]
    assert str(code) == block[end + 1]


def test_promdemo_check_selection_is_a_subcommand(tmp_path, capsys) -> None:
    """The console script dispatches `check-selection` to this module (exit 1: not selected)."""
    from promdemo_operator.cli.main import main

    root = Path(__file__).resolve().parents[3]
    code = main(
        [
            "check-selection",
            "-f",
            str(root / "manifests" / "samples" / "minimal.yaml"),
            "-n",
            "demo",
            "--prometheus",
            str(root / "tests" / "fixtures" / "prometheus" / "kube-prometheus-stack.yaml"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "add spec.monitoring.labels: {release: prometheus}" in out
