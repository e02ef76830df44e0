"""The Prometheus links `promdemo local` prints: the lessons' queries, one click each.

The queries are `lessons.LESSONS`, numbered as in docs/lessons.md (the page's
```promql blocks are exactly those, a test compares them); the links come from
`lessons.query_url`, which knows the query page of Prometheus 2 (/graph) and 3
(/query). A plain run prints one query per lesson in the Graph tab (watch the
load come and go); `--lessons` prints every query of the page in the table tab
(the numbers the page tells you to expect).
"""

from __future__ import annotations

from promdemo_operator.cli.lessons import LESSONS, LessonQuery, query_url


def first_of_each_lesson() -> list[LessonQuery]:
    """One query per lesson number: what a plain run links to."""
    seen: set[int] = set()
    chosen = []
    for q in LESSONS:
        if q.lesson not in seen:
            seen.add(q.lesson)
            chosen.append(q)
    return chosen


def lesson_links(
    prometheus_url: str, *, major: int = 2, every_query: bool = False
) -> list[tuple[str, str, str]]:
    """(title, query, link) per lesson, or for every query of the page with `every_query`.

    Plain runs open the Graph tab (`g0.tab=0`), `--lessons` the table (`g0.tab=1`).
    """
    queries = list(LESSONS) if every_query else first_of_each_lesson()
    tab = "table" if every_query else "graph"
    return [
        (
            f"{q.lesson}. {q.title}",
            q.expr,
            query_url(prometheus_url, q.expr, major=major, tab=tab),
        )
        for q in queries
    ]
