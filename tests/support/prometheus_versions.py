"""The two Prometheus versions the rules tests and the lessons' tests run on.

- Prometheus 2: Debian's `prometheus` and `promtool` (2.42 on bookworm), on PATH;
- Prometheus 3: `prometheus` and `promtool` built from the Go module by
  hack/upstream/build.sh (tests/support/upstream.py finds them).

`MAJORS` parametrizes a test; its ids (`promtool2`, `prometheus3`, ...) name the
version in the test id. A binary that is missing skips with the reason (fails
under PROMDEMO_REQUIRE_TOOLS=1, as tests/support/tools.py does); a binary of the
wrong major version (a Prometheus 3 first on PATH where Debian's 2.x is
expected) skips or fails the same way, naming what it found.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess

import pytest

from tests.support.tools import require_binary
from tests.support.upstream import require_upstream

MAJORS = (2, 3)


def params(binary: str) -> list[object]:
    """`pytest.param(2, id="promtool2"), pytest.param(3, id="promtool3")` for `binary`."""
    return [pytest.param(major, id=f"{binary}{major}") for major in MAJORS]


@functools.cache
def version_of(path: str) -> str:
    """`2.42.0+ds` or `3.16.0`, from `<path> --version` (its first line)."""
    result = subprocess.run(
        [path, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    first = (result.stdout or result.stderr).splitlines()[:1]
    match = re.search(r"version (\S+)", first[0] if first else "")
    return match.group(1) if match else ""


def major_of(version: str) -> int | None:
    match = re.match(r"v?(\d+)\.", version)
    return int(match.group(1)) if match else None


def _require(binary: str, major: int) -> str:
    """Path of `binary` (prometheus or promtool) of Prometheus `major`."""
    if major == 2:
        path = require_binary(binary)
        where = "on PATH"
    else:
        path = str(require_upstream("prometheus", binary))
        where = "built by hack/upstream/build.sh"
    version = version_of(path)
    if major_of(version) != major:
        reason = f"{binary} {where} ({path}) is version {version or '?'}, not {major}.x"
        if os.environ.get("PROMDEMO_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{reason}; PROMDEMO_REQUIRE_TOOLS=1 makes this a failure")
        pytest.skip(reason)
    return path


def promtool(major: int) -> str:
    """promtool of Prometheus `major` (2: Debian's on PATH; 3: the upstream build)."""
    return _require("promtool", major)


def prometheus(major: int) -> str:
    """prometheus of Prometheus `major` (2: Debian's on PATH; 3: the upstream build)."""
    return _require("prometheus", major)
