"""The Prometheus links `promdemo local` prints: the lessons' queries, one click each.

`LESSONS` holds the queries numbered as in docs/lessons.md (a test checks that
each numbered query is in the page); `graph_link` builds a Prometheus UI link
that opens a query.
"""

from __future__ import annotations

from urllib.parse import quote

#: The lessons' queries, numbered as in docs/lessons.md, shown as Prometheus UI links.
LESSONS: tuple[tuple[str, str], ...] = (
    ("1. rate of each histogram bucket", "rate(http_request_latency_seconds_bucket[5m])"),
    ("2. request rate", 'rate(http_request_latency_seconds_bucket{le="+Inf"}[5m])'),
    (
        "3. p95 latency",
        "histogram_quantile(0.95, sum by (le) (rate(http_request_latency_seconds_bucket[5m])))",
    ),
    (
        "4. median latency",
        "histogram_quantile(0.5, sum by (le) (rate(http_request_latency_seconds_bucket[5m])))",
    ),
    (
        "5. average latency",
        "rate(http_request_latency_seconds_sum[5m]) / rate(http_request_latency_seconds_count[5m])",
    ),
    (
        "6. order success ratio",
        'sum(rate(orders_total{result="success"}[5m])) / sum(rate(orders_total[5m]))',
    ),
    ("7. why orders failed", "sum by (reason) (increase(order_failures_total[5m]))"),
    ("8. peak concurrency", "max_over_time(http_requests_in_progress[1m])"),
    ("9. the oversell: replicas below zero", "product_inventory < 0"),
    ("10. successful orders in 30m", 'increase(orders_total{result="success"}[30m])'),
    ("inventory per replica", "product_inventory"),
    ("heals so far", "inventory_resets_total"),
)


def graph_link(prometheus_url: str, expr: str) -> str:
    """A Prometheus UI link that opens `expr` (in the Graph tab: `g0.tab=0`)."""
    return f"{prometheus_url}/graph?g0.expr={quote(expr, safe='')}&g0.tab=0"


def lesson_links(prometheus_url: str) -> list[tuple[str, str, str]]:
    """(title, query, link) for every lesson query."""
    return [(title, expr, graph_link(prometheus_url, expr)) for title, expr in LESSONS]
