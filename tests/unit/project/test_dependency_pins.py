"""pyproject.toml's dependency ranges and constraints.txt (the image's pins) agree.

The image installs exactly what constraints.txt pins and CI tests those versions;
a floor raised in pyproject.toml without `make constraints` would build an image
CI never tested, or one that does not install at all.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[3]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def runtime_requirements() -> list[Requirement]:
    """What the image installs: the base dependencies and the [operator] extra."""
    project = pyproject()["project"]
    return [
        Requirement(r)
        for r in project["dependencies"] + project["optional-dependencies"]["operator"]
    ]


def pins() -> dict[str, Version]:
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        if match:
            pinned[canonicalize_name(match[1])] = Version(match[2])
    return pinned


def test_every_runtime_dependency_is_pinned_inside_its_range() -> None:
    pinned = pins()
    for req in runtime_requirements():
        if req.name == "promdemo":
            continue
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not pinned in constraints.txt (make constraints)"
        assert req.specifier.contains(pinned[name]), (
            f"constraints.txt pins {req.name}=={pinned[name]}, outside {req.specifier} "
            "(make constraints)"
        )


def test_every_direct_dependency_has_a_floor_and_a_cap() -> None:
    project = pyproject()["project"]
    extras = project["optional-dependencies"]
    declared = project["dependencies"] + extras["operator"] + extras["dev"]
    for text in declared:
        req = Requirement(text)
        if req.name == "promdemo":
            continue
        operators = {spec.operator for spec in req.specifier}
        assert ">=" in operators, f"{text}: no floor"
    for text in project["dependencies"] + extras["operator"]:
        operators = {spec.operator for spec in Requirement(text).specifier}
        assert "<" in operators, f"{text}: a runtime dependency needs a cap on its next major"


def test_ci_tools_are_pinned_exactly() -> None:
    for text in pyproject()["project"]["optional-dependencies"]["ci"]:
        operators = [spec.operator for spec in Requirement(text).specifier]
        assert operators == ["=="], f"{text}: pin CI's tools"
