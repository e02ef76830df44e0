"""The operator says whether Prometheus selects, scrapes and evaluates each PromDemo.

The real operator process against the emulated API server with prometheus-operator's
Prometheus objects (kube-prometheus-stack's shape: tests/fixtures/prometheus/), and

1. a real Prometheus process behind the kube-prometheus-stack object, reached the way
   the operator reaches it in a cluster: through the API server's service proxy to the
   object's governing Service `prometheus-operated:web` (the emulator forwards it),
   scraping a real order-service process (which the test also stores as the
   PromDemo's one pod, as a kubelet would, for the heal loop). Not selected →
   `PrometheusSelected=False` with the label to add; the label added → True;
   Prometheus configured as prometheus-operator configures it → `TargetsUp`,
   `RulesLoaded`, `status.targets`; at rest the only requests are the proxy GETs; a
   burst of orders → `status.lessons` (p95, success ratio), which `kubectl get pd`
   shows: docs/operator.md's example is this test's table, compared column by column;
2. no Prometheus process (the proxy answers 503): the condition follows the
   PromDemo's labels, the Prometheus object's selectors and the namespace's labels at
   once, and `matchPrometheus: auto` adds the one able Prometheus's label and refuses
   to guess between two.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from promdemo_operator.cli.load import run_load
from tests.operator import scenarios as sc
from tests.operator.test_doctor import POD, play_prometheus_operator
from tests.support.kmock_cluster import DEPLOYMENTS, PROMDEMOS, ApiCall, KmockCluster
from tests.support.printer_columns import table
from tests.support.prometheus import run_prometheus

pytestmark = pytest.mark.operator

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "operator.md"
NS = sc.NS
NAME = "shop"
HOURS = 6 * 3600.0
#: What this test gives `--prometheus-interval` (its Prometheus evaluates every second).
INTERVAL = "1s"
#: The columns whose value depends on the run (the load's numbers, the age).
VARYING = ("LOWEST-INVENTORY", "P95", "SUCCESS", "AGE")


@pytest.fixture
def cluster(kmock_cluster_factory: Callable[..., KmockCluster]) -> KmockCluster:
    return kmock_cluster_factory(prometheus=True, namespaces=(NS, sc.PROMETHEUS_NS))


def proxied(cluster: KmockCluster, since: int = 0) -> list[ApiCall]:
    return [
        c
        for c in cluster.api_calls()[since:]
        if c.client == "operator" and c.resource == "services/proxy"
    ]


def status_of(cluster: KmockCluster) -> dict[str, Any]:
    return (cluster.get(PROMDEMOS, NS, NAME) or {}).get("status") or {}


def doc_tables() -> list[list[str]]:
    """The tables (header, row) after each `$ kubectl get pd -n demo` of docs/operator.md."""
    lines = DOCS.read_text(encoding="utf-8").splitlines()
    return [
        lines[i + 1 : i + 3]
        for i, line in enumerate(lines)
        if line.startswith("$ kubectl get pd -n demo") and " -o " not in line
    ]


def assert_documented(shown: list[str], documented: list[str], varying: tuple[str, ...]) -> None:
    """`shown` is the documented table, but for the columns whose value depends on the run."""
    # The same columns; their widths follow the widest value, which varies with the run.
    assert shown[0].split() == documented[0].split(), (shown, documented)
    got, want = columns(shown[1], shown[0]), columns(documented[1], documented[0])
    for key in want:
        if key not in varying:
            assert got[key] == want[key], (key, shown, documented)


def columns(line: str, header: str) -> dict[str, str]:
    """A table line's cells by header (cells are aligned under their header)."""
    names = header.split()
    starts = [header.index(n) for n in names]
    ends = [*starts[1:], None]
    return {n: line[s:e].strip() for n, s, e in zip(names, starts, ends, strict=True)}


