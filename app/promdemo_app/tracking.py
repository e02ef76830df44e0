"""Every request once, in one WSGI middleware: in flight for the drain, and the `http_*` metrics.

One wrapper around the Flask app instead of three Flask hooks per request.
The route label comes from the path: every route of the service is a fixed
path, which Flask matches exactly once leading slashes are collapsed (no other
slashes merged or added), so a dict lookup gives the same answer
(tests/unit/app/test_metrics.py checks it against Flask's routing). Unknown
paths share the label `unmatched`; probes and scrapes are counted in flight
but not measured. The status comes from `start_response`; a request whose app
raised counts as a 500.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import ClientDisconnected
from werkzeug.wsgi import ClosingIterator

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
        prefetch_bytes: int = 0,
    ) -> None:
        self.app = app
        self.lifecycle = lifecycle
        self.recorder = recorder
        self.routes = dict(routes)
        # Bodies up to this size are received before the request is timed (below).
        self.prefetch_bytes = prefetch_bytes

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
        sock = environ.get("gunicorn.socket")
        key = id(environ)
        if sock is not None and "wsgi.input" in environ:
            environ["wsgi.input"] = _Input(environ["wsgi.input"], lifecycle, key, sock)
            self._prefetch(environ)
        lifecycle.enter(route)
        try:
            if route is None:
                body = self.app(environ, start_response)
            else:
                body = self._measured(environ, start_response, route)
        finally:
            # The body is built (every view returns it whole): what is left is
            # the server writing it, which the drain bounds (drain.py).
            lifecycle.leave(route)
        if sock is None:
            return body
        lifecycle.writing(key, sock)
        return ClosingIterator(body, lambda: lifecycle.written(key))

    def _prefetch(self, environ: WSGIEnvironment) -> None:
        """Receive a body of a known, allowed length before the request is timed.

        gunicorn hands the app a request once its headers are in; the body is
        read from the socket when the app asks for it. Timed from there,
        `http_request_latency_seconds` would include how long the client took
        to send its body (a busy client's second packet), where it measured the
        answer alone on the server before (whose event loop received the
        whole request first) and the lessons read it so. A body over the
        limit, or chunked, is left to the app (its 413 or 400).
        """
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isascii() or not length.isdigit():
            return
        size = int(length)
        if not 0 < size <= self.prefetch_bytes:
            return
        try:
            body = environ["wsgi.input"].read(size)
        except ClientDisconnected:
            body = b""
        # Short: the client went away; the app's read then fails as it would have.
        environ["wsgi.input"] = io.BytesIO(body)

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


class _Input:
    """The request body stream, telling the lifecycle while a read waits for the client.

    While draining, a read that waits too long is ended (drain.py): a client
    that sent half a body and went silent must not hold the exit.
    """

    def __init__(self, stream: Any, lifecycle: Lifecycle, key: int, sock: Any) -> None:
        self._stream = stream
        self._lifecycle = lifecycle
        self._key = key
        self._sock = sock

    def _call(self, name: str, *args: Any) -> Any:
        self._lifecycle.receiving(self._key, self._sock)
        try:
            return getattr(self._stream, name)(*args)
        except OSError as e:
            # The client stalled past the socket's receive timeout, or the
            # drain ended the read: a 400 for the app, not a crash.
            raise ClientDisconnected(f"the request body stopped arriving ({e})") from None
        finally:
            self._lifecycle.received(self._key)

    def read(self, *args: Any) -> bytes:
        return self._call("read", *args)  # type: ignore[no-any-return]

    def readline(self, *args: Any) -> bytes:
        return self._call("readline", *args)  # type: ignore[no-any-return]

    def readlines(self, *args: Any) -> list[bytes]:
        return self._call("readlines", *args)  # type: ignore[no-any-return]

    def __iter__(self) -> Any:
        return iter(self.readline, b"")
