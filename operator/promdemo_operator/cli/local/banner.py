"""The lines `promdemo local` prints once everything answers: where each thing is.

The replicas' URLs, Prometheus and Alertmanager, the heal settings, the lessons'
queries as links (`links.py`), and the commands to load and to reset by hand.
Its last line, "promdemo local is ready", is what scripts and tests wait for.
"""

from __future__ import annotations

from pathlib import Path

from promdemo_operator.cli.local.links import lesson_links
from promdemo_operator.cli.local.options import HOST
from promdemo_operator.cli.local.session import DemoState
from promdemo_operator.core.duration import format_seconds as _s

READY_LINE = "promdemo local is ready; Ctrl-C stops everything."


def banner_lines(state: DemoState, *, token: str, workdir: Path) -> list[str]:
    """The banner of a demo whose replicas (and Prometheus, if any) are ready."""
    config = state.config
    if config.lessons:
        lines = [f"promdemo local --lessons: the setup of docs/lessons.md, on {HOST}"]
    else:
        lines = [f"promdemo local: {config.replicas} replica(s) on {HOST}"]
    for r in state.replicas:
        lines.append(f"  {r.name:<13} {r.url}   (POST /order, GET /inventory, /metrics)")
    if state.prometheus_url:
        lines.append(
            f"  {'Prometheus':<13} {state.prometheus_url}   (scrapes every "
            f"{_s(config.scrape_interval_seconds)}; rules {workdir / 'rules.yml'})"
        )
        lines.append(
            f"  {'':<13} Prometheus {state.prometheus_version or '(version unknown)'}: "
            f"{state.prometheus_binary} (--prometheus-bin chooses another)"
        )
    if state.alertmanager_url:
        lines.append(f"  {'Alertmanager':<13} {state.alertmanager_url}")
    if config.heal and config.lessons:
        lines.append(
            f"  {'heal':<13} paused: type heal and press Enter to turn it on (then every "
            f"{_s(config.interval_seconds)}, inventory < {config.threshold:g})"
        )
    elif config.heal:
        lines.append(
            f"  {'heal':<13} every {_s(config.interval_seconds)}: reset a replica whose "
            f"inventory < {config.threshold:g} for {_s(config.for_seconds)} "
            f"(cooldown {_s(config.cooldown_seconds)})"
        )
    else:
        lines.append(f"  {'heal':<13} off (--no-heal): reset by hand, see below")
    if state.prometheus_url:
        where = "table" if config.lessons else "graph"
        lines.append(
            f"The lessons' queries in Prometheus's {where} tab (explained in docs/lessons.md):"
        )
        for title, _, link in lesson_links(
            state.prometheus_url, major=state.prometheus_major, every_query=config.lessons
        ):
            lines.append(f"  {title}: {link}")
        if not state.prometheus_ui:
            lines.append(
                "  (this Prometheus answers 500 on its UI pages: a build from the Go module "
                "has no web UI assets; its HTTP API works: "
                f"{state.prometheus_url}/api/v1/query?query=up)"
            )
    first = state.replicas[0].url
    if config.lessons:
        lines.append(
            f"The burst goes out by itself. A second one (lesson 3):  promdemo load {first}"
        )
    else:
        lines.append(f"Load:  promdemo load {first}   (or: curl -X POST {first}/order)")
    lines.append(
        f"Reset by hand:  curl -X POST -H 'Authorization: Bearer {token}' {first}/inventory/reset"
    )
    lines.append(READY_LINE)
    return lines