def test_not_selected_then_selected_scraped_evaluated_and_the_lesson_numbers(
    cluster: KmockCluster, start_app: Any, tmp_path: Path
) -> None:
    _, app_url = start_app()
    with run_prometheus(tmp_path / "prom", [], wait_up=False) as prom:
        cluster.add_prometheus(sc.kps_prometheus(), url=prom.url)
        op = cluster.start_operator("--prometheus-interval", INTERVAL, resync_seconds=HOURS)
        spec = {
            "autoHeal": {"interval": "1s", "podAccess": "podIP"},
            "monitoring": {"scrapeInterval": "1s"},
        }
        cluster.create(sc.promdemo(NAME, spec))
        # Play the Deployment controller and the kubelet: the app process is the one pod.
        sc.wait_children(cluster, NAME, ("Deployment",), op)
        ready = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}
        cluster.patch(DEPLOYMENTS, NS, NAME, {"status": ready}, subresource="status")
        cluster.store_pod(NS, NAME, POD, app_url)

        # 1. kube-prometheus-stack ignores it: which label to add; nobody asked.
        c = sc.wait_condition(cluster, NAME, "PrometheusSelected", "False", "LabelsNotMatched", op)
        assert c["message"] == (
            f"Prometheus {sc.KPS} selects ServiceMonitors and PrometheusRules labelled"
            " release=prometheus; add spec.monitoring.labels: {release: prometheus}"
        )
        sc.wait_condition(cluster, NAME, "TargetsUp", "Unknown", "NotSelected", op)
        sc.wait(
            lambda: status_of(cluster).get("readyReplicas") == 1
            and status_of(cluster).get("lowestInventory") == 100,
            "readiness and the heal loop's first reading in the status", op,
        )  # fmt: skip
        assert proxied(cluster) == []
        tables = doc_tables()
        first = table([cluster.get(PROMDEMOS, NS, NAME)])
        print("\n".join(["$ kubectl get pd -n demo", *first]))
        assert_documented(first, tables[0], ("AGE",))

        # 2. The label added: selected, and asked through the service proxy.
        labels = {"spec": {"monitoring": {"labels": {"release": "prometheus"}}}}
        cluster.patch(PROMDEMOS, NS, NAME, labels)
        sc.wait_condition(cluster, NAME, "PrometheusSelected", "True", "Selected", op)
        # Prometheus has not loaded the ServiceMonitor and the PrometheusRule yet.
        c = sc.wait_condition(cluster, NAME, "TargetsUp", "False", "NoTargets", op)
        assert c["message"].startswith(
            f'Prometheus {sc.KPS} has no target {{namespace="demo", job="shop"}}; fix:'
        ), c
        sc.wait_condition(cluster, NAME, "RulesLoaded", "False", "RulesNotLoaded", op)

        # 3. prometheus-operator configures Prometheus for them: scraped and evaluated.
        play_prometheus_operator(prom, cluster.get(PROMDEMOS, NS, NAME), app_url)
        c = sc.wait_condition(cluster, NAME, "TargetsUp", "True", "TargetsUp", op)
        assert c["message"] == f"1/1 up in Prometheus {sc.KPS}"
        c = sc.wait_condition(cluster, NAME, "RulesLoaded", "True", "RulesLoaded", op)
        assert c["message"] == (
            "promdemo.alerts and promdemo.recording loaded (12 rules, every 1s) in Prometheus"
            f" {sc.KPS}"
        )
        assert status_of(cluster)["targets"] == {"up": 1, "total": 1}
        every = proxied(cluster)
        assert {(c.verb, c.namespace, c.name) for c in every} == {
            ("get", sc.PROMETHEUS_NS, "prometheus-operated:web")
        }

        # 4. At rest (no order yet: a request rate of 0, no p95 or ratio of nothing), the
        # operator asks Prometheus and writes nothing.
        sc.wait(
            lambda: status_of(cluster).get("lessons") == {"requestsPerSecond": 0}
            and status_of(cluster).get("lowestInventory") == 100,
            "the request rate recorded (0) and the heal loop's first reading", op,
        )  # fmt: skip
        mark = len(cluster.api_calls())
        sc.wait(lambda: len(proxied(cluster, mark)) >= 9, "three more rounds of questions", op)
        others = [
            c for c in cluster.api_calls()[mark:]
            if c.client == "operator" and c.verb != "watch" and c.resource != "services/proxy"
        ]  # fmt: skip
        assert others == [], f"requests at rest besides the proxy GETs: {others}"
        asked = {c.proxied_path for c in proxied(cluster, mark)}
        assert asked == {"/api/v1/targets", "/api/v1/rules",
                                                    "/api/v1/query"}  # fmt: skip

        # 5. A burst of orders: the lesson numbers reach the status.
        summary = asyncio.run(run_load(app_url, orders=60, concurrency=30, seed=7))
        assert summary.answered == 60

        def numbers() -> bool:
            # Written while the burst ran too (a snapshot per second): wait for the numbers
            # of answered orders (the first answers can all be failures: a ratio of 0).
            lessons = status_of(cluster).get("lessons") or {}
            keys = ("p95Seconds", "successRatio", "requestsPerSecond")
            return all((lessons.get(k) or 0) > 0 for k in keys)

        sc.wait(numbers, "p95, success ratio and request rate in status.lessons", op)
        lessons = status_of(cluster)["lessons"]
        assert 0 < lessons["p95Seconds"] <= 5  # the histogram's highest finite bucket
        assert 0 < lessons["successRatio"] <= 1
        assert lessons["requestsPerSecond"] > 0

        # 6. What `kubectl get pd` shows, as docs/operator.md says.
        pd = cluster.get(PROMDEMOS, NS, NAME)
        shown = table([pd], now=datetime.now(UTC))
        print("\n".join(["$ kubectl get pd -n demo", *shown]))
        assert_documented(shown, tables[1], VARYING)
        got = columns(shown[1], shown[0])
        assert float(got["P95"]) == pd["status"]["lessons"]["p95Seconds"]
        assert float(got["SUCCESS"]) == pd["status"]["lessons"]["successRatio"]


def test_selection_follows_labels_prometheus_objects_and_namespaces_at_once(
    cluster: KmockCluster,
) -> None:
    op = cluster.start_operator(resync_seconds=HOURS)
    sc.scenario_prometheus_selection(cluster, op, "picked")
    sc.scenario_match_prometheus_auto(cluster, op, "auto")
