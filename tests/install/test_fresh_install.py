"""The README's first commands, run exactly as a new user runs them.

A fresh venv, a plain `pip install '.[all]'` (not editable), and every command
from the clone's root, where `python -m` puts the clone's root first on
sys.path: a folder there named like a standard module (`operator/` once was)
breaks pip, the app's replicas and pytest, and only this tier can see it; the
rest of the suite runs in an editable install.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.ports import consecutive_free_ports, free_port
from tests.support.tools import require_binary

from .conftest import Venv

pytestmark = [pytest.mark.install, pytest.mark.timeout(1800)]

HEAL_LINE = re.compile(r"heal: reset replica-\d+ \(127\.0\.0\.1:\d+\) inventory -\d+ -> 100")


def _said(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def test_pip_works_from_the_clone_root(user_venv: Venv) -> None:
    result = user_venv.run("python", "-m", "pip", "--version")
    assert result.returncode == 0, _said(result)
    assert result.stdout.startswith("pip ")


def test_the_packages_come_from_the_install_not_the_clone(user_venv: Venv) -> None:
    result = user_venv.run(
        "python", "-c", "import promdemo_app, promdemo_operator; "
        "print(promdemo_app.__file__); print(promdemo_operator.__file__)",
    )  # fmt: skip
    assert result.returncode == 0, _said(result)
    for line in result.stdout.split():
        assert Path(line).is_relative_to(user_venv.path), line  # site-packages, not editable


def test_the_app_module_runs_from_the_clone_root(user_venv: Venv) -> None:
    result = user_venv.run("python", "-m", "promdemo_app", "--help")
    assert result.returncode == 0, _said(result)
    assert "--port" in result.stdout
    assert result.stderr == ""


def test_promdemo_help_from_the_clone_root(user_venv: Venv) -> None:
    result = user_venv.run("promdemo", "--help")
    assert result.returncode == 0, _said(result)
    for command in ("operator", "render", "load", "local"):
        assert command in result.stdout


def test_kubectl_finds_the_plugin_the_install_put_on_path(user_venv: Venv) -> None:
    require_binary("kubectl")
    listed = user_venv.run("kubectl", "plugin", "list")
    assert str(user_venv.bin / "kubectl-promdemo") in listed.stdout, _said(listed)
    result = user_venv.run("kubectl", "promdemo", "--help")
    assert result.returncode == 0, _said(result)
    assert result.stdout.startswith("usage: kubectl promdemo"), _said(result)
    for command in ("doctor", "check-selection", "render"):
        assert command in result.stdout


def test_local_with_load_heals_from_the_clone_root(user_venv: Venv) -> None:
    # 30 s: the first load round waits for Prometheus's first scrape of every replica
    # (up to one 5 s scrape interval after start), then the heal follows the burst.
    port = consecutive_free_ports(2)
    result = user_venv.run(
        "promdemo", "local", "--with-load", "--duration", "30", "--no-ui",
        "--port", str(port),
        "--prometheus-port", str(free_port()), "--alertmanager-port", str(free_port()),
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, _said(result)
    assert "promdemo local is ready" in result.stdout, _said(result)
    assert HEAL_LINE.search(result.stdout), _said(result)
    assert "--duration 30s elapsed" in result.stdout
    assert "Traceback" not in result.stderr, _said(result)


def test_pytest_without_promdemo_says_how_to_install(tools_venv: Venv) -> None:
    result = tools_venv.run("python", "-m", "pytest", "--collect-only", "-q")
    output = result.stdout + result.stderr
    assert result.returncode == 4, _said(result)  # pytest's usage error
    assert "promdemo is not installed in this environment" in output, _said(result)
    assert "pip install -e '.[dev]'" in output
    assert "ImportError" not in output
    assert "Traceback" not in output
