"""`promdemo doctor` as a command: options, exit codes, and its two outputs.

The chains themselves are tests/unit/prometheus/test_chain.py's; the command against a
real control plane is tests/cluster/test_reconcile.py's and test_helm.py's. Here:
usage errors are exit 2 with one line, a cluster that cannot be reached is exit 1,
and the same chains print as plain lines (not a terminal) or a rich table.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from promdemo_operator.cli.commands.doctor import render_plain, render_rich
from promdemo_operator.cli.doctor.cluster import proxy_path
from promdemo_operator.cli.main import main
from promdemo_operator.prometheus.chain import BROKEN, NOTE, OK, SKIPPED, Chain, Link
from tests.support.ports import free_port


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


BROKEN_CHAIN = Chain(
    "demo",
    "shop",
    (
        Link("crds", OK, "monitoring.coreos.com/v1 serves ServiceMonitor"),
        Link("selected", BROKEN, "Prometheus monitoring/kps selects ... release=kps", "add it"),
        Link("targets", SKIPPED, "no Prometheus selects the PromDemo"),
        Link("alerts", NOTE, "firing: InventoryNegative (shop-1)"),
    ),
)
HEALTHY_CHAIN = Chain("demo", "cart", (Link("crds", OK, "served"),))


def kubeconfig(tmp_path: Path, server: str, **user: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": user or {"token": "t"}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        )
    )
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--prometheus-url", "ftp://x"], "is not an http(s) URL with a host"),
        (["--prometheus-url", "http://"], "is not an http(s) URL with a host"),
        (["-A", "shop"], "a NAME is looked up in one namespace: drop -A"),
        (["-A", "-n", "demo"], "not allowed with argument"),
        (["--timeout", "0"], "must be at least 1ms"),
        (["--timeout", "soon"], "is not a duration"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1, err


def test_without_credentials_it_says_where_it_looked_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["doctor"]) == 2
    assert capsys.readouterr().err == (
        "promdemo doctor: no kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config)"
        " and not in a cluster\n"
    )


def test_an_unknown_context_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = kubeconfig(tmp_path, "http://127.0.0.1:1")
    assert main(["doctor", "--kubeconfig", str(path), "--context", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"promdemo doctor: {path}: ")
    assert "nope" in err


@pytest.mark.parametrize("text", ["garbage: [", "hello", "apiVersion: v1"])
def test_a_file_that_is_no_kubeconfig_is_one_line_and_exit_2(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    assert main(["doctor", "--kubeconfig", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"promdemo doctor: {path}: ")
    assert err.count("\n") == 1, err


def test_an_api_server_that_does_not_answer_is_exit_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = f"http://127.0.0.1:{free_port()}"
    path = kubeconfig(tmp_path, server)
    assert main(["doctor", "--kubeconfig", str(path), "--timeout", "2s"]) == 1
    err = capsys.readouterr().err
    # The server is named, as kubectl names the server it could not reach.
    assert err.startswith(f"promdemo doctor: cannot read the cluster: {server} did not answer: ")
    assert "ConnectError" in err
    assert err.count("\n") == 1


def test_plain_output_is_one_line_per_link_and_the_fix_of_the_first_broken_one() -> None:
    out = io.StringIO()
    render_plain([BROKEN_CHAIN, HEALTHY_CHAIN], out)
    assert out.getvalue().splitlines() == [
        "PromDemo demo/shop: broken at selected",
        "  crds      ok       monitoring.coreos.com/v1 serves ServiceMonitor",
        "  selected  BROKEN   Prometheus monitoring/kps selects ... release=kps",
        "  targets   skipped  no Prometheus selects the PromDemo",
        "  alerts    note     firing: InventoryNegative (shop-1)",
        "  fix: add it",
        "PromDemo demo/cart: every link holds",
        "  crds      ok       served",
        "2 PromDemos: 1 healthy, 1 broken",
    ]


def test_a_terminal_gets_a_table_with_marks_and_the_fix() -> None:
    out = Terminal()
    render_rich([BROKEN_CHAIN], out)
    text = out.getvalue()
    assert "\x1b[" in text  # colours on a terminal
    assert "PromDemo" in text
    assert "demo/shop" in text
    for mark in ("✓", "✗", "–", "!"):
        assert mark in text
    assert "fix (selected):" in text
    assert "add it" in text
    assert "release=kps" in text


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({}, "/api/v1/namespaces/monitoring/services/prometheus-operated:web/proxy"),
        (
            {"portName": "http-web", "routePrefix": "/prom/"},
            "/api/v1/namespaces/monitoring/services/prometheus-operated:http-web/proxy/prom",
        ),
        (
            {"web": {"tlsConfig": {"keySecret": {}}}},
            "/api/v1/namespaces/monitoring/services/https:prometheus-operated:web/proxy",
        ),
        (
            {"serviceName": "k8s-governing"},
            "/api/v1/namespaces/monitoring/services/k8s-governing:web/proxy",
        ),
    ],
)
def test_a_prometheus_is_reached_where_prometheus_operator_serves_it(spec: dict, path: str) -> None:
    prometheus = {"metadata": {"name": "k8s", "namespace": "monitoring"}, "spec": spec}
    assert proxy_path(prometheus) == path
