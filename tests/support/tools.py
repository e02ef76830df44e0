"""Real components a test needs (Prometheus, promtool, kind, ...).

A test that needs one skips with the reason when it is missing, except when
PROMDEMO_REQUIRE_TOOLS=1 (set by .ci/run): there a missing Prometheus or
promtool is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRED_IN_CI = {"prometheus", "promtool", "prometheus-alertmanager", "kubectl"}


def require_binary(name: str) -> str:
    """Path of the binary `name`; skip (or fail in CI) when it is not on PATH."""
    path = shutil.which(name)
    if path:
        return path
    reason = f"{name} is not installed (apt-get install prometheus prometheus-alertmanager)"
    if os.environ.get("PROMDEMO_REQUIRE_TOOLS") == "1" and name in REQUIRED_IN_CI:
        pytest.fail(f"{reason}; PROMDEMO_REQUIRE_TOOLS=1 makes this a failure")
    pytest.skip(reason)
    raise AssertionError("unreachable")  # pragma: no cover
