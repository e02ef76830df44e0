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
  or in cooldown and does nothing. Loops and pods are looked up in memory (the
  watches): a notification naming a pod nobody knows costs no API request.
- an alert without a `namespace` label that matches PromDemos (or pods) in more
  than one namespace is refused as `ambiguous`: resetting the wrong tenant's pod
  is worse than not resetting.

Alerts are healed concurrently, at most `MAX_HEALS_IN_FLIGHT` at a time per
PromDemo (a pod that hangs holds one slot, not the whole notification), and
the answer waits for them at most `ACK_SECONDS`: an alert still being healed
then is answered `accepted` and its outcome is logged and counted when it
ends, so Alertmanager hears back within 2 s however large the batch and
however slow its pods (it retried a notification answered after its own
timeout). Duplicates of one alert in a batch (same status and labels) cause
one attempt; the others are answered `duplicate`.

The answer is 200 with the outcome of each alert, unless a reset failed (500,
so Alertmanager retries), the token is wrong (401: `Authorization: Bearer
<token>`, the scheme in any case, RFC 7235) or the body is not a notification
(400). Every answer is JSON, also for a body nested too deeply to parse (400)
or one over the size limit (413).

Bind address and port: ``--bind``/``--webhook-port`` of `promdemo operator`
(`memo.options`). Port 0 switches the receiver off.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import resource
from collections.abc import Awaitable, Callable, Iterable
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
from promdemo_operator.runtime.bounded_http import BoundedServer, Limits
from promdemo_operator.runtime.handlers.context import context_of
from promdemo_operator.runtime.handlers.heal import HealLoop

log = logging.getLogger("promdemo.heal.webhook")

PATH = "/alertmanager"
DEFAULT_PORT = 8082
#: At cleanup, how long requests in progress may still finish before they are cancelled
#: (a heal waiting for an API server that does not answer would otherwise hold the
#: operator's shutdown; Alertmanager retries a notification that got no answer).
SHUTDOWN_TIMEOUT_SECONDS = 2.0
#: Larger notification bodies are answered 413 (Alertmanager sends a few KiB).
MAX_BODY_BYTES = 1024 * 1024
#: How long a notification's answer waits for its heals (Alertmanager's default
#: webhook timeout is 10 s; the bound asked of the receiver is 2 s).
ACK_SECONDS = 1.5
#: Heals of one PromDemo in flight at once, from all notifications together.
MAX_HEALS_IN_FLIGHT = 16
#: A connection to the receiver that sends no complete request for this long is closed
#: (idle keep-alive, or never a request); at most `bounded_http.MAX_CONNECTIONS` at once.
KEEPALIVE_TIMEOUT_SECONDS = 15.0


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


class AmbiguousAlert(LookupError):
    """An alert without a namespace that matches PromDemos in several namespaces."""


def find_loop(ref: AlertRef, loops: Iterable[HealLoop]) -> HealLoop | None:
    """The heal loop an alert points at (see the module docstring for the label order).

    Raises `AmbiguousAlert` when the alert names no namespace and loops in more
    than one namespace match.
    """
    candidates = [lp for lp in loops if ref.namespace is None or lp.namespace == ref.namespace]
    if ref.promdemo:
        matches = [lp for lp in candidates if lp.name == ref.promdemo]
    else:
        matches = [lp for lp in candidates if lp.find_pod(ref) is not None]
    if len({lp.namespace for lp in matches}) > 1:
        where = ", ".join(sorted(f"{lp.namespace}/{lp.name}" for lp in matches))
        raise AmbiguousAlert(f"the alert has no namespace label and matches {where}")
    return matches[0] if matches else None


def bearer_credentials(header: str) -> str | None:
    """The credentials of an `Authorization: Bearer <token>` header (scheme in any case)."""
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


@web.middleware
async def _json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every answer is JSON: aiohttp's own errors (404, 405, 413) and unexpected ones too."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return web.json_response({"error": e.reason}, status=e.status)
    except Exception:
        log.exception("the webhook receiver failed on %s %s", request.method, request.path)
        return web.json_response({"error": "internal error"}, status=500)


