"""What `kubectl get pd` prints for PromDemo objects, from the CRD's additionalPrinterColumns.

The API server computes the table (apiextensions-apiserver's tableconvertor: each
column's simple JSONPath against the object, the value converted by the column's
type, nothing printed as `<none>`, a date as kubectl's human duration) and kubectl
prints it: upper-case headers, columns separated by three spaces, a number as Go's
`%v` (its shortest form: `0.29`, `1`). This does the same for the JSONPaths the
PromDemo CRD uses: `.a.b` and `.a[?(@.k=="v")].b`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "promdemos.promdemo.dev.yaml"

#: One step of a simple JSONPath: `.field`, or `.field[?(@.key=="value")]`.
_STEP = re.compile(r'\.(?P<field>[^.\[]+)(?:\[\?\(@\.(?P<key>\w+)=="(?P<value>[^"]*)"\)\])?')
NONE = "<none>"


def printer_columns(*, wide: bool = False) -> list[dict[str, Any]]:
    """The CRD's columns kubectl shows (`-o wide` adds those with a priority)."""
    crd = yaml.safe_load(CRD.read_text())
    (version,) = crd["spec"]["versions"]
    return [c for c in version["additionalPrinterColumns"] if wide or not c.get("priority")]


def _find(obj: Any, path: str) -> Any:
    steps = list(_STEP.finditer(path))
    if "".join(m.group(0) for m in steps) != path:
        raise ValueError(f"not a simple JSONPath: {path}")
    node = obj
    for step in steps:
        node = node.get(step["field"]) if isinstance(node, Mapping) else None
        if step["key"] is not None:
            node = next(
                (i for i in node or [] if isinstance(i, Mapping)
                 and str(i.get(step["key"])) == step["value"]),
                None,
            )  # fmt: skip
        if node is None:
            return None
    return node


def go_number(value: float) -> str:
    """A float64 as Go's `%v` prints it (shortest round-trip form, no `.0`)."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def human_duration(seconds: float) -> str:
    """kubectl's age (apimachinery's duration.HumanDuration)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d" if rest == 0 else f"{days}d{rest}h"
    return f"{days}d"


def cell(obj: Mapping[str, Any], column: Mapping[str, Any], now: datetime) -> str:
    value = _find(obj, column["jsonPath"])
    kind = column["type"]
    if value is None:
        return NONE
    if kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(int(value))
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return go_number(value)
    if kind == "boolean" and isinstance(value, bool):
        return "true" if value else "false"
    if kind == "date" and isinstance(value, str):
        then = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return human_duration((now - then).total_seconds())
    if kind == "string":
        return str(value)
    return NONE


def table(
    objects: Iterable[Mapping[str, Any]], *, wide: bool = False, now: datetime | None = None
) -> list[str]:
    """The lines of `kubectl get pd` (`-o wide`) for `objects`."""
    now = now or datetime.now(UTC)
    columns = printer_columns(wide=wide)
    rows: list[Sequence[str]] = [["NAME", *(c["name"].upper() for c in columns)]]
    for obj in objects:
        rows.append([obj["metadata"]["name"], *(cell(obj, c, now) for c in columns)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
