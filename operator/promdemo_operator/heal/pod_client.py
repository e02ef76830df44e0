"""One HTTP client for every heal engine of a process, reading untrusted pods with bounds.

Build ONE `PodHttp` when the process starts, give it to every `HealEngine`
(``client=``), close it when the process stops::

    pod_http = PodHttp()                       # pods reached by IP (or loopback)
    pod_http = PodHttp(api_server=ApiServerAuth.from_kube_configuration(cfg))
                                               # ... and through the API server's pod proxy
    engine = HealEngine(policy, client=pod_http, proxy_token_header=..., ...)
    await pod_http.aclose()

A GET to a pod by IP (plain http: the heal check) goes over `rawhttp.RawPool`, a
minimal keep-alive HTTP/1.1 client (a tenth of aiohttp's CPU per read, see
docs/heal.md); everything else (resets, the API server's pod proxy over TLS)
over an aiohttp session. Both share one bound: at most
`max_connections` requests in flight in the process (a request waits for a slot
*before* its timeout starts, so a busy pool never looks like a slow pod), idle
connections kept alive for `keepalive_seconds` so each pod is reached over the
connection of the previous check, no TLS context unless the API server needs
one, no proxy settings from the environment, no cookies, no redirects followed.
Requests to URLs under `ApiServerAuth.url` carry the API server's credentials;
no other request does.

Every answer is treated as hostile (a tenant chooses the pod's image): the body
is read chunk by chunk and capped on its *decoded* size (`ReadLimits`); gzip or
deflate answers are decoded incrementally with the same cap (a gzip bomb stops
at the cap), other encodings are refused; whatever goes wrong comes back as
`PodReadError` with a fixed `reason` (``timeout``, ``unreachable``,
``too_large``, ``garbage``).
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from promdemo_operator.heal.exposition import clip
from promdemo_operator.heal.rawhttp import (
    MAX_POD_UID_CHARS,
    POD_UID_HEADER,
    BadAnswer,
    Closed,
    RawPool,
)

#: A pod's /metrics page is ~18 KB; a page beyond this is refused (`too_large`).
MAX_METRICS_BYTES = 1024 * 1024
#: A reset answer is ~20 bytes of JSON; beyond this it is refused (`too_large`).
MAX_ANSWER_BYTES = 64 * 1024
#: Bytes of a non-2xx answer kept for the log line.
ERROR_SNIPPET_BYTES = 256
#: Requests in flight in the whole process (each engine takes at most its own
#: `concurrency`, 64 by default, so one PromDemo cannot hold every connection).
DEFAULT_MAX_CONNECTIONS = 128
#: Idle connections are kept this long: longer than the heal interval (5 s by
#: default), shorter than the app's idle timeout (waitress closes after 120 s).
KEEPALIVE_SECONDS = 30.0
#: The API server's credentials are re-read (exec plugins renew tokens) this often.
CREDENTIALS_REFRESH_SECONDS = 60.0
USER_AGENT = "promdemo-operator-heal"


@dataclass(frozen=True)
class ReadLimits:
    """Caps on the decoded size of what a pod may send."""

    metrics_bytes: int = MAX_METRICS_BYTES
    answer_bytes: int = MAX_ANSWER_BYTES


class PodReadError(Exception):
    """A request to a pod that gave no usable answer.

    `reason`: ``timeout``, ``unreachable``, ``too_large`` or ``garbage``.
    `sent`: False only when no connection could be made (the pod surely saw
    nothing). `status`: the answer's status when its status line arrived.
    """

    def __init__(
        self, reason: str, detail: str, *, sent: bool = True, status: int | None = None
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.sent = sent
        self.status = status


@dataclass(frozen=True)
class PodAnswer:
    """A pod's answer: its status and its (decoded, capped) body.

    With a `sink`, a 2xx body went to the sink and `body` is empty; a non-2xx
    answer's body is at most `ERROR_SNIPPET_BYTES` raw bytes, for the log.
    `pod_uid`: the answer's `X-Promdemo-Pod-Uid` (empty without one), at most
    `MAX_POD_UID_CHARS` + 1 characters (so an over-long one still differs).
    """

    status: int
    body: bytes = b""
    pod_uid: str = ""


Sink = Callable[[bytes], None]


class PodClient(Protocol):
    """What a `HealEngine` asks of its client to pods: `PodHttp`, or a stand-in
    with the same bounded `request` (a benchmark's comparison reader)."""

    async def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
        sink: Sink | None = None,
    ) -> PodAnswer: ...

    async def aclose(self) -> None: ...


