"""The order service's HTTP API: `create_app(settings)` builds a fresh Flask app.

No app exists at import time: each call makes its own inventory and, unless one
is given, its own metrics registry, so tests never share state.

Every answer is JSON, errors included (`{"error": "..."}`), never an HTML page
or a traceback. The `http_*` metrics (tracking.py) label requests with the
route template; unknown paths share the label `unmatched`, and every series
exists from start-up, so no client can grow the number of series; probes and
scrapes are not measured.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass

from flask import Flask, Response, jsonify, request
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from promdemo_app import __version__
from promdemo_app.inventory import Inventory
from promdemo_app.lifecycle import Lifecycle
from promdemo_app.metrics import (
    METHOD_LABELS,
    OTHER_METHOD,
    UNMATCHED,
    Metrics,
    NullRecorder,
    Recorder,
)
from promdemo_app.orders import InvalidOrder, Outcome, Shop, parse_order_body
from promdemo_app.reset import (
    DISABLED_REASON,
    POD_UID_HEADER,
    ResetPolicy,
    ResetToken,
    other_pod_expected,
    reset_policy,
    token_matches,
)
from promdemo_app.settings import Settings
from promdemo_app.simulation import Simulation, SimulationConfig
from promdemo_app.tracking import Tracker

log = logging.getLogger("promdemo_app")

# The classic text format, spelled out: prometheus_client's CONTENT_TYPE_LATEST
# moved to "version=1.0.0", which the Prometheus 2.x this project targets
# (Debian bookworm's 2.42) predates.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# `GET /metrics?name[]=a&name[]=b` answers only those metrics, as
# prometheus_client's own exposition does; a bound on how many, so one request
# cannot make the filter's set (and its work) as large as the request line.
MAX_METRIC_NAMES = 64


@dataclass(frozen=True)
class Route:
    rule: str
    methods: tuple[str, ...]
    statuses: tuple[int, ...]  # what the view answers besides 405 and 500
    measured: bool = True
    about: str = ""

    @property
    def served_methods(self) -> tuple[str, ...]:
        # Flask answers HEAD with the GET view.
        return (*self.methods, "HEAD") if "GET" in self.methods else self.methods


ROUTES = {
    "index": Route("/", ("GET",), (200,), about="this list"),
    "order": Route(
        "/order",
        ("POST",),
        (200, 400, 409, 413, 502),
        about='place an order; optional body {"order_id": int, "user_id": int, "amount": number}',
    ),
    "inventory": Route("/inventory", ("GET",), (200,), about="units in stock"),
    "inventory_reset": Route(
        "/inventory/reset",
        ("POST",),
        (200, 401, 403, 409),
        about=(
            "back to the initial inventory (Authorization: Bearer <token> when set; "
            "409 when X-Promdemo-Expected-Pod-Uid names another pod)"
        ),
    ),
    "healthz": Route("/healthz", ("GET",), (200,), measured=False, about="liveness"),
    "readyz": Route("/readyz", ("GET",), (200, 503), measured=False, about="readiness"),
    "metrics": Route(
        "/metrics",
        ("GET",),
        (200, 400, 404),
        measured=False,
        about="Prometheus metrics (?name[]=<metric>, repeatable: only those)",
    ),
}


def measured_routes() -> list[str]:
    """Route labels of the `http_*` metrics, `unmatched` included."""
    return [r.rule for r in ROUTES.values() if r.measured] + [UNMATCHED]


def http_series() -> list[tuple[str, str, str]]:
    """Every (method, route, status) the app can answer on a measured route."""
    series = []
    for route in ROUTES.values():
        if not route.measured:
            continue
        for method in (*METHOD_LABELS, OTHER_METHOD):
            if method in route.served_methods:
                statuses: tuple[int, ...] = (*route.statuses, 500)
            else:
                statuses = (405,)
            series += [(method, route.rule, str(s)) for s in statuses]
    series += [(m, UNMATCHED, "404") for m in (*METHOD_LABELS, OTHER_METHOD)]
    return series


@dataclass
class ServiceState:
    """What one app holds; `app.extensions["promdemo"]`, for tests and the server."""

    settings: Settings
    inventory: Inventory
    shop: Shop
    recorder: Recorder
    registry: CollectorRegistry
    lifecycle: Lifecycle


def _error(code: int, message: str, **extra: object) -> tuple[Response, int]:
    return jsonify(error=message, **extra), code


def create_app(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    *,
    lifecycle: Lifecycle | None = None,
    simulation: Simulation | None = None,
) -> Flask:
    """A new order service. `registry` defaults to a fresh one with process metrics."""
    if registry is None:
        registry = CollectorRegistry()
        # The process/Python collectors the default registry would have had.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
    lifecycle = lifecycle or Lifecycle()
    recorder: Recorder
    if settings.metrics:
        recorder = Metrics(
            registry,
            routes=measured_routes(),
            http_series=http_series(),
            initial_inventory=settings.initial_inventory,
            in_progress=lifecycle.in_progress,
        )
    else:
        recorder = NullRecorder()
    inventory = Inventory(settings.initial_inventory, on_change=recorder.inventory_changed)
    shop = Shop(
        inventory,
        simulation or Simulation(SimulationConfig.from_settings(settings)),
        recorder,
        oversell=settings.oversell,
    )
    state = ServiceState(settings, inventory, shop, recorder, registry, lifecycle)

    app = Flask("promdemo_app", static_folder=None)
    # "/inventory//reset" would otherwise be a 308 redirect: a status no series
    # exists for. (Leading slashes are always collapsed: "//order" is "/order".)
    app.url_map.merge_slashes = False
    # Route by path only. The service is reached by pod IP, Service name or
    # port-forward alike; left to the Host header, routing answers 400 to a
    # host name werkzeug cannot IDNA-encode (a 64-character label), on every
    # route, which is a status the metrics have no series for.
    app.config["SERVER_NAME"] = "promdemo"
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # No automatic OPTIONS answers: one less status per route to pre-create.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.extensions["promdemo"] = state
    order_ids = itertools.count(1)

    # One middleware per request: in flight for the drain, and the http_* metrics.
    paths = {r.rule: (r.rule if r.measured else None) for r in ROUTES.values()}
    app.wsgi_app = Tracker(  # type: ignore[method-assign]
        app.wsgi_app, lifecycle, recorder, paths, prefetch_bytes=settings.max_body_bytes
    )
    _register_errors(app, settings)
    policy = reset_policy(settings)
    tokens = (
        ResetToken(settings.reset_token, settings.reset_token_file)
        if settings.reset_token is not None
        else None
    )

    @app.get("/")
    def index() -> Response:
        endpoints = {f"{'|'.join(r.methods)} {r.rule}": r.about for r in ROUTES.values()}
        return jsonify(service="promdemo order service", version=__version__, endpoints=endpoints)

    @app.post("/order")
    def order() -> tuple[Response, int]:
        # get_data raises 413 above MAX_CONTENT_LENGTH before the body is parsed.
        try:
            details = parse_order_body(request.get_data(cache=False))
        except InvalidOrder as e:
            return _error(400, str(e))
        order_id = details.order_id if details.order_id is not None else next(order_ids)
        outcome = shop.place_order()
        if outcome is Outcome.SUCCESS:
            return jsonify(order_id=order_id, status="success"), 200
        if outcome is Outcome.OUT_OF_STOCK:
            return _error(409, "out of stock", order_id=order_id, status="failed")
        return _error(502, "dependency call failed", order_id=order_id, status="failed")

    @app.get("/inventory")
    def get_inventory() -> Response:
        return jsonify(inventory=inventory.level, initial=inventory.initial)

    @app.post("/inventory/reset")
    def reset_inventory() -> Response | tuple[Response, int]:
        if policy is ResetPolicy.DISABLED:
            return _error(403, "reset is disabled: " + DISABLED_REASON.format(host=settings.host))
        if tokens is not None and not token_matches(request.headers, tokens.current()):
            response, status = _error(
                401, "a valid 'Authorization: Bearer <token>' (or X-Promdemo-Reset-Token) is needed"
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="promdemo"'
            return response, status
        if (expected := other_pod_expected(request.headers, settings.pod_uid)) is not None:
            log.warning(
                "inventory reset refused: it was meant for pod %r, this is pod %s",
                expected,
                settings.pod_uid,
            )
            return _error(
                409,
                "this reset was meant for another pod (its IP now serves this one)",
                expected_pod_uid=expected,
                pod_uid=settings.pod_uid,
            )
        before, after = inventory.reset()
        recorder.inventory_reset()
        log.info("inventory reset from %d to %d by %s", before, after, request.remote_addr)
        return jsonify(inventory=after)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> Response | tuple[Response, int]:
        if lifecycle.draining:
            return jsonify(status="draining"), 503
        return jsonify(status="ready")

    @app.get("/metrics")
    def metrics() -> Response | tuple[Response, int]:
        if not recorder.enabled:
            return _error(404, "metrics are disabled (PROMDEMO_METRICS=off)")
        names = request.args.getlist("name[]")
        if len(names) > MAX_METRIC_NAMES:
            return _error(400, f"at most {MAX_METRIC_NAMES} name[] parameters, got {len(names)}")
        # Unknown names select nothing: an empty page, as prometheus_client answers.
        page = registry.restricted_registry(names) if names else registry
        response = Response(generate_latest(page), content_type=METRICS_CONTENT_TYPE)
        if settings.pod_uid:
            # Whose reading this is: the operator drops a reading from another pod.
            response.headers[POD_UID_HEADER] = settings.pod_uid
        return response

    return app


# A body over the limit is read and dropped up to this much, for up to this
# long, before its 413 is sent: a client that sends its whole body before
# reading (as `requests` does) would otherwise get a connection reset instead
# of its answer (a lingering close, as nginx does).
DISCARD_BYTES = 4 * 1024 * 1024
DISCARD_SECONDS = 5.0


def _discard_body() -> None:
    length = request.content_length
    if length is None or length > DISCARD_BYTES:
        return  # chunked (werkzeug read up to the limit) or too much: closed unread
    stream = request.environ["wsgi.input"]
    deadline = time.monotonic() + DISCARD_SECONDS
    try:
        while length > 0 and time.monotonic() < deadline:
            chunk = stream.read(min(length, 65536))
            if not chunk:
                return
            length -= len(chunk)
    except Exception:  # the client went away or stalled: nothing to save
        log.debug("stopped discarding a request body", exc_info=True)


def _register_errors(app: Flask, settings: Settings) -> None:
    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Response:
        if e.code == 404:
            message = "not found"
        elif isinstance(e, MethodNotAllowed):
            allowed = ", ".join(sorted(e.valid_methods or ()))
            message = f"method {request.method} is not allowed here (allowed: {allowed})"
        elif e.code == 413:
            message = f"request body is larger than {settings.max_body_bytes} bytes"
            _discard_body()
        else:
            message = (e.name or "error").lower()
        # get_response() keeps headers such as Allow on a 405.
        response = e.get_response()
        response.set_data(jsonify(error=message).get_data())
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def crash(e: Exception) -> tuple[Response, int]:
        # The traceback goes to the log, never to the client.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal server error")
