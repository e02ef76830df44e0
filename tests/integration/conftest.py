"""Fixtures of the integration tier shared by its modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.local_run import LocalRun


@pytest.fixture
def local_run(tmp_path: Path) -> Iterator[Callable[..., LocalRun]]:
    """Start `promdemo local ARGS` runs; every one still running is stopped at the end."""
    runs: list[LocalRun] = []

    def start(*args: str, env: dict[str, str] | None = None) -> LocalRun:
        run = LocalRun(tmp_path, *args, env=env)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.close()
