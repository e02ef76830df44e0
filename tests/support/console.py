"""Run the installed `promdemo` console script as a user would, and capture what it says."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def promdemo_exe() -> str:
    """The `promdemo` script of this interpreter's environment (else the one on PATH)."""
    beside = Path(sys.executable).with_name("promdemo")
    found = str(beside) if beside.exists() else shutil.which("promdemo")
    if not found:
        pytest.fail("the promdemo console script is not installed (pip install -e '.[dev]')")
    return found


def promdemo(
    *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`promdemo ARGS`, its exit code, stdout and stderr."""
    return subprocess.run(
        [promdemo_exe(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
