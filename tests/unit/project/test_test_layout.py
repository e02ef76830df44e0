"""The tests' own layout: a helper shared between test files lives in tests/support/.

A test module importing another (`from tests.cluster.test_operator import ...`) runs
that module's tests' imports and fixtures with it, and hides what is shared; the
shared part belongs in a support module named for what it holds.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2]


def test_no_test_module_imports_another() -> None:
    wrong = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("tests.") and name.rpartition(".")[2].startswith("test_"):
                    wrong.append(f"{path.relative_to(TESTS.parent)}:{node.lineno} imports {name}")
    assert wrong == [], "\n".join(wrong)


def test_the_unit_tier_mirrors_the_package() -> None:
    # tests/unit/<layer>/test_<module>.py: no unit test file left at the tier's top.
    top = sorted(p.name for p in (TESTS / "unit").glob("test_*.py"))
    assert top == [], f"unit tests outside a layer folder: {top}"
