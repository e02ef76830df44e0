"""scripts/krew.py: the krew archive and manifest the release workflow attaches.

The manifest must be one krew accepts (the fields krew's own validation asks
for, the sha256 of the very archive it points at); the archive must be the same
bytes for the same version; and the launcher in it, installed the way krew
installs it (a directory on PATH), must run the plugin through kubectl, or say
how to install promdemo when no Python has it.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.support.tools import require_binary

ROOT = Path(__file__).resolve().parents[3]
URL = "https://github.com/promdemo/promdemo/releases/download/v9.8.7"


def build(out: Path, version: str = "9.8.7") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/krew.py", version, URL, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def built(tmp_path: Path) -> Path:
    result = build(tmp_path / "dist")
    assert result.returncode == 0, result.stderr
    return tmp_path / "dist"


def test_the_manifest_is_a_krew_plugin_pointing_at_the_archive(built: Path) -> None:
    plugin = yaml.safe_load((built / "promdemo.yaml").read_text())
    assert plugin["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert plugin["kind"] == "Plugin"
    assert plugin["metadata"] == {"name": "promdemo"}
    spec = plugin["spec"]
    assert spec["version"] == "v9.8.7"
    assert spec["shortDescription"]
    assert len(spec["shortDescription"]) <= 60
    assert "pip install 'promdemo[all] @ git+" in spec["caveats"]
    assert "@v9.8.7'" in spec["caveats"]
    (platform,) = spec["platforms"]
    assert platform["uri"] == f"{URL}/kubectl-promdemo.tar.gz"
    data = (built / "kubectl-promdemo.tar.gz").read_bytes()
    assert platform["sha256"] == hashlib.sha256(data).hexdigest()
    assert platform["bin"] == "kubectl-promdemo"
    with tarfile.open(built / "kubectl-promdemo.tar.gz") as tar:
        names = tar.getnames()
    assert {f["from"] for f in platform["files"]} == set(names) == {"kubectl-promdemo", "LICENSE"}
    (expression,) = platform["selector"]["matchExpressions"]
    assert expression == {"key": "os", "operator": "In", "values": ["linux", "darwin"]}


def test_the_archive_is_the_same_bytes_each_time(built: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert build(again).returncode == 0
    first = (built / "kubectl-promdemo.tar.gz").read_bytes()
    assert (again / "kubectl-promdemo.tar.gz").read_bytes() == first


def test_a_bad_version_is_a_usage_error(tmp_path: Path) -> None:
    result = build(tmp_path / "dist", version="v1.0")
    assert result.returncode == 2
    assert result.stderr == "usage: scripts/krew.py VERSION(X.Y.Z) URL_BASE OUT_DIR\n"
    assert not (tmp_path / "dist").exists()


def installed(built: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The archive unpacked as krew does, and a bin directory holding only kubectl."""
    plugin_dir = tmp_path / "krew-bin"
    # The "data" filter (no absolute paths, no links out) where this Python has it (3.11.4+).
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(built / "kubectl-promdemo.tar.gz") as tar:
        tar.extractall(plugin_dir, **safe)  # noqa: S202 (our own archive, filtered where possible)
    launcher = plugin_dir / "kubectl-promdemo"
    assert os.access(launcher, os.X_OK)
    assert 'version="9.8.7"' in launcher.read_text()
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "kubectl").symlink_to(require_binary("kubectl"))
    return plugin_dir, tools


def run_kubectl(path: list[Path], *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", *argv],
        env={"PATH": os.pathsep.join(map(str, path)), "HOME": str(path[0]), **env},
        executable=str(path[-1] / "kubectl"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_kubectl_runs_the_plugin_through_the_launcher(built: Path, tmp_path: Path) -> None:
    plugin_dir, tools = installed(built, tmp_path)
    listed = run_kubectl([plugin_dir, tools], "plugin", "list")
    assert str(plugin_dir / "kubectl-promdemo") in listed.stdout
    result = run_kubectl([plugin_dir, tools], "promdemo", "--help", PROMDEMO_PYTHON=sys.executable)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: kubectl promdemo")


def test_without_promdemo_the_launcher_says_how_to_install_it(built: Path, tmp_path: Path) -> None:
    plugin_dir, tools = installed(built, tmp_path)
    result = run_kubectl([plugin_dir, tools], "promdemo", "doctor")
    assert result.returncode == 1
    assert re.fullmatch(
        r"kubectl promdemo: needs Python 3\.11\+ with promdemo 9\.8\.7 installed: pip install"
        r" 'promdemo\[all\] @ git\+https://github\.com/promdemo/promdemo@v9\.8\.7'"
        r" \(or set PROMDEMO_PYTHON to the Python that has it\)\n",
        result.stderr,
    ), result.stderr
