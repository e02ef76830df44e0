"""`promdemo operator` with its /healthz port taken: one line and exit 2, as the metrics
port, with and without --leader-elect. /healthz is served by a start-up handler inside
kopf (handlers/health.py), whose failure alone would be kopf's traceback and exit 1:
run.py checks the port first; a standby serves /healthz itself before it leads."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path


def _run_with_health_port_taken(
    tmp_path: Path, *flags: str
) -> tuple[subprocess.CompletedProcess[str], int]:
    """`promdemo operator FLAGS` against an API server that is not there, its
    --health-port held by another socket; the finished process and that port."""
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }  # fmt: skip
    (tmp_path / "kubeconfig").write_text(json.dumps(config))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "KUBECONFIG": str(tmp_path / "kubeconfig"),
               "KUBERNETES_SERVICE_HOST": ""}  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "promdemo_operator.runtime.startup", *flags,
             "--bind", "127.0.0.1", "--metrics-port", "0", "--webhook-port", "0",
             "--health-port", str(port)],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    return done, port


def test_a_busy_health_port_without_leader_election_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    done, port = _run_with_health_port_taken(tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"promdemo operator: cannot listen on 127.0.0.1:{port}: in use"
    )


def test_a_busy_health_port_with_leader_election_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    done, port = _run_with_health_port_taken(
        tmp_path, "--leader-elect", "--leader-elect-namespace", "x"
    )
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
