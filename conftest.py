"""Checked before any test module is imported: are promdemo and its test tools installed?

`python -m pytest` from the clone's root in an environment without them would
otherwise stop at the first import of a missing module, far from the cause. The
tests import the installed packages (`pip install -e '.[dev]'`), never the
source folders.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

import pytest
from packaging.requirements import Requirement

PACKAGES = ("promdemo_app", "promdemo_operator")
INSTALL = "pip install -e '.[dev]' (from the clone's root), then run pytest again"


def _missing_test_tools() -> list[str]:
    """The distributions of promdemo's [operator] and [dev] extras that are not installed."""
    try:
        requires = importlib.metadata.requires("promdemo") or []
    except importlib.metadata.PackageNotFoundError:
        return []  # importable without its metadata: nothing to compare with
    missing = []
    for line in requires:
        requirement = Requirement(line)
        marker = requirement.marker
        if requirement.name == "promdemo" or marker is None:
            continue  # the extras' self-references, and the base install (checked above)
        if not any(marker.evaluate({"extra": extra}) for extra in ("operator", "dev")):
            continue
        try:
            importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement.name)
    return missing


def pytest_addoption(parser: pytest.Parser) -> None:
    # The earliest hook a conftest gets: pytest calls it as soon as this file is
    # loaded, before tests/conftest.py imports anything from the project.
    missing = [name for name in PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise pytest.UsageError(
            f"promdemo is not installed in this environment ({', '.join(missing)} not found):"
            f" {INSTALL}"
        )
    tools = _missing_test_tools()
    if tools:
        raise pytest.UsageError(
            f"promdemo's test tools are not installed in this environment"
            f" ({', '.join(tools)}): {INSTALL}"
        )
