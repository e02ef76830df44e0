"""`/healthz` on --health-port, served from kopf's event loop, bounded (`bounded_http`).

It answers only while the loop that runs every watch, daemon and heal loop answers:
a liveness probe of the operator, as kopf's own liveness endpoint was. kopf's endpoint
is not used because its server cannot be bounded through kopf's options (an idle
connection stayed open for an hour, and every one was accepted): this one closes a
connection idle for `bounded_http.IDLE_SECONDS` and keeps at most
`bounded_http.MAX_CONNECTIONS`, the oldest closed first.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from aiohttp import web

from promdemo_operator.runtime.bounded_http import BoundedServer, Limits

log = logging.getLogger("promdemo.health")


def health_app() -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    return app


@kopf.on.startup()
async def start_health(memo: kopf.Memo, **_: Any) -> None:
    """Listen on --health-port (0: off). A taken port stops the operator, as kopf's did."""
    options = memo.get("options") if memo is not None else None
    port = getattr(options, "health_port", 0) or 0
    if not port:
        return
    host = getattr(options, "bind", None) or "0.0.0.0"
    server = BoundedServer(health_app(), host, int(port), Limits())
    try:
        await server.start()
    except OSError as e:  # not retried: a taken port stays taken
        raise kopf.PermanentError(f"cannot listen on {host}:{port} for /healthz: {e}") from e
    memo["health_server"] = server
    log.info("/healthz on http://%s:%d/healthz", host, server.port)


@kopf.on.cleanup()
async def stop_health(memo: kopf.Memo, **_: Any) -> None:
    server = memo.get("health_server") if memo is not None else None
    if server is not None:
        await server.stop()
