"""The lessons of docs/lessons.md as data: their setup, their queries, their links.

`promdemo local --lessons` runs the SETUP below and prints LESSONS as links into
the Prometheus UI; tests/integration/test_lessons.py checks the page's numbers
against that run, and scripts/lessons_screenshots.py draws one picture per
query. The page's ```promql blocks are exactly the `expr`s of LESSONS, in order
(a test compares them).

Plain Python: no I/O here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from promdemo_operator.core.duration import parse_duration


@dataclass(frozen=True)
class LessonsSetup:
    """What the page's numbers assume: one fresh replica, no heal, one burst."""

    replicas: int = 1
    #: scrape and evaluation interval: the bound of the extrapolation (lessons 2, 7, 10)
    scrape_interval: str = "1s"
    #: Prometheus scrapes the all-zero counters this long before the burst: from the
    #: zero rate() counts the whole burst (a first sample is no increase) and, exact at
    #: a scrape, does not extrapolate back; and NoSuccessOrders goes pending
    quiet_seconds: float = 15.0
    burst_orders: int = 300
    burst_concurrency: int = 300
    #: the app's default stock, which the replica keeps (docs/app.md)
    initial_inventory: int = 100

    @property
    def scrape_seconds(self) -> float:
        return parse_duration(self.scrape_interval)


SETUP = LessonsSetup()


@dataclass(frozen=True)
class LessonQuery:
    lesson: int
    title: str
    expr: str


LESSONS: tuple[LessonQuery, ...] = (
    LessonQuery(
        1, "rate of each histogram bucket", "rate(http_request_latency_seconds_bucket[5m])"
    ),
    LessonQuery(
        2,
        "request rate, from the +Inf bucket",
        'rate(http_request_latency_seconds_bucket{le="+Inf"}[5m])',
    ),
    LessonQuery(
        3,
        "p95 latency",
        "histogram_quantile(0.95, sum by (le) (rate(http_request_latency_seconds_bucket[5m])))",
    ),
    LessonQuery(
        4,
        "median latency",
        "histogram_quantile(0.5, sum by (le) (rate(http_request_latency_seconds_bucket[5m])))",
    ),
    LessonQuery(
        5,
        "average latency",
        "rate(http_request_latency_seconds_sum[5m]) / rate(http_request_latency_seconds_count[5m])",
    ),
    LessonQuery(
        6,
        "order success ratio",
        'sum(rate(orders_total{result="success"}[5m])) / sum(rate(orders_total[5m]))',
    ),
    LessonQuery(7, "why orders failed", "sum by (reason) (increase(order_failures_total[5m]))"),
    LessonQuery(8, "peak concurrency", "max_over_time(http_requests_in_progress[1m])"),
    LessonQuery(9, "the oversell", "product_inventory < 0"),
    LessonQuery(9, "its alert", 'ALERTS{alertname="InventoryNegative"}'),
    LessonQuery(10, "successful orders in 30m", 'increase(orders_total{result="success"}[30m])'),
    LessonQuery(10, "the same per second", 'rate(orders_total{result="success"}[30m])'),
    LessonQuery(10, "delta of the inventory", "delta(product_inventory[30m])"),
    LessonQuery(10, "deriv of the inventory", "deriv(product_inventory[30m])"),
    LessonQuery(
        11, "NoSuccessOrders' condition", 'increase(orders_total{result="success"}[30m]) < 100'
    ),
    LessonQuery(11, "NoSuccessOrders", 'ALERTS{alertname="NoSuccessOrders"}'),
    LessonQuery(11, "the scrape itself (OrderServiceDown)", "up"),
    LessonQuery(12, "recorded success ratio", "job:orders_success_per_orders:ratio_rate5m"),
    LessonQuery(12, "recorded p95", "job:http_request_latency_seconds:p95_rate5m"),
    LessonQuery(13, "heals", "inventory_resets_total"),
)


def prometheus_major(version: str) -> int:
    """2 for `2.42.0+ds-5+deb12u1` (Debian's build), 3 for `3.1.0`; 2 when unreadable."""
    match = re.match(r"\s*v?(\d+)\.", version or "")
    return int(match.group(1)) if match else 2


def query_url(
    prometheus_url: str,
    expr: str,
    *,
    major: int = 2,
    tab: str = "table",
    range_input: str = "15m",
) -> str:
    """A link that opens `expr` in the Prometheus UI, in the table or the graph tab.

    Prometheus 2 serves its query page at /graph (Debian's build redirects it to
    /classic/graph, which reads the same parameters), Prometheus 3 at /query (its
    /graph redirects there). In both, `g0.tab=0` is the Graph tab and `1` the
    table (Prometheus 3 also reads `graph`/`table`, and calls numbers deprecated).
    """
    if tab not in ("table", "graph"):
        raise ValueError(f"tab must be table or graph, not {tab!r}")
    if major >= 3:
        path, tab_value = "/query", tab
    else:
        path, tab_value = "/graph", "1" if tab == "table" else "0"
    params = {"g0.expr": expr, "g0.tab": tab_value, "g0.range_input": range_input}
    return f"{prometheus_url.rstrip('/')}{path}?{urlencode(params, quote_via=quote, safe='')}"


def lesson_links(
    prometheus_url: str, *, major: int = 2, tab: str = "table"
) -> list[tuple[LessonQuery, str]]:
    """(query, link) for every lesson query."""
    return [(q, query_url(prometheus_url, q.expr, major=major, tab=tab)) for q in LESSONS]
