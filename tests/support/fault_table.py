"""The fault table of docs/operator.md: figures measured by tests/cluster/test_faults.py.

Each row of tests/cluster/test_faults.py measures one fault on the real control
plane and records its figures with `record(row, figures)`: into
`docs/faults.json` when `PROMDEMO_FAULT_TABLE=1` (a run made to refresh the
docs), else into a file of the test's own (the figures are still computed and
checked). `render(rows)` is the markdown table; `update_docs()` puts it in
docs/operator.md between two markers, and tests/unit/project/test_fault_table_docs.py
checks that the docs show exactly what the JSON holds.

    PROMDEMO_FAULT_TABLE=1 python -m pytest -m cluster tests/cluster/test_faults.py
    python -m tests.support.fault_table      # docs/faults.json -> docs/operator.md
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "docs" / "faults.json"
DOCS = ROOT / "docs" / "operator.md"
BEGIN = "<!-- fault table: generated from docs/faults.json by tests/support/fault_table.py -->"
END = "<!-- end of the fault table -->"

#: The table's columns: (key in a row's figures, heading).
COLUMNS = (
    ("fault", "fault"),
    ("resets", "resets per pod"),
    ("double_resets", "double resets within cooldown"),
    ("shortest_gap", "shortest gap between resets of a pod"),
    ("events", "InventoryReset Events"),
    ("status_writes", "status writes"),
    ("recovery", "time to recover"),
    ("failover", "failover (→ first heal check)"),
    ("stuck", "stuck or unhealed after"),
)


def _target() -> Path | None:
    return FIGURES if os.environ.get("PROMDEMO_FAULT_TABLE") == "1" else None


def record(row: str, figures: Mapping[str, Any], path: Path | None = None) -> Path:
    """Store `figures` as row `row` (replacing an older measure of it); the file written."""
    path = path or _target() or Path(os.environ.get("TMPDIR", "/tmp")) / "promdemo-faults.json"
    rows = load(path)
    rows[row] = dict(figures)
    path.write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    return path


def load(path: Path = FIGURES) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    return str(value).replace("|", "\\|")


def render(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """The markdown table, one line per row in row order (rows are named `NN-...`)."""
    lines = [
        "| " + " | ".join(h for _, h in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for name in sorted(rows):
        figures = rows[name]
        lines.append("| " + " | ".join(_cell(figures.get(k)) for k, _ in COLUMNS) + " |")
    return "\n".join(lines)


def docs_block(rows: Mapping[str, Mapping[str, Any]]) -> str:
    return f"{BEGIN}\n{render(rows)}\n{END}"


def current_block(text: str) -> str | None:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return None
    return text[start : end + len(END)]


def update_docs(figures: Path = FIGURES, docs: Path = DOCS) -> bool:
    """Put the table of `figures` into `docs`; True when the docs changed."""
    text = docs.read_text()
    block = current_block(text)
    if block is None:
        raise SystemExit(f"{docs}: the fault table's markers are missing")
    new = text.replace(block, docs_block(load(figures)))
    if new == text:
        return False
    docs.write_text(new)
    return True


if __name__ == "__main__":  # pragma: no cover
    changed = update_docs()
    print(f"{DOCS.relative_to(ROOT)}: {'updated' if changed else 'unchanged'}", file=sys.stderr)
