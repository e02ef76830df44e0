"""Which Prometheus `promdemo local` runs: `--prometheus-bin`, else the newest on PATH.

The binaries here are small shell scripts that answer `--version` as Debian's
Prometheus 2.42 and an upstream 3.16 build do (their first line, verbatim).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from promdemo_operator.cli.commands import local as command
from promdemo_operator.cli.local.banner import banner_lines
from promdemo_operator.cli.local.monitoring import (
    ToolError,
    Tools,
    binary_version,
    newest_on_path,
)
from promdemo_operator.cli.local.options import LocalConfig, UsageError
from promdemo_operator.cli.local.procs import Child
from promdemo_operator.cli.local.session import DemoState, Replica

DEBIAN = "prometheus, version 2.42.0+ds (branch: debian/sid, revision: 2.42.0+ds-5+deb12u1)"
UPSTREAM = "prometheus, version 3.16.0 (branch: module, revision: v0.316.0)"


def _binary(directory: Path, first_line: str, name: str = "prometheus") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{first_line}'\necho '  go version: go1'\n")
    path.chmod(0o755)
    return path


def test_binary_version_reads_the_first_line(tmp_path: Path) -> None:
    assert binary_version(str(_binary(tmp_path / "a", DEBIAN))) == "2.42.0+ds"
    assert binary_version(str(_binary(tmp_path / "b", UPSTREAM))) == "3.16.0"
    assert binary_version(str(_binary(tmp_path / "c", "something else"))) == ""
    assert binary_version(str(tmp_path / "missing")) == ""


def test_prometheus_3_later_on_path_wins_over_debians_2(tmp_path: Path) -> None:
    debian = _binary(tmp_path / "usr-bin", DEBIAN)
    upstream = _binary(tmp_path / "upstream", UPSTREAM)
    path = os.pathsep.join([str(debian.parent), str(upstream.parent)])
    assert newest_on_path("prometheus", path) == (str(upstream), "3.16.0")


def test_among_equals_the_first_on_path_wins_and_broken_ones_are_skipped(tmp_path: Path) -> None:
    broken = _binary(tmp_path / "broken", "segfault")
    first = _binary(tmp_path / "first", DEBIAN)
    second = _binary(tmp_path / "second", DEBIAN)
    dirs = [str(broken.parent), str(first.parent), str(second.parent), str(tmp_path / "none")]
    assert newest_on_path("prometheus", os.pathsep.join(dirs)) == (str(first), "2.42.0+ds")
    assert newest_on_path("prometheus", str(broken.parent)) is None
    assert newest_on_path("prometheus", str(tmp_path / "none")) is None


def test_find_uses_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    upstream = _binary(tmp_path / "upstream", UPSTREAM)
    _binary(tmp_path / "usr-bin", DEBIAN)
    monkeypatch.setenv(
        "PATH", os.pathsep.join([str(tmp_path / "usr-bin"), str(upstream.parent), "/bin"])
    )
    tools = Tools.find()
    assert (tools.prometheus, tools.prometheus_version, tools.prometheus_major) == (
        str(upstream),
        "3.16.0",
        3,
    )


def test_prometheus_bin_chooses(tmp_path: Path) -> None:
    debian = _binary(tmp_path / "usr-bin", DEBIAN)
    tools = Tools.find(str(debian))
    assert (tools.prometheus, tools.prometheus_version, tools.prometheus_major) == (
        str(debian),
        "2.42.0+ds",
        2,
    )


@pytest.mark.parametrize("what", ["missing", "not-prometheus"])
def test_a_bad_prometheus_bin_is_one_line_and_exit_2(
    tmp_path: Path, what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "missing"
    if what == "not-prometheus":
        path = _binary(tmp_path, "Python 3.11.2", name="python")
    with pytest.raises(ToolError, match="not a Prometheus"):
        Tools.find(str(path))
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    assert command.run(parser.parse_args(["--prometheus-bin", str(path)])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"--prometheus-bin {path}: not a Prometheus" in err[0]


def test_prometheus_bin_with_no_prometheus_contradicts() -> None:
    with pytest.raises(UsageError, match="contradict"):
        LocalConfig(prometheus=False, prometheus_bin="/usr/bin/prometheus").validate()


def _state() -> DemoState:
    state = DemoState(LocalConfig(replicas=1))
    state.replicas = [Replica("replica-1", 18080, Child("replica-1", ["true"], Path("/dev/null")))]
    state.prometheus_url = "http://127.0.0.1:19090"
    return state


def test_the_banner_says_which_prometheus_runs_and_links_its_query_page() -> None:
    state = _state()
    state.prometheus_major, state.prometheus_version = 3, "3.16.0"
    state.prometheus_binary = "/opt/p3/prometheus"
    text = "\n".join(banner_lines(state, token="t", workdir=Path("/w")))
    assert "Prometheus 3.16.0: /opt/p3/prometheus (--prometheus-bin chooses another)" in text
    assert "http://127.0.0.1:19090/query?g0.expr=" in text
    assert "/graph?" not in text
    assert "answers 500" not in text


def test_the_banner_says_when_the_ui_is_missing() -> None:
    state = _state()
    state.prometheus_major, state.prometheus_version = 3, "3.16.0"
    state.prometheus_ui = False
    text = "\n".join(banner_lines(state, token="t", workdir=Path("/w")))
    assert "answers 500 on its UI pages" in text
    assert "http://127.0.0.1:19090/api/v1/query?query=up" in text
