"""`kubectl promdemo`: the kubectl plugin as a kubectl user runs it.

kubectl itself finds `kubectl-promdemo` (installed with the package) on PATH and
runs it; the plugin must honour kubectl's flags wherever they stand. Two
kubeconfig contexts point at two API servers on 127.0.0.1 (a few lines of
http.server that record what is asked and answer "no PromDemo"), so that the
context and the namespace chosen show in which server was asked for which path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from promdemo_operator.cli.kubectl_plugin import KubectlFlags, UsageError, split_kubectl_flags
from tests.support.ports import free_port
from tests.support.tools import require_binary

ROOT = Path(__file__).resolve().parents[3]
MINIMAL = ROOT / "manifests" / "samples" / "minimal.yaml"
PROMDEMOS = "/apis/promdemo.dev/v1alpha1"


# --------------------------------------------------------------------------- flags


@pytest.mark.parametrize(
    ("argv", "flags", "rest"),
    [
        (["doctor", "-n", "demo"], KubectlFlags(namespace="demo"), ["doctor"]),
        (["-n", "demo", "doctor"], KubectlFlags(namespace="demo"), ["doctor"]),
        (
            ["--namespace=demo", "doctor", "shop"],
            KubectlFlags(namespace="demo"),
            ["doctor", "shop"],
        ),
        (["doctor", "-n=demo"], KubectlFlags(namespace="demo"), ["doctor"]),
        (["doctor", "-ndemo"], KubectlFlags(namespace="demo"), ["doctor"]),
        (["-n", "a", "doctor", "-n", "b"], KubectlFlags(namespace="b"), ["doctor"]),
        (["-A", "doctor"], KubectlFlags(all_namespaces=True), ["doctor"]),
        (["doctor", "--all-namespaces"], KubectlFlags(all_namespaces=True), ["doctor"]),
        (["-A", "doctor", "--all-namespaces=false"], KubectlFlags(), ["doctor"]),
        (
            ["--context", "kind-x", "doctor", "--kubeconfig=/k", "--timeout", "5s"],
            KubectlFlags(kubeconfig="/k", context="kind-x"),
            ["doctor", "--timeout", "5s"],
        ),
        # The commands' own options pass untouched, even those that start like kubectl's.
        (
            ["check-selection", "--namespace-labels", "a=b", "-f", "x.yaml"],
            KubectlFlags(),
            ["check-selection", "--namespace-labels", "a=b", "-f", "x.yaml"],
        ),
        (["render", "--", "-n", "x"], KubectlFlags(), ["render", "--", "-n", "x"]),
    ],
)
def test_kubectl_flags_are_found_before_and_after_the_command(
    argv: list[str], flags: KubectlFlags, rest: list[str]
) -> None:
    assert split_kubectl_flags(argv) == (flags, rest)


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["doctor", "-n"], "flag needs an argument: -n"), (["--context=", "doctor"], "non-empty")],
)
def test_a_kubectl_flag_without_its_value_is_a_usage_error(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        split_kubectl_flags(argv)


# --------------------------------------------------------------------------- two API servers


class _APIServer(ThreadingHTTPServer):
    """Answers every GET as an API server with no PromDemo would; records the paths."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _APIServer

    def do_GET(self) -> None:
        self.server.paths.append(self.path.split("?", 1)[0])
        if self.path.startswith(PROMDEMOS):
            status, body = 200, {"kind": "PromDemoList", "items": []}
        else:  # no prometheus-operator, no namespace objects
            status, body = 404, {"kind": "Status", "message": "not found"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def servers() -> Iterator[tuple[_APIServer, _APIServer]]:
    started = []
    try:
        for _ in range(2):
            server = _APIServer()
            threading.Thread(target=server.serve_forever, daemon=True).start()
            started.append(server)
        yield started[0], started[1]
    finally:
        for server in started:
            server.shutdown()
            server.server_close()


def write_kubeconfig(path: Path, first: str, second: str) -> Path:
    """Contexts "first" (current, namespace alpha) and "second" (namespace beta)."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "one", "cluster": {"server": first}},
                    {"name": "two", "cluster": {"server": second}},
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {
                        "name": "first",
                        "context": {"cluster": "one", "user": "u", "namespace": "alpha"},
                    },
                    {
                        "name": "second",
                        "context": {"cluster": "two", "user": "u", "namespace": "beta"},
                    },
                ],
                "current-context": "first",
            }
        )
    )
    return path


# --------------------------------------------------------------------------- through kubectl


def plugin_dir() -> Path:
    """Where pip put the package's console scripts (a venv's bin, /usr/local/bin, ...)."""
    scripts = Path(sysconfig.get_path("scripts"))
    found = shutil.which("kubectl-promdemo", path=str(scripts)) or shutil.which("kubectl-promdemo")
    assert found, f"kubectl-promdemo is not installed (not in {scripts} nor on PATH)"
    return Path(found).parent


def kubectl(
    tmp_path: Path, *argv: str, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`kubectl ARGV` as a user types it, the plugin's directory first on PATH."""
    binary = require_binary("kubectl")
    env = {
        "PATH": os.pathsep.join([str(plugin_dir()), str(Path(binary).parent)]),
        "HOME": str(tmp_path),  # no ~/.kube/config but the one given
        "LANG": "C.UTF-8",
    }
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run(
        [binary, *argv], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_kubectl_plugin_list_shows_it(tmp_path: Path) -> None:
    result = kubectl(tmp_path, "plugin", "list")
    assert result.returncode == 0, result.stderr
    assert str(plugin_dir() / "kubectl-promdemo") in result.stdout


def test_help_lists_the_three_commands(tmp_path: Path) -> None:
    result = kubectl(tmp_path, "promdemo", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: kubectl promdemo")
    for command in ("doctor", "check-selection", "render"):
        assert command in result.stdout
    assert "\n    operator " not in result.stdout  # `promdemo operator` is no plugin command
    assert "--context" in result.stdout


@pytest.mark.parametrize(
    ("argv", "asked", "namespace"),
    [
        ([], "first", "alpha"),  # the current context and its namespace
        (["--context", "second"], "second", "beta"),
        (["--context=second", "-n", "demo"], "second", "demo"),
        (["-n", "demo"], "first", "demo"),
    ],
)
def test_doctor_asks_the_chosen_contexts_server_for_its_namespace(
    tmp_path: Path,
    servers: tuple[_APIServer, _APIServer],
    argv: list[str],
    asked: str,
    namespace: str,
) -> None:
    first, second = servers
    config = write_kubeconfig(tmp_path / "config", first.url, second.url)
    # kubectl's flags before the subcommand and after it mean the same.
    for words in (["promdemo", "doctor", *argv], ["promdemo", *argv, "doctor"]):
        first.paths.clear()
        second.paths.clear()
        result = kubectl(tmp_path, *words, "--kubeconfig", str(config))
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"no PromDemo in namespace {namespace}\n"
        chosen, other = (first, second) if asked == "first" else (second, first)
        assert f"{PROMDEMOS}/namespaces/{namespace}/promdemos" in chosen.paths
        assert other.paths == []


def test_doctor_all_namespaces_lists_every_namespace(
    tmp_path: Path, servers: tuple[_APIServer, _APIServer]
) -> None:
    first, second = servers
    config = write_kubeconfig(tmp_path / "config", first.url, second.url)
    result = kubectl(tmp_path, "promdemo", "doctor", "-A", kubeconfig=config)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "no PromDemo in any namespace\n"
    assert f"{PROMDEMOS}/promdemos" in first.paths


def test_an_unreachable_server_is_named_with_its_context(
    tmp_path: Path, servers: tuple[_APIServer, _APIServer]
) -> None:
    first, _ = servers
    closed = f"http://127.0.0.1:{free_port()}"
    config = write_kubeconfig(tmp_path / "config", first.url, closed)
    result = kubectl(
        tmp_path, "promdemo", "doctor", "--context", "second", "--timeout", "2s", kubeconfig=config
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"promdemo doctor: cannot read the cluster (context second): {closed} did not answer: "
    ), result.stderr
    assert result.stderr.count("\n") == 1
    assert first.paths == []  # the current context was not asked


def test_an_unknown_context_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    config = write_kubeconfig(tmp_path / "config", "http://127.0.0.1:1", "http://127.0.0.1:1")
    result = kubectl(tmp_path, "promdemo", "doctor", "--context", "third", kubeconfig=config)
    assert result.returncode == 2
    assert "third" in result.stderr
    assert result.stderr.count("\n") == 1


def rendered_namespaces(stdout: str) -> set[str]:
    import yaml

    return {doc["metadata"]["namespace"] for doc in yaml.safe_load_all(stdout) if doc}


@pytest.mark.parametrize(
    ("argv", "namespace"),
    [
        ([], "alpha"),
        (["--context", "second"], "beta"),
        (["-n", "demo", "--context", "second"], "demo"),
    ],
)
def test_render_puts_a_namespace_less_promdemo_where_kubectl_apply_would(
    tmp_path: Path, argv: list[str], namespace: str
) -> None:
    config = write_kubeconfig(tmp_path / "config", "http://127.0.0.1:1", "http://127.0.0.1:1")
    result = kubectl(
        tmp_path, "promdemo", *argv, "render", "-f", str(MINIMAL), "--token", "t", kubeconfig=config
    )
    assert result.returncode == 0, result.stderr
    assert rendered_namespaces(result.stdout) == {namespace}


def test_render_without_a_kubeconfig_uses_default(tmp_path: Path) -> None:
    result = kubectl(
        tmp_path, "promdemo", "render", "-f", str(MINIMAL), "--token", "t",
        kubeconfig=tmp_path / "missing",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert rendered_namespaces(result.stdout) == {"default"}


@pytest.mark.parametrize("command", ["render", "check-selection"])
def test_all_namespaces_with_a_file_command_is_a_usage_error(tmp_path: Path, command: str) -> None:
    result = kubectl(tmp_path, "promdemo", command, "-A", "-f", str(MINIMAL))
    assert result.returncode == 2
    assert result.stderr == (
        f"kubectl promdemo: -A/--all-namespaces: {command} reads its PromDemos from a file;"
        " name one namespace with -n (default: the context's)\n"
    )


def test_check_selection_uses_the_contexts_namespace(tmp_path: Path) -> None:
    config = write_kubeconfig(tmp_path / "config", "http://127.0.0.1:1", "http://127.0.0.1:1")
    prometheus = tmp_path / "prometheus.yaml"
    prometheus.write_text(
        json.dumps(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "Prometheus",
                "metadata": {"name": "kps", "namespace": "monitoring"},
                "spec": {
                    "serviceMonitorSelector": {},
                    "ruleSelector": {},
                    "serviceMonitorNamespaceSelector": {"matchLabels": {"team": "beta"}},
                    "ruleNamespaceSelector": {"matchLabels": {"team": "beta"}},
                },
            }
        )
    )
    # Selected only in the namespace labelled team=beta: the PromDemo must land in
    # the second context's namespace for the answer to be yes.
    words = ["promdemo", "check-selection", "-f", str(MINIMAL), "--prometheus", str(prometheus)]
    words += ["--namespace-labels", "team=beta"]
    selected = kubectl(tmp_path, *words, "--context", "second", kubeconfig=config)
    assert selected.returncode == 0, selected.stdout + selected.stderr
    assert selected.stdout.startswith("PromDemo beta/shop: ")


def test_operator_is_not_a_plugin_command(tmp_path: Path) -> None:
    result = kubectl(tmp_path, "promdemo", "operator")
    assert result.returncode == 2
    assert "invalid choice: 'operator'" in result.stderr