class _SinkError(Exception):
    """What the sink raised, carried past the transport's own error handling."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _deliver(sink: Sink, data: bytes) -> None:
    try:
        sink(data)
    except Exception as e:
        raise _SinkError(e) from e


class BodyDecoder:
    """Decodes a body by its Content-Encoding, never producing more than `limit` bytes."""

    def __init__(self, encoding: str | None, limit: int) -> None:
        self.limit = limit
        self.total = 0
        coding = (encoding or "identity").strip().lower()
        self._zlib: Any = None
        if coding in ("gzip", "x-gzip", "deflate"):
            # wbits 47 = 32 + 15: gzip or zlib header, detected from the data.
            self._zlib = zlib.decompressobj(47)
        elif coding != "identity":
            raise PodReadError("garbage", f"unsupported Content-Encoding {coding[:40]!r}")

    @property
    def identity(self) -> bool:
        return self._zlib is None

    def decode(self, chunk: bytes) -> bytes:
        if self._zlib is None:
            out = chunk
        else:
            try:
                # Ask for one byte more than the budget left: getting it means "too large"
                # without ever inflating more than the cap.
                out = self._zlib.decompress(chunk, self.limit - self.total + 1)
            except zlib.error as e:
                raise PodReadError("garbage", f"bad compressed body: {e}") from e
            if self._zlib.unconsumed_tail:
                raise PodReadError("too_large", f"decoded body larger than {self.limit} bytes")
        self.total += len(out)
        if self.total > self.limit:
            raise PodReadError("too_large", f"body larger than {self.limit} bytes")
        return out

    def flush(self) -> bytes:
        if self._zlib is None:
            return b""
        return self.decode(b"")


class ApiServerAuth:
    """The API server's URL and credentials, for requests through its pod proxy.

    `headers` (called in a thread, at most every `refresh_seconds`: an exec
    credential plugin may run a command) gives the credential headers;
    `ssl_context` (called once, in a thread, at the first proxied request) the
    TLS context, or `None`/`False` for plain http or no verification.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Callable[[], Mapping[str, str]] | Mapping[str, str] | None = None,
        ssl_context: Callable[[], ssl.SSLContext | bool] | ssl.SSLContext | bool | None = None,
        refresh_seconds: float = CREDENTIALS_REFRESH_SECONDS,
    ) -> None:
        self.url = url.rstrip("/")
        self._headers_fn = headers if callable(headers) else None
        self._headers: dict[str, str] | None = None if callable(headers) else dict(headers or {})
        self._ssl_fn = ssl_context if callable(ssl_context) else None
        self._ssl: ssl.SSLContext | bool | None = None if callable(ssl_context) else ssl_context
        self._refresh_seconds = refresh_seconds
        self._headers_at = 0.0
        self._lock = asyncio.Lock()

    def covers(self, url: str) -> bool:
        """True for URLs under the API server (these get its credentials)."""
        return url.startswith(self.url + "/")

    async def options(self) -> tuple[dict[str, str], ssl.SSLContext | bool]:
        """The credential headers and the TLS setting for one proxied request."""
        stale = time.monotonic() - self._headers_at >= self._refresh_seconds
        if (self._headers_fn is not None and (self._headers is None or stale)) or (
            self._ssl_fn is not None and self._ssl is None
        ):
            async with self._lock:
                if self._ssl_fn is not None and self._ssl is None:
                    self._ssl = await asyncio.to_thread(self._ssl_fn)
                fresh = time.monotonic() - self._headers_at < self._refresh_seconds
                if self._headers_fn is not None and (self._headers is None or not fresh):
                    self._headers = dict(await asyncio.to_thread(self._headers_fn))
                    self._headers_at = time.monotonic()
        # ssl=False: no verification (aiohttp's meaning); for an http:// API server unused.
        return dict(self._headers or {}), self._ssl if self._ssl is not None else False

    @classmethod
    def from_kube_configuration(cls, cfg: Any) -> ApiServerAuth:
        """From a `kubernetes.client.Configuration` (what kubeconfig or in-cluster loading fills).

        Bearer token (static or from an exec/auth-provider hook, renewed every
        `CREDENTIALS_REFRESH_SECONDS`), client certificate, CA file,
        `verify_ssl` and `assert_hostname` are honoured.
        """

        def headers() -> dict[str, str]:
            auth = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
                "authorization"
            )
            if not auth:
                return {}
            return {"Authorization": auth if " " in auth else f"Bearer {auth}"}

        def context() -> ssl.SSLContext | bool:
            if not cfg.verify_ssl and not cfg.cert_file:
                return False
            ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
            if not cfg.verify_ssl:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif getattr(cfg, "assert_hostname", None) is False:
                ctx.check_hostname = False
            if cfg.cert_file:
                ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
            return ctx

        return cls(cfg.host, headers=headers, ssl_context=context)


