"""The PromQL of a lessons page (docs/lessons.md, its translation): its ```promql blocks,
each with its whitespace normalised as `normalize` does to any query."""

from __future__ import annotations

import re
from pathlib import Path

_BLOCK = re.compile(r"^```promql\n(.*?)^```", re.MULTILINE | re.DOTALL)


def normalize(query: str) -> str:
    return " ".join(query.split())


def doc_blocks(path: Path) -> list[str]:
    return [normalize(b) for b in _BLOCK.findall(path.read_text(encoding="utf-8"))]
