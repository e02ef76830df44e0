"""The commands as a user runs them: bad settings stop start-up with one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import httpx
import pytest

from tests.support.ports import free_port

pytestmark = pytest.mark.integration


def run_app(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promdemo_app", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PROMDEMO_INITIAL_INVENTORY", "lots"),
        ("PROMDEMO_OVERSELL", "maybe"),
        ("PROMDEMO_DEPENDENCY_FAILURE_RATE", "2"),
        ("PROMDEMO_RESET_TOKEN_FILE", "/nonexistent/token"),
        ("PROMDEMO_RESET_OPEN", "sometimes"),
    ],
)
def test_bad_setting_exits_nonzero_with_one_line(name: str, value: str) -> None:
    result = run_app("--host", "127.0.0.1", "--port", str(free_port()), env={name: value})
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0]


def test_console_script_reports_the_same_way() -> None:
    script = shutil.which("promdemo-app")
    if script is None:
        pytest.skip("promdemo-app is not on PATH (pip install -e . puts it there)")
    result = subprocess.run(
        [script, "--port", "70000"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "promdemo-app: --port='70000' is not valid: "
        "expected a port from 1 to 65535 (0: any free port)"
    ]


def test_a_taken_port_exits_1_with_one_line(start_app) -> None:
    _, url = start_app()
    port = url.rsplit(":", 1)[1]
    result = run_app("--host", "127.0.0.1", "--port", port, env={})
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "promdemo-app:" in line]
    assert errors == [f"promdemo-app: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert "Traceback" not in result.stderr


def test_an_open_reset_with_a_token_is_refused_with_one_line() -> None:
    result = run_app(
        "--host",
        "127.0.0.1",
        "--port",
        str(free_port()),
        env={"PROMDEMO_RESET_OPEN": "true", "PROMDEMO_RESET_TOKEN": "s3cret"},
    )
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "PROMDEMO_RESET_OPEN=true and a reset token are both set" in result.stderr
    assert "s3cret" not in result.stderr


def reset_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "inventory reset:" in line]


def test_start_up_says_who_may_reset(start_app) -> None:
    # Loopback without a token (a laptop demo): open, and said so.
    open_proc, open_url = start_app()
    assert len(reset_lines(open_proc.log())) == 1
    assert "open without a token" in reset_lines(open_proc.log())[0]
    assert httpx.post(f"{open_url}/inventory/reset", timeout=30).status_code == 200

    # With a token, as `promdemo local` and the operator run it.
    token_proc, token_url = start_app(env={"PROMDEMO_RESET_TOKEN": "s3cret-token"})
    assert len(reset_lines(token_proc.log())) == 1
    assert "needs the reset token" in reset_lines(token_proc.log())[0]
    assert httpx.post(f"{token_url}/inventory/reset", timeout=30).status_code == 401
    assert "s3cret-token" not in token_proc.log()


def test_a_host_that_does_not_resolve_is_one_line_and_exit_2() -> None:
    # In a network namespace of its own (no DNS server reachable), so the
    # look-up fails at once and nothing leaves this machine.
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-n", "true"], check=False).returncode != 0:
        pytest.skip("needs `unshare -n` (root) to resolve without a network")
    for value in ("no-such-host.invalid", "300.1.1.1", "-bad-"):
        result = subprocess.run(
            [unshare, "-n", sys.executable, "-m", "promdemo_app", "--port", "0"],
            env={**os.environ, "PROMDEMO_HOST": value},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"promdemo-app: PROMDEMO_HOST={value!r} is not valid"), lines