async def _read_body(
    chunks: Any, encoding: str | None, length: int | None, limit: int, sink: Sink | None
) -> bytes:
    """Read an async iterator of raw chunks, decoded and capped, into `sink` or a bytes."""
    decoder = BodyDecoder(encoding, limit)
    if decoder.identity and length is not None and length > limit:
        raise PodReadError("too_large", f"Content-Length {length} larger than {limit} bytes")
    parts: list[bytes] = []
    async for chunk in chunks:
        out = decoder.decode(chunk)
        if out:
            if sink is not None:
                _deliver(sink, out)
            else:
                parts.append(out)
    tail = decoder.flush()
    if tail:
        if sink is not None:
            _deliver(sink, tail)
        else:
            parts.append(tail)
    return b"".join(parts)


async def _aiohttp_chunks(resp: aiohttp.ClientResponse) -> Any:
    while chunk := await resp.content.readany():
        yield chunk


class PodHttp:
    """The process's HTTP client to pods (see the module docstring). Async-safe, one loop."""

    def __init__(
        self,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        api_server: ApiServerAuth | None = None,
        limits: ReadLimits | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.max_connections = max_connections
        self.keepalive_seconds = keepalive_seconds
        self.api_server = api_server
        self.limits = limits or ReadLimits()
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._raw: RawPool | None = None
        self._closed = False

    @property
    def api_server_url(self) -> str | None:
        """The API server's URL for `heal.access.pod_proxy_url`, when the proxy is set up."""
        return self.api_server.url if self.api_server is not None else None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop (aiohttp binds to it).
        if self._closed:
            raise RuntimeError("PodHttp is closed")
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            keepalive_timeout=self.keepalive_seconds,
            ssl=False,  # plain http to pods; the API server's context is per request
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # decoded here, under the cap
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            timeout=aiohttp.ClientTimeout(total=None),  # each request has its own
        )
        self._slots = asyncio.Semaphore(self.max_connections)
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
        sink: Sink | None = None,
    ) -> PodAnswer:
        """One request; the whole answer within `timeout`, its decoded body within `max_bytes`.

        Raises `PodReadError`, or what `sink` raises (the read stops there).
        """
        if (
            method == "GET"
            and url.startswith("http://")
            and not (self.api_server is not None and self.api_server.covers(url))
        ):
            address = _split_http_url(url)
            if address is not None:
                return await self._raw_get(*address, timeout, max_bytes, headers, sink)
        session = self._session or self._open()
        assert self._slots is not None
        send_headers = dict(headers or {})
        tls: ssl.SSLContext | bool = False
        if self.api_server is not None and self.api_server.covers(url):
            auth, tls = await self.api_server.options()
            send_headers.update(auth)
        status: int | None = None
        async with self._slots:
            try:
                async with asyncio.timeout(timeout):
                    async with session.request(
                        method, url, headers=send_headers, ssl=tls, allow_redirects=False
                    ) as resp:
                        status = resp.status
                        uid = resp.headers.get(POD_UID_HEADER, "")[: MAX_POD_UID_CHARS + 1]
                        if not 200 <= status < 300:
                            snippet = await resp.content.read(ERROR_SNIPPET_BYTES)
                            return PodAnswer(status, snippet, uid)
                        body = await _read_body(
                            _aiohttp_chunks(resp),
                            resp.headers.get("Content-Encoding"),
                            resp.content_length,
                            max_bytes,
                            sink,
                        )
                        return PodAnswer(status, body, uid)
            except _SinkError as e:
                raise e.error from None
            except PodReadError as e:
                e.status = status
                raise
            except TimeoutError as e:
                raise PodReadError(
                    "timeout", f"no complete answer within {timeout:g}s", status=status
                ) from e
            except aiohttp.ClientConnectorError as e:
                raise PodReadError("unreachable", _describe(e), sent=False) from e
            except aiohttp.ClientResponseError as e:
                # Not HTTP: a malformed status line or headers.
                raise PodReadError("garbage", _describe(e), status=status) from e
            except (aiohttp.ClientError, OSError, ValueError) as e:
                # ValueError: aiohttp refuses some malformed answers (e.g. bad headers) so.
                raise PodReadError("unreachable", _describe(e), status=status) from e

    async def _raw_get(
        self,
        host: str,
        port: int,
        target: str,
        timeout: float,
        max_bytes: int,
        headers: Mapping[str, str] | None,
        sink: Sink | None,
    ) -> PodAnswer:
        """A GET over the raw keep-alive pool, with the same bounds and errors."""
        if self._closed:
            raise RuntimeError("PodHttp is closed")
        if self._raw is None:
            self._raw = RawPool(keepalive_seconds=self.keepalive_seconds, user_agent=USER_AGENT)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_connections)
        send = {"Accept": "*/*", "Accept-Encoding": "identity", **dict(headers or {})}
        parts: list[bytes] = []
        decoders: list[BodyDecoder] = []
        status: int | None = None

        def decode(code: int, encoding: str | None, length: int | None) -> Sink:
            nonlocal status
            status = code
            decoder = BodyDecoder(encoding, max_bytes)
            if decoder.identity and length is not None and length > max_bytes:
                raise PodReadError(
                    "too_large", f"Content-Length {length} larger than {max_bytes} bytes"
                )
            decoders.append(decoder)

            def feed(chunk: bytes) -> None:
                out = decoder.decode(chunk)
                if out:
                    if sink is not None:
                        _deliver(sink, out)
                    else:
                        parts.append(out)

            return feed

        async with self._slots:
            try:
                async with asyncio.timeout(timeout):
                    answer = await self._raw.get(
                        host, port, target, headers=send, decode=decode,
                        error_bytes=ERROR_SNIPPET_BYTES,
                    )  # fmt: skip
                if not 200 <= answer.status < 300:
                    return PodAnswer(answer.status, answer.body, answer.pod_uid)
                tail = decoders[0].flush() if decoders else b""
                if tail:
                    if sink is not None:
                        _deliver(sink, tail)
                    else:
                        parts.append(tail)
                return PodAnswer(answer.status, b"".join(parts), answer.pod_uid)
            except _SinkError as e:
                raise e.error from None
            except PodReadError as e:
                e.status = status
                raise
            except TimeoutError as e:
                raise PodReadError(
                    "timeout", f"no complete answer within {timeout:g}s", status=status
                ) from e
            except BadAnswer as e:
                raise PodReadError("garbage", clip(str(e), 200), status=status) from e
            except Closed as e:
                raise PodReadError(
                    "unreachable", "the connection closed before the answer ended", status=status
                ) from e
            except OSError as e:
                raise PodReadError("unreachable", _describe(e), sent=False) from e

    async def aclose(self) -> None:
        self._closed = True
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> PodHttp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _split_http_url(url: str) -> tuple[str, int, str] | None:
    """(host, port, path?query) of a plain ``http://host[:port]/path`` URL; None otherwise."""
    rest = url[len("http://") :]
    authority, slash, path = rest.partition("/")
    if "@" in authority or not authority:
        return None
    if authority.startswith("["):  # [IPv6]:port
        host, _, port_text = authority[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = authority.partition(":")
    if port_text and not port_text.isdigit():
        return None
    port = int(port_text) if port_text else 80
    if not 0 < port < 65536:
        return None
    return host, port, slash + path if slash else "/"


def _describe(e: BaseException) -> str:
    # Exception texts may quote what the pod sent: keep the log line printable and short.
    return clip(f"{type(e).__name__}: {e}", 200)