class AlertReceiver:
    """Turns notifications into heal attempts; the HTTP part is `app()`."""

    def __init__(
        self,
        token: str,
        *,
        loops: Callable[[], Iterable[HealLoop]],
        metrics: HealMetrics | None = None,
        ack_seconds: float = ACK_SECONDS,
        max_in_flight: int = MAX_HEALS_IN_FLIGHT,
    ) -> None:
        self.token = token
        self.loops = loops
        self.metrics = metrics
        self.ack_seconds = ack_seconds
        self.max_in_flight = max_in_flight
        self.slots: dict[tuple[str, str], asyncio.Semaphore] = {}
        # Heals still running after their notification was answered.
        self.background: set[asyncio.Task[str]] = set()

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.notifications.labels(outcome).inc()

    async def handle(self, payload: Any) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON answer) for one notification, within `ack_seconds` or so."""
        try:
            refs = inventory_alerts(parse_payload(payload))
        except PayloadError as e:
            return 400, {"error": str(e)}
        answers: list[tuple[AlertRef, str, Awaitable[str] | str]] = []
        seen: set[tuple[Any, ...]] = set()
        for ref in refs:
            where = ref.pod or ref.instance or "?"
            key = (ref.status, ref.namespace, ref.promdemo, ref.pod, ref.instance)
            if key in seen:
                answers.append((ref, where, "duplicate"))
            elif not ref.firing:
                answers.append((ref, where, "resolved"))
            else:
                answers.append((ref, *self._firing(ref, where)))
            seen.add(key)
        tasks = [a for _, _, a in answers if isinstance(a, asyncio.Task)]
        if tasks:
            await asyncio.wait(tasks, timeout=self.ack_seconds)
        results = []
        failed = False
        for ref, where, attempt in answers:
            if isinstance(attempt, asyncio.Task):
                if not attempt.done():
                    self._finish_later(attempt, ref, where)
                    outcome = "accepted"
                else:
                    outcome = self._outcome(attempt, where)
            else:
                outcome = str(attempt)
            failed = failed or outcome == "failed"
            if outcome != "accepted":
                self._count(outcome)
                log.info("alert InventoryNegative %s for %s: %s", ref.status, where, outcome)
            results.append({"pod": ref.pod, "instance": ref.instance, "outcome": outcome})
        return (500 if failed else 200), {"alerts": results}

    def _firing(self, ref: AlertRef, where: str) -> tuple[str, Awaitable[str] | str]:
        """(where, outcome or the heal's task) for one firing alert, from the loops in memory."""
        try:
            loop = find_loop(ref, self.loops())
        except AmbiguousAlert as e:
            log.warning("alert InventoryNegative for %s refused as ambiguous: %s", where, e)
            return where, "ambiguous"
        if loop is None:
            return where, "unknown_target"
        where = f"{loop.namespace}/{loop.name} pod {ref.pod or ref.instance}"
        slot = self.slots.setdefault(
            (loop.namespace, loop.name), asyncio.Semaphore(self.max_in_flight)
        )

        async def heal() -> str:
            async with slot:
                return await loop.heal_alert(ref)

        return where, asyncio.create_task(heal())

    @staticmethod
    def _outcome(task: asyncio.Task[str], where: str) -> str:
        if task.cancelled():
            return "failed"
        error = task.exception()
        if error is not None:
            log.error("healing %s failed: %s", where, error, exc_info=error)
            return "failed"
        return task.result()

    def _finish_later(self, task: asyncio.Task[str], ref: AlertRef, where: str) -> None:
        self.background.add(task)

        def done(task: asyncio.Task[str]) -> None:
            self.background.discard(task)
            outcome = self._outcome(task, where)
            self._count(outcome)
            log.info(
                "alert InventoryNegative %s for %s: %s (after the answer)",
                ref.status,
                where,
                outcome,
            )

        task.add_done_callback(done)

    async def close(self) -> None:
        """Cancel the heals still running (at the operator's shutdown)."""
        for task in list(self.background):
            task.cancel()
        if self.background:
            await asyncio.wait(list(self.background), timeout=SHUTDOWN_TIMEOUT_SECONDS)

    def authorized(self, request: web.Request) -> bool:
        given = bearer_credentials(request.headers.get("Authorization", "")) or ""
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def _post(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        body = await request.read()
        try:
            payload = json.loads(body)
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        except RecursionError:  # e.g. 100,000 nested arrays
            return web.json_response({"error": "body is nested too deeply"}, status=400)
        status, answer = await self.handle(payload)
        return web.json_response(answer, status=status)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_json_errors])
        app.router.add_post(PATH, self._post)
        app.router.add_get("/healthz", self._healthz)
        return app


class WebhookServer:
    """The receiver on a host and port; `start()`/`stop()`."""

    def __init__(self, receiver: AlertReceiver, host: str, port: int) -> None:
        self.receiver = receiver
        self.host = host
        self.port = port
        self._server: BoundedServer | None = None

    async def start(self) -> None:
        server = BoundedServer(
            self.receiver.app(),
            self.host,
            self.port,
            Limits(idle_seconds=KEEPALIVE_TIMEOUT_SECONDS),
        )
        await server.start()
        self._server = server
        self.port = server.port

    @property
    def connections(self) -> int:
        """Connections open to the receiver now."""
        return self._server.connections if self._server is not None else 0

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None
        await self.receiver.close()


#: The open-files soft limit the operator raises itself to at start-up (within the
#: hard limit): each connection to its ports and to the pods is a descriptor, and
#: the usual soft limit of 1,024 is reached by a thousand idle clients.
OPEN_FILES_WANTED = 16384


def raise_open_files_limit(wanted: int = OPEN_FILES_WANTED) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (never above the hard limit); the result."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as e:
        log.warning("cannot raise the open-files limit from %d to %d: %s", soft, target, e)
        return soft
    return target


def _listen_address(memo: Any) -> tuple[str, int]:
    options = memo.get("options") if memo is not None else None
    host = getattr(options, "bind", None) or "0.0.0.0"
    port = getattr(options, "webhook_port", None)
    return host, DEFAULT_PORT if port is None else int(port)


@kopf.on.startup()
async def start_webhook(memo: kopf.Memo, **_: Any) -> None:
    """Serve the Alertmanager receiver beside the operator (off when port is 0 or no token)."""
    limit = raise_open_files_limit()
    log.debug("open-files limit: %d", limit)
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
    receiver = AlertReceiver(
        token,
        loops=lambda: list(context_of(memo).heal_loops.values()),
        metrics=default_metrics(),
    )
    server = WebhookServer(receiver, host, port)
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
