"""docs/alert-timing.md's table is what scripts/alert_timing_table.py measures with promtool now."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.prometheus_versions import params, promtool

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "alert_timing_table.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("alert_timing_table", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("major", params("promtool"))
def test_committed_table_equals_promtool_now(major: int) -> None:
    """Prometheus 2's closed and 3's left-open range selectors give the same table."""
    script = _script()
    measured = script.table(script.measure(promtool(major)))
    committed = script.committed_table(script.DOC.read_text(encoding="utf-8"))
    assert committed == measured, (
        f"docs/alert-timing.md is stale (promtool {major}): "
        "run python scripts/alert_timing_table.py --write"
    )


def test_the_alert_timing_articles_row_fires_5m_after_t0() -> None:
    """evaluation_interval 1m, for 5m: firing exactly 5m after T0 (tests/rules/article-*)."""
    script = _script()
    committed = script.committed_table(script.DOC.read_text(encoding="utf-8"))
    assert "| 1m | 5m | 0s | **5m** | 59s | **5m59s** |" in committed.splitlines()
