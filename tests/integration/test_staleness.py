"""A failed scrape marks every series of the target stale at once (docs/crd.md, scrapeInterval).

Prometheus's 5m lookback does not carry a series over a failed scrape: the
failed scrape writes `up` 0 and a staleness marker into every series the last
good scrape returned, in one append, so an instant query finds none of them
from that moment until the next good scrape, whatever the scrape interval.
Range selectors skip the marker: the samples before it are still there. Real
Prometheus 2.42 and 3.x, a target on 127.0.0.1 that answers 500 on demand.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.processes import wait_until
from tests.support.prometheus import run_prometheus
from tests.support.prometheus_versions import params

pytestmark = pytest.mark.integration

BODY = b"# TYPE product_inventory gauge\nproduct_inventory -5\n"


class Target:
    """`/metrics` with one gauge, or HTTP 500 while `failing` is set."""

    def __init__(self) -> None:
        self.failing = threading.Event()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if target.failing.is_set():
                    self.send_response(500)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target()
    t.thread.start()
    try:
        yield t
    finally:
        t.server.shutdown()
        t.server.server_close()


@pytest.mark.parametrize("major", params("prometheus"))
def test_one_failed_scrape_hides_every_series_until_the_next_good_one(
    tmp_path: Path, target: Target, major: int
) -> None:
    with run_prometheus(
        tmp_path, [target.address], scrape_interval="2s", evaluation_interval="2s", major=major
    ) as prom:
        prom.wait_for("product_inventory", lambda v: v == -5, timeout=30)
        target.failing.set()
        prom.wait_for("up", lambda v: v == 0, timeout=30, what="a failed scrape")
        # the same moment as up = 0, far inside the 5m lookback of the last good sample
        failed_at = prom.query_value("timestamp(up)")
        assert failed_at is not None
        assert prom.query("product_inventory", at=failed_at) == []
        assert prom.query("product_inventory", at=failed_at - 0.001) != []
        # the samples are still there for range selectors, which skip the marker
        assert prom.query_value("last_over_time(product_inventory[1m])") == -5
        target.failing.clear()
        prom.wait_for("product_inventory", lambda v: v == -5, timeout=30)
        wait_until(lambda: prom.query_value("up") == 1, timeout=30, what="up again")
