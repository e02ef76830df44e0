"""The standby's webhook port: 503, naming the leader, so Alertmanager retries elsewhere.

The operator's Service selects every replica, the standby included: the standby is
Ready (its readiness does not follow the Lease, or a Deployment rollout whose new
pods wait as standbys would never finish, and a PodDisruptionBudget would count
only one healthy pod). So the Service sends part of Alertmanager's notifications
to the standby. A closed port would do (Alertmanager retries a refused
connection), but says nothing; this server answers every request with 503 and a
JSON body naming the Lease's holder. Alertmanager's webhook notifier retries a 5xx
answer (it does not retry a 4xx), and `Connection: close` makes the retry open a
new connection, which the Service balances again (a kept-alive connection would
carry every retry back to this standby). The standby never reads the token and
never acts: it only says where the leader is.

The server runs while the process waits for the Lease and closes before kopf
starts, so the leader's receiver (handlers/webhook.py) takes the port.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: A request body the standby reads (and drops) before answering, at most: closing a
#: socket with unread bytes sends a TCP reset, which the client may see instead of the 503.
DRAIN_LIMIT_BYTES = 1 << 20
#: A client slower than this per read is dropped (the standby holds no connection long).
READ_TIMEOUT_SECONDS = 5.0
RETRY_AFTER_SECONDS = 1


def standby_answer(holder: str | None) -> dict[str, str]:
    """The 503's JSON body: who leads, and what the caller should do."""
    leader = holder or "nobody (the Lease is free or expired)"
    return {
        "error": "standby: this operator replica does not hold the Lease and does not act",
        "leader": leader,
        "retry": "retry: the Service sends a new connection to any replica, the leader acts",
    }


def _handler(holder: Callable[[], str | None], refused: Callable[[], None]) -> type:
    class Handler(BaseHTTPRequestHandler):
        timeout = READ_TIMEOUT_SECONDS
        protocol_version = "HTTP/1.1"

        def _drain(self) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            remaining = min(max(length, 0), DRAIN_LIMIT_BYTES)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)

        def _answer(self) -> None:
            self._drain()
            body = (json.dumps(standby_answer(holder())) + "\n").encode()
            # Counted before the answer leaves: whoever reads the 503 sees it counted.
            if self.command == "POST":
                refused()
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Retry-After", str(RETRY_AFTER_SECONDS))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        do_POST = do_GET = do_PUT = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass  # counted in promdemo_operator_standby_webhook_refused_total

    return Handler


class StandbyWebhook:
    """503 on every request to `bind:port`, in a daemon thread; `close()` frees the port."""

    def __init__(
        self,
        bind: str,
        port: int,
        *,
        holder: Callable[[], str | None],
        refused: Callable[[], None] = lambda: None,
    ) -> None:
        self.server = ThreadingHTTPServer((bind, port), _handler(holder, refused))
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="standby-webhook", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
