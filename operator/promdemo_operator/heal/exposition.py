"""What a pod says, checked as untrusted input: its `/metrics` page and its reset answer.

A tenant controls `spec.image`, so a pod can answer anything. The page is
scanned as it arrives (`InventoryScanner.feed`, one chunk at a time): the search
for ``product_inventory`` lines is done by ``bytes.find`` in C, only those lines
are kept (a bounded number, each of bounded length) and only they reach
prometheus_client's parser, so a huge page costs a C scan, never a Python loop
over its lines, and memory stays at one chunk. The rules:

* the value is that of the ``product_inventory`` samples (the app exposes one,
  unlabelled); several series (distinct label sets) give their lowest value,
  as ``product_inventory < 0`` fires when any of them is below;
* the same series twice (e.g. ``5`` and ``-3``), NaN, ±Inf, a value beyond
  ±2**53 (not an exact count; the API server could not store it as int64), a
  page that does not start like a text exposition, an over-long or non-UTF-8
  ``product_inventory`` line: `ExpositionError` ``garbage``;
* a value Prometheus's own parser refuses although Python's ``float`` takes it:
  non-ASCII digits (``-٥``, ``５``), surrounding junk: ``garbage`` too (the
  value must be an ASCII float, as Prometheus's text lexer reads it), so the
  operator never acts on a number Prometheus would not have;
* no ``product_inventory`` sample: `ExpositionError` ``missing``.

A reset answer must be a JSON object whose ``inventory`` is a finite number in
the same range (`parse_reset_answer`); ``NaN``/``Infinity`` are refused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

METRIC = "product_inventory"
#: Largest magnitude accepted as an inventory: exact in a float and an int64.
MAX_MAGNITUDE = 2**53
#: A `product_inventory` line longer than this is not the app's (its line is ~25 bytes).
MAX_LINE_BYTES = 4096
#: More `product_inventory` samples than this on one page: not the app's page.
MAX_SAMPLES = 64

_METRIC_BYTES = METRIC.encode()
_NEEDLE = b"\n" + _METRIC_BYTES
# What follows the metric name on a sample line (anything else is another metric,
# e.g. `product_inventory_extra`).
_AFTER_NAME = (b" ", b"{", b"\t")
_NAME_START = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:#")
_WHITESPACE = b" \t\r\n"
# A sample's value as Prometheus's text parser takes it (Go's ParseFloat, ASCII only);
# hexadecimal floats, which Go also takes, are left out: Python's float refuses them.
_VALUE = re.compile(
    rb"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf|infinity))|(?i:nan)"
)
_TIMESTAMP = re.compile(rb"-?[0-9]+")


class ExpositionError(ValueError):
    """A pod's answer that gives no usable inventory; `reason` is `missing` or `garbage`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def check_value(value: float, what: str = METRIC) -> float:
    """`value` if it can be an inventory (finite, |value| <= 2**53), else `ExpositionError`."""
    if not math.isfinite(value):
        raise ExpositionError("garbage", f"{what} is {value}")
    if abs(value) > MAX_MAGNITUDE:
        raise ExpositionError("garbage", f"{what} {value:g} is out of range")
    return value


