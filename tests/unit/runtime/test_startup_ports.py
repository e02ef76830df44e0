"""`promdemo operator` with its /healthz port taken: one line and exit 2, as the metrics
port. /healthz is served by a start-up handler inside kopf (handlers/health.py), whose
failure alone would be kopf's traceback and exit 1: run.py checks the port first."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path


def test_a_busy_health_port_without_leader_election_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
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
            [sys.executable, "-m", "promdemo_operator.runtime.startup", "--bind", "127.0.0.1",
             "--metrics-port", "0", "--webhook-port", "0", "--health-port", str(port)],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"promdemo operator: cannot listen on 127.0.0.1:{port}: in use"
    )
    assert "Traceback" not in done.stderr
