"""README's "Measured here" table, written from the benchmarks' JSON output, not typed.

    python bench/measured_table.py bench/figures/*.json            # print the table
    python bench/measured_table.py --write README.md bench/figures/*.json

Each input file is the last line a benchmark printed with `--json`:
`bench_operator.py` (the real API server; older files may hold a run on the emulated
API server, since removed, labelled so) and `bench_app.py`. The table goes
between the `<!-- measured-table:begin -->` and `<!-- measured-table:end -->` lines
of the file given to `--write`. Figures are the benchmarks' own: medians over their
rounds with the spread (min–max) beside where the rounds differed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

BEGIN = "<!-- measured-table:begin -->"
END = "<!-- measured-table:end -->"


def fig(
    r: dict[str, Any], key: str, unit: str = "", scale: float = 1.0, fmt: str = "{:.3g}"
) -> str:
    """`KEY` of a result, with its spread when the rounds differed."""
    value = r.get(key)
    if value is None:
        return "n/a"
    text = fmt.format(value * scale) + unit
    spread = r.get(f"{key}_spread")
    if spread:
        text += " (" + "–".join(fmt.format(v * scale) for v in spread) + ")"
    return text


def command(r: dict[str, Any]) -> str:
    if r.get("api", "real") != "real":
        return "`bench_operator.py`'s emulated run (removed with the emulator)"
    api = " --api real"
    rounds = "" if r["rounds"] == 5 else f" --rounds {r['rounds']}"
    limit = ""
    if r.get("kube_api_qps", "default") != "default":
        limit = f" --kube-api-qps {r['kube_api_qps']:g} --kube-api-burst {r['kube_api_burst']}"
    return (
        f"`python bench/bench_operator.py{api} --promdemos {r['promdemos']}"
        f" --pods {r['pods_per_promdemo']}{limit}{rounds} --json`"
    )


def label(r: dict[str, Any]) -> str:
    api = "real API server" if r.get("api") == "real" else "emulated API, since removed"
    if r.get("kube_api_qps", "default") != "default":
        api += f", API limit raised to {r['kube_api_qps']:g}/s"
    return f"{r['promdemos']:,} × {r['pods_per_promdemo']} ({api})"


def operator_rows(runs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    rows = []
    for r in runs:
        rows.append((
            f"the whole operator checking {r['pods_checked']:,} pods every"
            f" {r['heal_interval_seconds']:g} s, {label(r)}",
            f"**{fig(r, 'cpu_fraction_of_core_checking', ' %', 100, '{:.2f}')}** of one core,"
            f" **{fig(r, 'operator_cpu_us_per_pod_read', ' µs', fmt='{:.0f}')}** of CPU per pod"
            f" read ({r['rounds']} round{'s' if r['rounds'] > 1 else ''})",
            command(r),
        ))  # fmt: skip
    for r in runs:
        extra = ""
        if r.get("api") == "real":
            extra = (
                f"; {r['operator_requests_per_promdemo_reconcile']:g} operator requests per"
                " PromDemo; control plane CPU"
                f" {r['controlplane_cpu_ms_per_promdemo_reconcile']:.1f} ms per PromDemo"
            )
        not_ready = f"; **{r['not_ready']} never Ready**" if r.get("not_ready") else ""
        rows.append((
            f"{r['promdemos']:,} PromDemos applied → all Ready (children, Available), {label(r)}",
            f"**{r['reconciled_seconds']:.1f} s**; operator CPU"
            f" **{r['operator_cpu_ms_per_promdemo_reconcile']:.1f} ms** per PromDemo{extra}"
            f"{not_ready}",
            command(r),
        ))  # fmt: skip
    for r in runs:
        cp = ""
        if r.get("api") == "real":
            cp = (
                "; control plane CPU at rest "
                + fig(r, "controlplane_cpu_fraction_at_rest", " %", 100, "{:.2f}")
                + " of a core"
            )
        rows.append((
            f"API requests per second per PromDemo, at rest / under order traffic, {label(r)}",
            f"**{fig(r, 'api_requests_per_second_per_promdemo_at_rest', fmt='{:.3f}')}** /"
            f" {fig(r, 'api_requests_per_second_per_promdemo_under_traffic', fmt='{:.3f}')}{cp}",
            command(r),
        ))  # fmt: skip
    for r in runs:
        if r.get("api") != "real":
            continue
        rows.append((
            f"drift repair (a child deleted → a new one stored), {label(r)}",
            f"p50 {r['drift_repair_seconds_p50']:.3f} s, **p95 {r['drift_repair_seconds_p95']:.3f}"
            f" s** ({r['drift_repairs']} deletions)",
            command(r),
        ))  # fmt: skip
    for r in runs:
        per_pod = "n/a" if r["rss_kib_per_pod"] is None else f"{r['rss_kib_per_pod']:.2f} KiB"
        rows.append((
            f"RSS idle / per PromDemo with its pods / per pod, {label(r)}",
            f"idle **{r['idle_rss_mib']} MiB** (private {r['idle_private_mib']} MiB);"
            f" **{r['rss_mib_per_promdemo']:.3f} MiB** / {per_pod}",
            command(r),
        ))  # fmt: skip
    for r in runs[:1]:
        rows.append((
            "the pod's CPU per check (`GET /metrics?name[]=product_inventory`) / per Prometheus"
            " scrape of the whole page (gunicorn's worker)",
            f"**{fig(r, 'pod_cpu_ms_per_check', ' ms')}** /"
            f" {fig(r, 'pod_cpu_ms_per_full_scrape', ' ms')}",
            command(r),
        ))  # fmt: skip
    return rows


def app_rows(app: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(
        "what the app's metrics cost (gunicorn's worker; metrics on vs off, alternating rounds)",
        f"throughput: median of pairs {app['throughput_cost_median_of_pairs']:+.1%}"
        f" ({app['throughput_cost_min']:+.1%}–{app['throughput_cost_max']:+.1%});"
        f" CPU per order **{app['cpu_cost_fraction']:+.1%}**"
        + (f" ({app['cpu_cost_min']:+.1%}–{app['cpu_cost_max']:+.1%})" if "cpu_cost_min" in app
           else "")
        + f" ({app['cpu_us_per_order_off']:.0f} → {app['cpu_us_per_order_on']:.0f} µs)",
        f"`python bench/bench_app.py --seconds {app['seconds_per_server']:g}"
        f" --rounds {app['rounds']} --json`",
    )]  # fmt: skip


def table(results: list[dict[str, Any]]) -> str:
    operator = [r for r in results if "operator_cpu_us_per_pod_read" in r]
    operator.sort(key=lambda r: (r.get("api") != "real", r["promdemos"], r["pods_per_promdemo"]))
    rows = operator_rows(operator)
    for app in (r for r in results if "throughput_cost_fraction" in r):
        rows += app_rows(app)
    lines = ["| what | figure | command |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="JSON files (a benchmark's --json)")
    parser.add_argument("--write", type=Path, metavar="FILE", help="replace the table in FILE")
    args = parser.parse_args(argv)
    results = []
    for path in args.results:
        try:
            results.append(json.loads(path.read_text().strip().splitlines()[-1]))
        except (OSError, ValueError, IndexError) as e:
            print(f"measured_table.py: {path}: not a benchmark's JSON ({e})", file=sys.stderr)
            return 2
    text = table(results)
    if args.write is None:
        print(text, end="")
        return 0
    doc = args.write.read_text()
    if BEGIN not in doc or END not in doc:
        print(f"measured_table.py: {args.write}: no {BEGIN} ... {END} lines", file=sys.stderr)
        return 2
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    args.write.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
