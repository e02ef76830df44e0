"""The standby's health endpoint: `/healthz` answers while the process waits for the Lease.

kopf serves `/healthz` on --health-port once it runs; a standby runs no kopf, yet
the kubelet's liveness probe must find it alive (or it would restart a healthy
standby again and again). This server answers on the same port until the process
leads, then closes so kopf can take the port.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/healthz":
            self._answer(404, b'{"error": "not found"}\n')
            return
        self._answer(200, b'{"status": "standby"}\n')

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # a probe every 10 s is not news


class StandbyHealth:
    """`/healthz` on `bind:port` in a daemon thread; `close()` frees the port."""

    def __init__(self, bind: str, port: int) -> None:
        self.server = ThreadingHTTPServer((bind, port), _Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="standby-health", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