class InventoryScanner:
    """Finds `product_inventory` in a text exposition fed chunk by chunk.

    Holds at most one incomplete line that could be a `product_inventory`
    line (<= `MAX_LINE_BYTES`) plus the matched lines (<= `MAX_SAMPLES`);
    everything else is looked at by ``bytes.find`` only and dropped.
    """

    __slots__ = ("_carry", "_first_seen", "_lines", "_skipping", "bytes_seen")

    def __init__(self) -> None:
        self._carry = b""  # the start of the current line, when it may be a sample line
        self._skipping = False  # inside an irrelevant line: drop bytes up to its newline
        self._first_seen = False  # the first non-blank byte was checked
        self._lines: list[bytes] = []
        self.bytes_seen = 0

    def feed(self, chunk: bytes) -> None:
        """Scan one chunk of the page; raises `ExpositionError` as soon as it is garbage."""
        if not chunk:
            return
        self.bytes_seen += len(chunk)
        if not self._first_seen:
            self._check_start(chunk)
        if self._skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                return
            chunk = chunk[nl + 1 :]
            self._skipping = False
        data = self._carry + chunk if self._carry else chunk
        end = data.rfind(b"\n")
        if end >= 0:
            self._collect(data, end + 1)
            rest = data[end + 1 :]
        else:
            rest = data
        self._keep_partial(rest)

    def finish(self) -> float:
        """The inventory of the whole page (call once, after the last chunk)."""
        if self._carry:  # a last line without a newline
            self._collect(self._carry + b"\n", len(self._carry) + 1)
            self._carry = b""
        if not self._lines:
            raise ExpositionError("missing", f"no {METRIC} sample")
        series: dict[tuple[tuple[str, str], ...], float] = {}
        labelled: list[bytes] = []
        for line in self._lines:
            value = _check_value_text(line)
            if line[len(_METRIC_BYTES) : len(_METRIC_BYTES) + 1] == b"{" or value is None:
                labelled.append(line)
                continue
            # The app's own line, `product_inventory 100`: ASCII, checked, read here (the
            # parser below costs ~20 µs per page, a fifth of a check's CPU).
            if () in series:
                raise ExpositionError("garbage", f"duplicate {METRIC} series")
            series[()] = check_value(float(value))
        if labelled:
            self._parse_labelled(labelled, series)
        if not series:
            raise ExpositionError("missing", f"no {METRIC} sample")
        return min(series.values())

    # -- internals ---------------------------------------------------------------

    @staticmethod
    def _parse_labelled(
        lines: list[bytes], series: dict[tuple[tuple[str, str], ...], float]
    ) -> None:
        """Samples with a label set (or unreadable): prometheus_client's parser decides."""
        try:
            text = b"\n".join(lines).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ExpositionError("garbage", f"{METRIC} line is not UTF-8") from e
        try:
            for family in text_string_to_metric_families(text + "\n"):
                for sample in family.samples:
                    if sample.name != METRIC:
                        continue
                    key = tuple(sorted(sample.labels.items()))
                    if key in series:
                        raise ExpositionError("garbage", f"duplicate {METRIC} series {key or ''}")
                    series[key] = check_value(float(sample.value))
        except ExpositionError:
            raise
        except Exception as e:
            raise ExpositionError("garbage", clip(str(e))) from e

    def _check_start(self, chunk: bytes) -> None:
        # A text exposition starts with a comment or a metric name: HTML, JSON and
        # binary answers are told apart here without reading the rest.
        stripped = chunk.lstrip(_WHITESPACE)
        if not stripped:
            return
        self._first_seen = True
        if stripped[0] not in _NAME_START:
            raise ExpositionError("garbage", "not a Prometheus text exposition")

    def _collect(self, data: bytes, end: int) -> None:
        """Keep the sample lines of `data[:end]` (which starts a line and ends with one)."""
        if data.startswith(_METRIC_BYTES):
            start = 0
        else:
            found = data.find(_NEEDLE, 0, end)
            start = found + 1 if found >= 0 else -1
        n = len(_METRIC_BYTES)
        while start >= 0:
            nl = data.find(b"\n", start, end)
            if data[start + n : start + n + 1] in _AFTER_NAME:
                if nl - start > MAX_LINE_BYTES:
                    raise ExpositionError("garbage", f"{METRIC} line longer than {MAX_LINE_BYTES}")
                self._lines.append(data[start:nl].rstrip(b"\r"))
                if len(self._lines) > MAX_SAMPLES:
                    raise ExpositionError("garbage", f"more than {MAX_SAMPLES} {METRIC} samples")
            found = data.find(_NEEDLE, nl, end)
            start = found + 1 if found >= 0 else -1

    def _keep_partial(self, rest: bytes) -> None:
        """Keep the incomplete last line only while it may still be a sample line."""
        n = len(_METRIC_BYTES)
        if len(rest) <= n:
            relevant = _METRIC_BYTES.startswith(rest)
        else:
            relevant = rest.startswith(_METRIC_BYTES) and rest[n : n + 1] in _AFTER_NAME
        if relevant and len(rest) > MAX_LINE_BYTES:
            raise ExpositionError("garbage", f"{METRIC} line longer than {MAX_LINE_BYTES}")
        if relevant:
            self._carry = rest
        else:
            self._carry = b""
            self._skipping = bool(rest)


