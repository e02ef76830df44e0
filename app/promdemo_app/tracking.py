"""Every request once, in one WSGI middleware: in flight for the drain, and the `http_*` metrics.

One wrapper around the Flask app instead of three Flask hooks per request.
The route label comes from the path: every route of the service is a fixed
path, which Flask matches exactly once leading slashes are collapsed (no other
slashes merged or added), so a dict lookup gives the same answer
(tests/unit/test_app_metrics.py checks it against Flask's routing). Unknown
paths share the label `unmatched`; probes and scrapes are counted in flight
but not measured. The status comes from `start_response`; a request whose app
raised counts as a 500.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from promdemo_app.lifecycle import Lifecycle
from promdemo_app.metrics import UNMATCHED, Recorder, method_label

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class Tracker:
    """WSGI middleware; `routes` maps each served path to its label (None: not measured)."""

    def __init__(
        self,
        app: WSGIApplication,
        lifecycle: Lifecycle,
        recorder: Recorder,
        routes: Mapping[str, str | None],
    ) -> None:
        self.app = app
        self.lifecycle = lifecycle
        self.recorder = recorder
        self.routes = dict(routes)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path:
            # "GET http://shop HTTP/1.1": an empty path is "/" (RFC 9110 4.2.3);
            # left empty, Flask would redirect to "/" (a 308).
            environ["PATH_INFO"] = path = "/"
        # Werkzeug matches with the leading slashes collapsed ("//order" is
        # "/order"); so does this.
        route = self.routes.get("/" + path.lstrip("/"), UNMATCHED)
        if not self.recorder.enabled:
            route = None
        lifecycle = self.lifecycle
        lifecycle.enter(route)
        try:
            if route is None:
                return self.app(environ, start_response)
            return self._measured(environ, start_response, route)
        finally:
            # The body is built (every view returns it whole); the server keeps
            # the connection open until it is sent, and waits for that too.
            lifecycle.leave(route)

    def _measured(
        self, environ: WSGIEnvironment, start_response: StartResponse, route: str
    ) -> Iterable[bytes]:
        status = "500"

        def note_status(line: str, headers: Any, exc_info: Any = None) -> Any:
            nonlocal status
            status = line[:3]
            return start_response(line, headers, exc_info)

        started = time.perf_counter()
        try:
            return self.app(environ, note_status)
        finally:
            self.recorder.request_finished(
                method_label(environ.get("REQUEST_METHOD", "")),
                route,
                status,
                time.perf_counter() - started,
            )
