"""The Alertmanager webhook receiver: event-driven healing (`spec.autoHeal.source: alertmanager`).

An aiohttp server, started by a kopf startup handler and stopped at cleanup,
serves ``POST /alertmanager`` (and ``GET /healthz``). Alertmanager's
`webhook_configs` points at it with ``http_config.authorization.credentials``
set to the same bearer token the operator reads from ``PROMDEMO_WEBHOOK_TOKEN``
(or the file named by ``PROMDEMO_WEBHOOK_TOKEN_FILE``, a mounted Secret).
Without a token the receiver does not start (an unauthenticated endpoint that
resets inventories is not offered), and says so in the log.

For each `InventoryNegative` alert of a notification:

- `resolved` → nothing (counted);
- `firing` → the PromDemo's heal loop is found from the labels (`namespace`
  + `promdemo`, else `namespace` + `pod`, else `instance` = the pod's
  ``host:port``), and the loop's engine re-reads that pod's live value and
  resets it only if it is still below the threshold and not in cooldown — the
  same lock, policy and cooldown as the direct mode. A duplicate, a late
  notification, or a repeat after the reset therefore finds the pod recovered
  or in cooldown and does nothing.

The answer is 200 unless a reset failed (500, so Alertmanager retries), the
token is wrong (401) or the body is not a notification (400).

Bind address and port: ``--bind``/``--webhook-port`` of `promdemo operator`
(`memo.options`), overridden by ``PROMDEMO_WEBHOOK_BIND`` / ``PROMDEMO_WEBHOOK_PORT``
(tests use free loopback ports). Port 0 switches the receiver off.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import kopf
from aiohttp import web

from promdemo_operator.heal.alertmanager import (
    AlertRef,
    PayloadError,
    inventory_alerts,
    parse_payload,
)
from promdemo_operator.heal.metrics import HealMetrics, default_metrics

from .heal import LOOPS, HealLoop

log = logging.getLogger("promdemo.heal.webhook")

PATH = "/alertmanager"
DEFAULT_PORT = 8082
#: At cleanup, how long requests in progress may still finish before they are cancelled
#: (a heal waiting for an API server that does not answer would otherwise hold the
#: operator's shutdown; Alertmanager retries a notification that got no answer).
SHUTDOWN_TIMEOUT_SECONDS = 2.0


def webhook_token(environ: dict[str, str] | None = None) -> str | None:
    """The bearer token Alertmanager must send: env var, or the file it names."""
    env = os.environ if environ is None else environ
    token = env.get("PROMDEMO_WEBHOOK_TOKEN", "").strip()
    if token:
        return token
    path = env.get("PROMDEMO_WEBHOOK_TOKEN_FILE", "").strip()
    if path:
        try:
            return Path(path).read_text().strip() or None
        except OSError as e:
            log.error("cannot read PROMDEMO_WEBHOOK_TOKEN_FILE %s: %s", path, e)
    return None


def find_loop(ref: AlertRef, loops: Iterable[HealLoop]) -> HealLoop | None:
    """The heal loop an alert points at (see the module docstring for the label order)."""
    candidates = [lp for lp in loops if ref.namespace is None or lp.namespace == ref.namespace]
    if ref.promdemo:
        for lp in candidates:
            if lp.name == ref.promdemo:
                return lp
        return None
    for lp in candidates:
        if lp.find_pod(ref) is not None:
            return lp
    return None


class AlertReceiver:
    """Turns notifications into heal attempts; the HTTP part is `app()`."""

    def __init__(
        self,
        token: str,
        *,
        loops: Callable[[], Iterable[HealLoop]] = lambda: list(LOOPS.values()),
        metrics: HealMetrics | None = None,
    ) -> None:
        self.token = token
        self.loops = loops
        self.metrics = metrics

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.notifications.labels(outcome).inc()

    async def handle(self, payload: Any) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON answer) for one notification."""
        try:
            refs = inventory_alerts(parse_payload(payload))
        except PayloadError as e:
            return 400, {"error": str(e)}
        results = []
        failed = False
        for ref in refs:
            where = ref.pod or ref.instance or "?"
            if not ref.firing:
                outcome = "resolved"
            else:
                loop = find_loop(ref, self.loops())
                if loop is None:
                    # pods of a loop may have changed since its last check: refresh once
                    for candidate in self.loops():
                        if ref.namespace in (None, candidate.namespace):
                            await candidate.refresh_pods()
                    loop = find_loop(ref, self.loops())
                if loop is None:
                    outcome = "unknown_target"
                else:
                    outcome = await loop.heal_alert(ref)
                    where = f"{loop.namespace}/{loop.name} pod {ref.pod or ref.instance}"
            failed = failed or outcome == "failed"
            self._count(outcome)
            log.info("alert InventoryNegative %s for %s: %s", ref.status, where, outcome)
            results.append({"pod": ref.pod, "instance": ref.instance, "outcome": outcome})
        return (500 if failed else 200), {"alerts": results}

    def authorized(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {self.token}"
        return hmac.compare_digest(given.encode(), expected.encode())

    async def _post(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            payload = await request.json()
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        status, answer = await self.handle(payload)
        return web.json_response(answer, status=status)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post(PATH, self._post)
        app.router.add_get("/healthz", self._healthz)
        return app


class WebhookServer:
    """The receiver on a host and port; `start()`/`stop()`."""

    def __init__(self, receiver: AlertReceiver, host: str, port: int) -> None:
        self.receiver = receiver
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.receiver.app(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None and server.sockets:  # type: ignore[union-attr]
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _listen_address(memo: Any) -> tuple[str, int]:
    options = getattr(memo, "options", None) if memo is not None else None
    host = os.environ.get("PROMDEMO_WEBHOOK_BIND") or getattr(options, "bind", None) or "0.0.0.0"
    port_text = os.environ.get("PROMDEMO_WEBHOOK_PORT")
    if port_text:
        port = int(port_text)
    else:
        port = getattr(options, "webhook_port", DEFAULT_PORT)
        port = DEFAULT_PORT if port is None else int(port)
    return host, port


@kopf.on.startup()
async def start_webhook(memo: kopf.Memo, **_: Any) -> None:
    """Serve the Alertmanager receiver beside the operator (off when port is 0 or no token)."""
    host, port = _listen_address(memo)
    if port == 0:
        log.info("Alertmanager webhook receiver off (port 0)")
        return
    token = webhook_token()
    if not token:
        log.info(
            "Alertmanager webhook receiver not started: set PROMDEMO_WEBHOOK_TOKEN or "
            "PROMDEMO_WEBHOOK_TOKEN_FILE (autoHeal.source: alertmanager needs it)"
        )
        return
    server = WebhookServer(AlertReceiver(token, metrics=default_metrics()), host, port)
    try:
        await server.start()
    except OSError as e:
        log.error("Alertmanager webhook receiver cannot listen on %s:%d: %s", host, port, e)
        return
    memo["heal_webhook"] = server
    log.info("Alertmanager webhook receiver on http://%s:%d%s", host, server.port, PATH)


@kopf.on.cleanup()
async def stop_webhook(memo: kopf.Memo, **_: Any) -> None:
    server = memo.get("heal_webhook") if memo is not None else None
    if server is not None:
        await server.stop()