def _check_value_text(line: bytes) -> bytes | None:
    """Refuse a sample line whose value (or timestamp) Prometheus would not read; the
    value's text, or None when the line is malformed in another way (the parser says how).

    Python's float() takes any Unicode digit (``float("-٥") == -5.0``); Prometheus's
    lexer takes ASCII only. The value and timestamp follow the label set's closing
    brace (neither may hold one), or the metric name on an unlabelled line.
    """
    if line[len(_METRIC_BYTES) : len(_METRIC_BYTES) + 1] == b"{":
        close = line.rfind(b"}")
        if close < 0:
            return None  # an unclosed label set: the parser refuses the line
        tail = line[close + 1 :]
    else:
        tail = line[len(_METRIC_BYTES) :]
    tokens = tail.split()
    if not tokens:
        return None  # no value: the parser refuses the line
    value, rest = tokens[0], tokens[1:]
    if not _VALUE.fullmatch(value) or len(rest) > 1 or not all(map(_TIMESTAMP.fullmatch, rest)):
        shown = clip(tail.strip().decode("utf-8", "replace"), 40)
        raise ExpositionError(
            "garbage", f"{METRIC} value {shown!r} is not a number Prometheus reads"
        )
    return value


def parse_inventory(text: str | bytes) -> float:
    """The `product_inventory` value of a whole text exposition (see `InventoryScanner`).

    Raises `ExpositionError` (a `ValueError`) whose message starts with
    ``missing:`` or ``garbage:``.
    """
    scanner = InventoryScanner()
    scanner.feed(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
    return scanner.finish()


def _refuse_constant(name: str) -> Any:
    raise ExpositionError("garbage", f"reset answer holds {name}")


def parse_reset_answer(body: bytes) -> float:
    """The ``inventory`` of a reset answer ``{"inventory": N}``; `ExpositionError` otherwise."""
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except ExpositionError:
        raise
    except (ValueError, RecursionError, UnicodeDecodeError) as e:
        raise ExpositionError("garbage", f"reset answer is not JSON: {clip(str(e))}") from e
    if not isinstance(data, dict) or "inventory" not in data:
        raise ExpositionError("garbage", "reset answer has no inventory")
    value = data["inventory"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExpositionError("garbage", "reset answer's inventory is not a number")
    try:
        number = float(value)
    except OverflowError as e:
        raise ExpositionError("garbage", "reset answer's inventory is out of range") from e
    return check_value(number, "reset answer's inventory")


def clip(text: str, limit: int = 120) -> str:
    """A pod-supplied text made safe for one log line: printable, short."""
    clean = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return clean + ("…" if len(text) > limit else "")


REDACTED = "<redacted>"
#: The shortest end of a secret cut off at a snippet's end that is still hidden.
_MIN_SECRET_PREFIX = 4
# What usually carries a credential in an error body: an echoed Authorization header,
# a bearer value, a token/password/secret field in JSON, a query or a form.
_CREDENTIAL = re.compile(
    r"""(?ix)
    (\bbearer\s+) [^\s"',;&}]+
    | ((?:token|password|passwd|secret|api[-_]?key)["']?\s*[:=]\s*["']?) [^\s"',;&}]+
    | (authorization["']?\s*[:=]\s*["']?(?:[a-z]+\s+)?) [^\s"',;&}]+
    """
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` (a pod's error answer) without the `secrets` it may echo, nor anything that
    looks like a credential (``Bearer …``, ``"token": "…"``, ``password=…``).

    A secret cut off at the end of `text` (a snippet ends inside it) is hidden too
    when at least 4 of its characters are there.
    """
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, REDACTED)
        for n in range(min(len(secret) - 1, len(text)), _MIN_SECRET_PREFIX - 1, -1):
            if text.endswith(secret[:n]):
                text = text[:-n] + REDACTED
                break
    return _CREDENTIAL.sub(lambda m: next(g for g in m.groups() if g) + REDACTED, text)
