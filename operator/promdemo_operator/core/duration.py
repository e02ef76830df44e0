"""Durations, written as Prometheus writes them: `500ms`, `30s`, `5m`, `1m30s`, `1h`.

The one parser of the project: the spec, the rules, the Prometheus
configuration and the command-line options all read durations here, so a
duration that one of them accepts means the same to all of them.

The syntax is `^([0-9]+(ms|s|m|h))+$` with units largest first, each at most
once: what Prometheus accepts in a rule's `for` and a range selector (it
refuses `30s1m`, and so does this). A duration is at most `MAX_LENGTH`
characters and at most `MAX_TEXT` long (Prometheus holds durations as int64
nanoseconds and refuses longer ones as "duration out of range").
"""

from __future__ import annotations

import re

__all__ = [
    "DURATION_PATTERN",
    "MAX_LENGTH",
    "MAX_SECONDS",
    "MAX_TEXT",
    "DurationError",
    "format_seconds",
    "parse_duration",
]

#: The syntax of every duration (also the CRD's `pattern`).
DURATION_PATTERN = r"^([0-9]+(ms|s|m|h))+$"

#: Longest text read (also the CRD's `maxLength`). The longest duration Prometheus
#: holds, `2562047h47m16s854ms`, is 19 characters; the cap keeps int() of the digits
#: and the API server's validation cheap whatever a client sends.
MAX_LENGTH = 32

# Prometheus parses a duration into a Go time.Duration (int64 nanoseconds) and
# refuses what overflows it; counted here in whole milliseconds, the finest unit.
_MAX_MS = (2**63 - 1) // 1_000_000
#: The longest duration Prometheus accepts, in seconds and as text.
MAX_SECONDS = _MAX_MS / 1000
MAX_TEXT = "2562047h47m16s854ms"

_DURATION_RE = re.compile(DURATION_PATTERN)
_PART_RE = re.compile(r"([0-9]+)(ms|s|m|h)")
_UNIT_ORDER = ("h", "m", "s", "ms")
_UNIT_MS = (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))
_MS_PER_UNIT = dict(_UNIT_MS)


class DurationError(ValueError):
    """Not a duration; `message` is one line that starts with the field's name."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def parse_duration(text: object, *, field: str = "duration") -> float:
    """Seconds in a duration such as `500ms`, `30s`, `5m`, `1m30s` or `1h`.

    Raises DurationError naming `field` when `text` is not one, or is longer
    than Prometheus can hold.
    """
    if isinstance(text, str) and len(text) > MAX_LENGTH:
        raise DurationError(
            f"{field}: a duration is at most {MAX_LENGTH} characters, got {len(text)}", field=field
        )
    if not isinstance(text, str) or not _DURATION_RE.match(text):
        raise DurationError(
            f"{field}: {text!r} is not a duration like 500ms, 30s, 5m or 1m30s", field=field
        )
    # Whole milliseconds: exact, so the Prometheus limit is checked to the unit.
    total_ms = 0
    last = -1
    for number, unit in _PART_RE.findall(text):
        rank = _UNIT_ORDER.index(unit)
        if rank <= last:
            raise DurationError(
                f"{field}: {text!r} must list its units largest first, each once (h, m, s, ms)",
                field=field,
            )
        last = rank
        total_ms += int(number) * _MS_PER_UNIT[unit]
    if total_ms > _MAX_MS:
        raise DurationError(
            f"{field}: {text!r} is longer than Prometheus can hold (at most {MAX_TEXT})",
            field=field,
        )
    return total_ms / 1000


def format_seconds(seconds: float) -> str:
    """`seconds` in the same syntax, to the millisecond (`90` -> `1m30s`, `0.5` -> `500ms`)."""
    ms = round(seconds * 1000)
    if ms < 0:
        raise ValueError(f"negative duration: {seconds}")
    if ms == 0:
        return "0s"
    parts = []
    for unit, size in _UNIT_MS:
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
