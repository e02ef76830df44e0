"""Hostile YAML given to the CLI: one line on stderr and exit 2, never a long run or a traceback.

Before: a 9-level alias bomb in `metadata.name` ran `promdemo render` for 27 s
into a MemoryError at 2.2 GB; one in a Prometheus `matchExpressions` made
`check-selection` print a 226 MB line; a non-UTF-8 file was a traceback with
exit 1; 5,000 nested `[` a 3,001-line RecursionError.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from promdemo_operator.cli.commands.yaml_input import (
    MAX_DEPTH,
    MAX_INPUT_BYTES,
    InputError,
    read_documents,
)
from tests.support.console import promdemo

pytestmark = pytest.mark.timeout(120)


def alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": each level a list of nine aliases of the one before."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def promdemo_named_by(bomb: str, levels: int = 9) -> str:
    return (
        bomb.replace("\n", "\n  ").join(["x:\n  ", ""])
        + f"apiVersion: promdemo.dev/v1alpha1\nkind: PromDemo\nmetadata:\n  name: *a{levels}\n"
    )


def prometheus_selecting_by(bomb: str, levels: int = 9) -> str:
    return (
        bomb.replace("\n", "\n  ").join(["x:\n  ", ""])
        + "apiVersion: monitoring.coreos.com/v1\nkind: Prometheus\n"
        + "metadata: {name: p, namespace: monitoring}\nspec:\n  serviceMonitorSelector:\n"
        + f"    matchExpressions: [{{key: a, operator: In, values: *a{levels}}}]\n"
    )


HOSTILE = {
    "alias bomb in metadata.name": (promdemo_named_by(alias_bomb()).encode(), "aliases expand"),
    "deep nesting": (b"[" * 5000 + b"]" * 5000, "nested more than"),
    "not UTF-8": (b"apiVersion: v1\nkind: \xff\xfe PromDemo\n", "not UTF-8"),
    "huge input": (b"# " + b"x" * (MAX_INPUT_BYTES + 10) + b"\n", "larger than"),
}


def one_line_exit_2(result, needle: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert needle in lines[0]
    assert len(lines[0]) < 300
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", HOSTILE)
def test_render_refuses_hostile_yaml_with_one_line(name: str, tmp_path: Path) -> None:
    content, needle = HOSTILE[name]
    path = tmp_path / "in.yaml"
    path.write_bytes(content)
    result = promdemo("render", "-f", str(path), "--token", "x", timeout=60)
    one_line_exit_2(result, needle)
    assert result.stdout == ""


def test_check_selection_refuses_an_alias_bomb_in_match_expressions(tmp_path: Path) -> None:
    prometheus = tmp_path / "prometheus.yaml"
    prometheus.write_text(prometheus_selecting_by(alias_bomb()))
    shop = tmp_path / "shop.yaml"
    shop.write_text(
        "apiVersion: promdemo.dev/v1alpha1\nkind: PromDemo\n"
        "metadata: {name: shop, namespace: demo}\n"
    )
    result = promdemo(
        "check-selection", "-f", str(shop), "--prometheus", str(prometheus), timeout=60
    )
    one_line_exit_2(result, "aliases expand")
    assert len(result.stdout) < 10_000


def test_stdin_is_bounded_too() -> None:
    result = promdemo("render", "-f", "-", "--token", "x", stdin="[" * 5000, timeout=60)
    one_line_exit_2(result, "nested more than")


def test_ordinary_aliases_and_nesting_are_still_read() -> None:
    text = "base: &b {team: shop}\nlabels: *b\nother: *b\n" + "n: " + "[" * 20 + "]" * 20 + "\n"
    (doc,) = read_documents("-", io.StringIO(text))
    assert doc["labels"] == {"team": "shop"}
    with pytest.raises(InputError, match="nested more than"):
        read_documents("-", io.StringIO("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)))
