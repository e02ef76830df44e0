"""A fresh clone and fresh venvs, as a new user has them (the `install` tier's fixtures).

`clone`: the checkout's files as `git clone` would give them (tracked files and
untracked ones git does not ignore), copied to a temporary folder, so that the
install's `build/` and `*.egg-info` never land in the developer's checkout and
nothing left over from an earlier install is there.

`user_venv`: `python -m venv`, then a plain, non-editable `pip install '.[all]'`
run from the clone's root; `tools_venv`: a venv with only pytest and its plugins
(promdemo's test tools, not promdemo). Both are made once per session and
removed at its end. Commands run with the clone's root as their working
directory and an environment like a user's shell after `source venv/bin/activate`:
no PYTHONPATH, no PYTHONSAFEPATH (it would hide the very shadowing this tier is
for), no PROMDEMO_* or PYTEST_* variables of the test run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_SECONDS = 180
PIP_INSTALL_SECONDS = 900  # ~1 min with a warm cache, several on a cold one
#: pip's own words when it cannot reach an index: the environment, not promdemo, is at fault.
OFFLINE = re.compile(
    r"NewConnectionError|Network is unreachable|Temporary failure in name resolution"
    r"|Name or service not known|ProxyError|Max retries exceeded"
)
_DROPPED = ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONSTARTUP", "VIRTUAL_ENV")


def _clone_files(root: Path) -> list[str]:
    """What a clone holds: git's tracked and untracked-not-ignored files (else every file)."""
    if (root / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout.decode()
        return [name for name in listed.split("\0") if name and (root / name).is_file()]
    skip = {".git", "build", "dist", "__pycache__", ".venv", ".pytest_cache", ".ruff_cache"}
    return [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file()
        and not skip.intersection(p.relative_to(root).parts)
        and not any(part.endswith(".egg-info") for part in p.parts)
    ]


@dataclass(frozen=True)
class Venv:
    """A virtual environment, and commands run in it from the clone's root."""

    path: Path
    cwd: Path

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def env(self) -> dict[str, str]:
        """A user's environment after activating this venv (see the module docstring)."""
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in _DROPPED and not key.startswith(("PROMDEMO_", "PYTEST_"))
        }
        # This venv first, and not the test run's own venv at all.
        own = str(Path(sys.executable).parent)
        path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != own]
        env["PATH"] = os.pathsep.join([str(self.bin), *path])
        env["VIRTUAL_ENV"] = str(self.path)
        return env

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`argv` as typed in a shell at the clone's root: `python`, `promdemo` are this venv's."""
        return subprocess.run(
            list(argv),
            cwd=self.cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _missing(reason: str, output: str) -> None:
    """Skip for what this machine lacks (fail instead under PROMDEMO_REQUIRE_TOOLS=1, as CI)."""
    if os.environ.get("PROMDEMO_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{reason}; PROMDEMO_REQUIRE_TOOLS=1 makes this a failure\n{output}")
    pytest.skip(reason)


def _tail(result: subprocess.CompletedProcess[str], lines: int = 25) -> str:
    return "\n".join((result.stdout + result.stderr).strip().splitlines()[-lines:])


def _create(path: Path, cwd: Path) -> Venv:
    """`python -m venv PATH` with the interpreter running the tests."""
    result = subprocess.run(
        [sys.executable, "-m", "venv", str(path)],
        capture_output=True,
        text=True,
        timeout=VENV_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        if "ensurepip" in result.stdout + result.stderr:  # Debian's python3 without python3-venv
            _missing(
                "python -m venv cannot install pip here (apt-get install python3-venv)",
                _tail(result),
            )
        pytest.fail(f"python -m venv failed ({result.returncode}):\n{_tail(result)}")
    return Venv(path, cwd)


def _pip_install(venv: Venv, requirements: Sequence[str]) -> None:
    """`python -m pip install REQUIREMENTS` in the venv; skip when no index can be reached."""
    result = venv.run("python", "-m", "pip", "install", *requirements, timeout=PIP_INSTALL_SECONDS)
    if result.returncode == 0:
        return
    if OFFLINE.search(result.stdout + result.stderr):
        _missing(
            f"pip cannot reach a package index to install {' '.join(requirements)}", _tail(result)
        )
    pytest.fail(
        f"pip install {' '.join(requirements)} failed ({result.returncode}):\n{_tail(result)}"
    )


@pytest.fixture(scope="session")
def install_dir() -> Iterator[Path]:
    """One temporary folder for the clone and the venvs, removed at the end (~300 MB)."""
    with tempfile.TemporaryDirectory(prefix="promdemo-install-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def clone(install_dir: Path) -> Path:
    """A copy of the checkout as a fresh `git clone` of it would be."""
    target = install_dir / "promdemo"
    for name in _clone_files(ROOT):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    return target


@pytest.fixture(scope="session")
def user_venv(install_dir: Path, clone: Path) -> Venv:
    """A new venv with `pip install '.[all]'` of the clone, as the README says."""
    venv = _create(install_dir / "venv", clone)
    _pip_install(venv, [".[all]"])
    return venv


def _pytest_requirements() -> list[str]:
    """pytest and its plugins as promdemo's [dev] extra pins them."""
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return [r for r in dev["dev"] if r.startswith("pytest")]


@pytest.fixture(scope="session")
def tools_venv(install_dir: Path, clone: Path) -> Venv:
    """A new venv with pytest and its plugins, and without promdemo."""
    venv = _create(install_dir / "tools-venv", clone)
    _pip_install(venv, _pytest_requirements())
    return venv
