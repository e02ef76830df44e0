"""docs/operator.md's fault table is what tests/cluster/test_faults.py measured (docs/faults.json).

Refresh both with:
    PROMDEMO_FAULT_TABLE=1 python -m pytest -m cluster tests/cluster/test_faults.py
    python -m tests.support.fault_table
"""

from __future__ import annotations

from pathlib import Path

from tests.support import fault_table


def test_the_docs_show_the_measured_figures_and_nothing_typed() -> None:
    rows = fault_table.load()
    assert rows, "docs/faults.json holds no measured row"
    block = fault_table.current_block(fault_table.DOCS.read_text())
    assert block == fault_table.docs_block(rows), (
        "docs/operator.md's fault table differs from docs/faults.json: "
        "run `python -m tests.support.fault_table`"
    )


def test_every_row_says_whether_a_pod_was_reset_twice_within_its_cooldown() -> None:
    for name, figures in fault_table.load().items():
        assert isinstance(figures.get("double_resets"), int), name
        assert figures.get("fault"), name


def test_update_docs_replaces_only_the_table(tmp_path: Path) -> None:
    figures = tmp_path / "faults.json"
    docs = tmp_path / "operator.md"
    fault_table.record("01-x", {"fault": "a | b", "double_resets": 0}, figures)
    docs.write_text(f"before\n{fault_table.BEGIN}\nold\n{fault_table.END}\nafter\n")
    assert fault_table.update_docs(figures, docs)
    text = docs.read_text()
    assert text.startswith("before\n")
    assert text.endswith("after\n")
    assert "| a \\| b | — | 0 |" in text
    assert not fault_table.update_docs(figures, docs)
