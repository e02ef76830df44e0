"""No dependency is used through its private names: an upgrade must not break the project.

The app once drove waitress's event loop through some 25 private names
(`active_channels`, `will_close`, a copied `handle_accept`); a patch release of
waitress changed two of them. This reads every Python file of the project and
flags `from <dependency> import _name` and any `x._name` where the project
itself defines no `_name` (so it can only be someone else's).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FIRST_PARTY = {"promdemo_app", "promdemo_operator", "tests", "bench"}
FOLDERS = ("app", "operator", "tests", "bench", "hack", "scripts")
# Documented public API despite the underscore.
PUBLIC_ANYWAY = {"_exit", "_replace", "_asdict", "_fields", "_make"}
# Private names of dependencies that the project defines too (so the check
# above cannot tell them apart), flagged on anything but `self`/`cls`.
SHARED_NAMES = {"_server", "_loop", "_runner", "_lock", "_thread", "_stop"}
# Known, with the reason; each entry is a debt, not a licence.
KNOWN = {
    "tests/support/prometheus.py": {"_lock"},
    # The CLI-arguments test walks argparse's (stdlib) parser to list every option.
    "tests/unit/core/test_cliargs.py": {"_actions", "_SubParsersAction"},
}


def project_files() -> list[Path]:
    files = [ROOT / "conftest.py"]
    for folder in FOLDERS:
        files += sorted((ROOT / folder).rglob("*.py"))
    return [f for f in files if f.exists()]


def defined_names(trees: dict[Path, ast.Module]) -> set[str]:
    """Every name the project binds itself (functions, classes, attributes, variables)."""
    names: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("self", "cls")
            ):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.alias) and node.asname:
                names.add(node.asname)
    return names


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in PUBLIC_ANYWAY


def violations(files: list[Path], root: Path = ROOT) -> list[str]:
    trees = {f: ast.parse(f.read_text(), filename=str(f)) for f in files}
    ours = defined_names(trees)
    found = []
    for path, tree in trees.items():
        rel = path.relative_to(root).as_posix()
        allowed = KNOWN.get(rel, set())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] in FIRST_PARTY:
                    continue
                for alias in node.names:
                    if private(alias.name) and alias.name not in allowed:
                        found.append(f"{rel}:{node.lineno}: from {node.module} import {alias.name}")
            elif (
                isinstance(node, ast.Attribute)
                and private(node.attr)
                and node.attr not in allowed
                and (
                    node.attr not in ours
                    or (
                        node.attr in SHARED_NAMES
                        and not (
                            isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
                        )
                    )
                )
            ):
                found.append(f"{rel}:{node.lineno}: .{node.attr}")
    return found


def test_no_private_name_of_a_dependency_is_used() -> None:
    assert violations(project_files()) == []


def test_the_check_finds_what_server_py_once_did(tmp_path: Path) -> None:
    (tmp_path / "server.py").write_text(
        "from waitress.server import _Listener\n"
        "from waitress import wasyncore\n"
        "class Mine:\n"
        "    def __init__(self):\n"
        "        self._own = 1\n"
        "wasyncore._exit_flag = Mine()._own\n"
    )
    assert violations([tmp_path / "server.py"], tmp_path) == [
        "server.py:1: from waitress.server import _Listener",
        "server.py:6: ._exit_flag",
    ]


def test_the_app_runs_on_no_waitress() -> None:
    for path in (ROOT / "app").rglob("*.py"):
        assert "waitress" not in path.read_text(), path
