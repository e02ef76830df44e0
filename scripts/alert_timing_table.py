#!/usr/bin/env python3
"""When does an alert fire? Measure it with promtool for evaluation intervals x `for`.

For each evaluation interval, one `promtool test rules` run holds an alert per
`for` value and per phase (the condition turns true exactly at an evaluation,
or 1 s after one). The time each alert first went pending and first fired is
read back from the ALERTS series that Prometheus's rule engine writes:

    min_over_time(timestamp(ALERTS{alertname="...", alertstate="firing"})[55m:1s])

The first run expects nothing, so promtool prints what it got; a second run
expects exactly those numbers and must pass, so every number in the table is
one that promtool agreed to. All of it is done with every promtool given: by
default Debian's promtool 2.x on PATH and promtool 3.x built by
hack/upstream/build.sh (Prometheus 2's closed range selectors and 3's
left-open ones); the table is written only when all of them agree.

    python scripts/alert_timing_table.py            # print the table
    python scripts/alert_timing_table.py --write    # update docs/alert-timing.md
    python scripts/alert_timing_table.py --promtool /path/to/promtool   # only that one

tests/rules/test_alert_timing_table.py checks that the committed table equals
what this script produces now.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "alert-timing.md"
BEGIN = "<!-- BEGIN alert-timing-table (scripts/alert_timing_table.py --write) -->"
END = "<!-- END alert-timing-table -->"

INTERVALS = ["15s", "30s", "1m", "2m", "5m"]
FORS = ["0s", "30s", "1m", "5m", "10m"]
PHASES = {"at": 0, "after": 1}  # seconds after an evaluation at which the condition turns true
START = 30 * 60  # the condition turns true at 30m (+ phase); 30m is on every interval's grid
END_TIME = 55 * 60  # long enough for 10m of `for` plus two 5m intervals

_GOT = re.compile(r"got: \{([^}]*)\} (\S+)")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Timing:
    interval: str
    for_: str
    phase: str
    pending: float | None  # seconds after the condition turned true; None: never pending
    firing: float | None


def seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+)([smh])", duration)
    return sum(int(n) * units[u] for n, u in parts)


def fmt(value: float | None) -> str:
    """Seconds as `5m`, `5m59s`, `0s`; `—` for never."""
    if value is None:
        return "—"
    total = round(value)
    minutes, secs = divmod(total, 60)
    if minutes and secs:
        return f"{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def alert_name(for_: str, phase: str) -> str:
    return f"Cond_{phase}_for_{for_}"


def _rules() -> dict:
    rules = [
        {"alert": alert_name(f, phase), "expr": f"cond_{phase} == 1", "for": f}
        for phase in PHASES
        for f in FORS
    ]
    return {"groups": [{"name": "timing", "rules": rules}]}


def _query(name: str, state: str) -> str:
    return (
        f'min_over_time(timestamp(ALERTS{{alertname="{name}", alertstate="{state}"}})'
        f"[{END_TIME // 60}m:1s])"
    )


def _tests(interval: str, expected: dict[tuple[str, str], float] | None) -> dict:
    series = []
    for phase, offset in PHASES.items():
        zeros = START + offset  # samples at 0s .. START+offset-1s are 0
        ones = END_TIME - zeros  # then 1 until END_TIME
        series.append({"series": f"cond_{phase}", "values": f"0x{zeros - 1} 1x{ones}"})
    expr_tests = []
    for phase in PHASES:
        for f in FORS:
            name = alert_name(f, phase)
            for state in ("pending", "firing"):
                samples = []
                if expected is not None and (name, state) in expected:
                    samples = [
                        {
                            "labels": f'{{alertname="{name}", alertstate="{state}"}}',
                            "value": expected[(name, state)],
                        }
                    ]
                expr_tests.append(
                    {
                        "expr": _query(name, state),
                        "eval_time": f"{END_TIME // 60}m",
                        "exp_samples": samples,
                    }
                )
    return {
        "rule_files": ["rules.yml"],
        "evaluation_interval": interval,
        "tests": [{"interval": "1s", "input_series": series, "promql_expr_test": expr_tests}],
    }


def _promtool(promtool: str, workdir: Path, test: dict) -> subprocess.CompletedProcess[str]:
    (workdir / "test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
    return subprocess.run(
        [promtool, "test", "rules", "test.yml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )


def measure_interval(promtool: str, interval: str) -> list[Timing]:
    """Timings of every `for` and phase at one evaluation interval (two promtool runs)."""
    rules = _rules()
    with tempfile.TemporaryDirectory(prefix="alert-timing-") as tmp:
        workdir = Path(tmp)
        (workdir / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
        first = _promtool(promtool, workdir, _tests(interval, None))
        got: dict[tuple[str, str], float] = {}
        for labels, value in _GOT.findall(first.stdout + first.stderr):
            pairs = dict(_LABEL.findall(labels))
            got[(pairs["alertname"], pairs["alertstate"])] = float(value)
        if first.returncode == 0 or not got:
            raise RuntimeError(f"promtool reported no alerts at {interval}:\n{first.stdout}")
        # confirm: promtool must agree with exactly these numbers
        second = _promtool(promtool, workdir, _tests(interval, got))
        if second.returncode != 0:
            raise RuntimeError(f"promtool disagrees at {interval}:\n{second.stdout}")
    timings = []
    for f in FORS:
        for phase, offset in PHASES.items():
            name = alert_name(f, phase)
            became_true = START + offset
            pending = got.get((name, "pending"))
            firing = got.get((name, "firing"))
            timings.append(
                Timing(
                    interval=interval,
                    for_=f,
                    phase=phase,
                    pending=None if pending is None else pending - became_true,
                    firing=None if firing is None else firing - became_true,
                )
            )
    return timings


def measure(promtool: str) -> list[Timing]:
    return [t for interval in INTERVALS for t in measure_interval(promtool, interval)]


def version(promtool: str) -> str:
    """`promtool, version 3.16.0 (...)`: the first line of `promtool --version`."""
    result = subprocess.run(
        [promtool, "--version"], capture_output=True, text=True, timeout=30, check=True
    )
    return (result.stdout or result.stderr).splitlines()[0]


def measure_all(promtools: list[str]) -> str:
    """The table, measured with each promtool; ValueError when two of them differ."""
    tables = {f"{version(p)} ({p})": table(measure(p)) for p in promtools}
    if len(set(tables.values())) != 1:
        raise ValueError(
            "the promtools give different tables:\n"
            + "\n".join(f"{name}:\n{text}" for name, text in tables.items())
        )
    return next(iter(tables.values()))


def default_promtools() -> list[str]:
    """promtool on PATH (Debian's 2.x) and the one hack/upstream/build.sh built (3.x)."""
    found = [shutil.which("promtool")]
    bin_dir = subprocess.run(
        [str(ROOT / "hack" / "upstream" / "build.sh"), "--print-bin", "prometheus"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout.strip()
    if bin_dir and (Path(bin_dir) / "promtool").is_file():
        found.append(str(Path(bin_dir) / "promtool"))
    return [p for p in found if p]


def table(timings: list[Timing]) -> str:
    by_key = {(t.interval, t.for_, t.phase): t for t in timings}
    lines = [
        "| evaluation_interval | for | condition true at an evaluation: pending after"
        " | … firing after | condition true 1s after an evaluation: pending after"
        " | … firing after |",
        "|---|---|---|---|---|---|",
    ]
    for interval in INTERVALS:
        for f in FORS:
            at = by_key[(interval, f, "at")]
            after = by_key[(interval, f, "after")]
            lines.append(
                f"| {interval} | {f} | {fmt(at.pending)} | **{fmt(at.firing)}** "
                f"| {fmt(after.pending)} | **{fmt(after.firing)}** |"
            )
    return "\n".join(lines) + "\n"


def render_doc(doc_text: str, new_table: str) -> str:
    """`doc_text` with the part between the markers replaced by `new_table`."""
    head, sep, rest = doc_text.partition(BEGIN)
    if not sep or END not in rest:
        raise ValueError(f"{DOC} lacks the markers {BEGIN!r} ... {END!r}")
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{new_table}{END}{tail}"


def committed_table(doc_text: str) -> str:
    _, _, rest = doc_text.partition(BEGIN)
    body, _, _ = rest.partition(END)
    return body.lstrip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    parser.add_argument(
        "--promtool",
        action="append",
        help="a promtool to measure with (repeatable; default: promtool on PATH and "
        "the one hack/upstream/build.sh built)",
    )
    args = parser.parse_args(argv)
    promtools = args.promtool or default_promtools()
    if not promtools:
        parser.error("no promtool found: install prometheus or pass --promtool")
    for promtool in promtools:
        sys.stderr.write(f"measuring with {version(promtool)}\n")
    result = measure_all(promtools)
    if args.write:
        DOC.write_text(render_doc(DOC.read_text(), result))
    else:
        sys.stdout.write(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
