"""The process's HTTP client to pods (`heal.podhttp`) against an in-process aiohttp server.

Caps on decoded size, compression, redirects, credentials only for the API
server, the pool bound, keep-alive. (Hostile pods as separate processes are in
tests/integration/test_heal_hostile_pods.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from promdemo_operator.heal.pod_client import (
    MAX_POD_UID_CHARS,
    ApiServerAuth,
    BodyDecoder,
    PodHttp,
    PodReadError,
)
from tests.support.ports import free_port

PAGE = b"# TYPE product_inventory gauge\nproduct_inventory -3\n"


class Server:
    def __init__(self) -> None:
        self.url = ""
        self.seen: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def record(self, request: web.Request) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.seen.append({"path": request.path, "headers": dict(request.headers), "peer": peer})

    async def page(self, request: web.Request) -> web.StreamResponse:
        self.record(request)
        return web.Response(body=PAGE)

    async def gzipped(self, request: web.Request) -> web.StreamResponse:
        self.record(request)
        return web.Response(body=gzip.compress(PAGE), headers={"Content-Encoding": "gzip"})

    async def bomb(self, request: web.Request) -> web.StreamResponse:
        # 64 MiB of zeros in ~64 KiB: the client must stop inflating at its cap.
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        body = b"".join(packer.compress(bytes(1 << 20)) for _ in range(64)) + packer.flush()
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    async def brotli(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"\x00" * 10, headers={"Content-Encoding": "br"})

    async def endless(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError):
            while True:
                await resp.write(b"filler_metric 1\n" * 4096)
        return resp

    async def big(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * (2 * 1024 * 1024))

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        self.record(request)
        raise web.HTTPFound("/page")

    async def slow(self, request: web.Request) -> web.StreamResponse:
        self.record(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.3)
        finally:
            self.in_flight -= 1
        return web.Response(body=PAGE)


@contextlib.asynccontextmanager
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    for name in ("page", "gzipped", "bomb", "brotli", "endless", "big", "redirect", "slow"):
        app.router.add_get(f"/{name}", getattr(srv, name))
        app.router.add_get(f"/api/v1/{name}", getattr(srv, name))
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]  # the bound address, through the public API
    srv.url = f"http://127.0.0.1:{port}"
    try:
        yield srv
    finally:
        await runner.cleanup()


def run(test: Callable[[Server], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with server() as srv:
            return await test(srv)

    return asyncio.run(main())


async def get(http: PodHttp, url: str, *, max_bytes: int = 1 << 20, **kw: Any) -> Any:
    return await http.request("GET", url, timeout=kw.pop("timeout", 5.0), max_bytes=max_bytes, **kw)


def test_plain_and_gzip_pages_are_read() -> None:
    async def test(srv: Server) -> None:
        async with PodHttp() as http:
            plain = await get(http, f"{srv.url}/page")
            packed = await get(http, f"{srv.url}/gzipped")
        assert (plain.status, plain.body) == (200, PAGE)
        assert (packed.status, packed.body) == (200, PAGE)
        # asks for an uncompressed answer
        assert srv.seen[0]["headers"]["Accept-Encoding"] == "identity"

    run(test)


@pytest.mark.parametrize(
    ("path", "reason"),
    [("bomb", "too_large"), ("endless", "too_large"), ("big", "too_large"), ("brotli", "garbage")],
)
def test_oversized_and_undecodable_answers_are_refused(path: str, reason: str) -> None:
    async def test(srv: Server) -> None:
        async with PodHttp() as http:
            with pytest.raises(PodReadError) as caught:
                await get(http, f"{srv.url}/{path}", max_bytes=256 * 1024)
        assert caught.value.reason == reason
        assert caught.value.status == 200

    run(test)


def test_the_decoder_never_inflates_past_its_cap() -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = packer.compress(bytes(8 << 20)) + packer.flush()
    decoder = BodyDecoder("gzip", 100_000)
    produced: list[int] = []

    def feed_all() -> None:
        for i in range(0, len(bomb), 4096):
            produced.append(len(decoder.decode(bomb[i : i + 4096])))

    with pytest.raises(PodReadError, match="larger than"):
        feed_all()
    assert sum(produced) <= 100_000
    assert decoder.total <= 100_001


def test_sink_gets_the_body_and_its_errors_pass_through() -> None:
    async def test(srv: Server) -> None:
        got: list[bytes] = []

        def refuse(chunk: bytes) -> None:
            raise ValueError("not for me")

        async with PodHttp() as http:
            answer = await get(http, f"{srv.url}/page", sink=got.append)
            with pytest.raises(ValueError, match="not for me"):
                await get(http, f"{srv.url}/page", sink=refuse)
        assert answer.body == b""
        assert b"".join(got) == PAGE

    run(test)


def test_redirects_are_not_followed() -> None:
    async def test(srv: Server) -> None:
        async with PodHttp() as http:
            answer = await get(http, f"{srv.url}/redirect")
        assert answer.status == 302
        assert [s["path"] for s in srv.seen] == ["/redirect"]

    run(test)


def test_connection_refused_is_unreachable_and_not_sent() -> None:
    async def main() -> PodReadError:
        async with PodHttp() as http:
            with pytest.raises(PodReadError) as caught:
                await get(http, f"http://127.0.0.1:{free_port()}/metrics")
        return caught.value

    error = asyncio.run(main())
    assert error.reason == "unreachable"
    assert error.sent is False


def test_api_server_credentials_go_to_the_api_server_only_and_are_renewed() -> None:
    async def test(srv: Server) -> None:
        calls = []

        def headers() -> dict[str, str]:
            calls.append(1)
            return {"Authorization": f"Bearer api-token-{len(calls)}"}

        auth = ApiServerAuth(f"{srv.url}/api", headers=headers, refresh_seconds=3600)
        async with PodHttp(api_server=auth) as http:
            await get(http, f"{srv.url}/api/v1/page")
            await get(http, f"{srv.url}/api/v1/page")
            await get(http, f"{srv.url}/page")  # a pod IP: no API credentials
            auth._refresh_seconds = 0  # renewal due
            await get(http, f"{srv.url}/api/v1/page")
        sent = [s["headers"].get("Authorization") for s in srv.seen]
        assert sent == ["Bearer api-token-1", "Bearer api-token-1", None, "Bearer api-token-2"]
        assert http.api_server_url == f"{srv.url}/api"

    run(test)


def test_from_kube_configuration() -> None:
    cfg = SimpleNamespace(
        host="https://127.0.0.1:6443",
        verify_ssl=False,
        cert_file=None,
        key_file=None,
        ssl_ca_cert=None,
        get_api_key_with_prefix=lambda key: {"BearerToken": "Bearer abc"}.get(key),
    )
    auth = ApiServerAuth.from_kube_configuration(cfg)
    headers, tls = asyncio.run(auth.options())
    assert headers == {"Authorization": "Bearer abc"}
    assert tls is False  # verify_ssl off, no client certificate: no TLS context built
    assert auth.covers("https://127.0.0.1:6443/api/v1/namespaces/x/pods/y:8080/proxy/metrics")
    assert not auth.covers("https://127.0.0.1:64430/metrics")


def test_the_pool_bounds_requests_in_flight_and_waiting_is_not_a_timeout() -> None:
    """8 requests, 2 slots, 0.3 s each: 1.2 s in all, yet none hits its 1 s timeout,
    because a request's timeout starts when it gets a slot."""

    async def test(srv: Server) -> None:
        async with PodHttp(max_connections=2) as http:
            answers = await asyncio.gather(
                *(get(http, f"{srv.url}/slow", timeout=1.0) for _ in range(8)),
                return_exceptions=True,
            )
        assert [getattr(a, "status", a) for a in answers] == [200] * 8
        assert srv.max_in_flight == 2

    run(test)


def test_connections_are_kept_alive_between_checks() -> None:
    async def test(srv: Server) -> None:
        async with PodHttp() as http:
            for _ in range(3):
                await get(http, f"{srv.url}/page")
        assert len({s["peer"] for s in srv.seen}) == 1

    run(test)


# -- the check's GET by pod IP: heal/rawhttp.py over raw sockets ----------------------


class RawServer:
    """A loopback server answering each request with the next of `answers` (bytes, or
    None: close the connection without answering); counts connections and requests."""

    def __init__(self, answers: list[bytes | None], *, close_after: bool = False) -> None:
        self.answers = list(answers)
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.url = ""
        self._server: asyncio.base_events.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                answer = self.answers.pop(0)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def chunked(*pieces: bytes) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body


def test_raw_get_reads_length_and_chunked_answers_over_one_kept_connection() -> None:
    async def main() -> None:
        answers = [ok(PAGE), chunked(PAGE[:10], PAGE[10:]), ok(b"")]
        async with RawServer(answers) as srv, PodHttp() as http:
            first = await get(http, f"{srv.url}/metrics?name[]=product_inventory")
            second = await get(http, f"{srv.url}/metrics")
            empty = await get(http, f"{srv.url}/metrics")
        assert (first.status, first.body) == (200, PAGE)
        assert (second.status, second.body) == (200, PAGE)
        assert empty.body == b""
        assert srv.connections == 1
        assert srv.requests[0].startswith(b"GET /metrics?name[]=product_inventory HTTP/1.1\r\n")
        assert b"\r\nAccept-Encoding: identity\r\n" in srv.requests[0]

    asyncio.run(main())


def test_an_idle_connection_the_pod_closed_is_retried_once_on_a_new_one() -> None:
    async def main() -> None:
        async with RawServer([ok(PAGE), ok(PAGE)], close_after=True) as srv, PodHttp() as http:
            await get(http, f"{srv.url}/metrics")
            await asyncio.sleep(0.05)  # the pod has closed the kept connection by now
            again = await get(http, f"{srv.url}/metrics")
        assert again.body == PAGE
        assert srv.connections == 2

    asyncio.run(main())


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"HTTX/1.1 200 OK\r\n\r\n", "garbage"),
        (b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", "garbage"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "garbage"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", "garbage"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", "garbage"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "garbage"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 20_000 + b"\r\n\r\n", "garbage"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "unreachable"),
        (None, "unreachable"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n", "too_large"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx", "garbage"),
    ],
)
def test_raw_get_refuses_what_is_not_a_bounded_http_answer(
    answer: bytes | None, reason: str
) -> None:
    async def main() -> None:
        async with RawServer([answer], close_after=True) as srv, PodHttp() as http:
            with pytest.raises(PodReadError) as caught:
                await get(http, f"{srv.url}/metrics", timeout=2.0)
        assert caught.value.reason == reason, caught.value

    asyncio.run(main())


def test_raw_get_error_answer_gives_its_start_and_closes() -> None:
    async def main() -> None:
        body = b'{"error": "' + b"x" * 1000 + b'"}'
        answers = [
            b"HTTP/1.1 503 Busy\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
            ok(PAGE),
        ]
        async with RawServer(answers) as srv, PodHttp() as http:
            failed = await get(http, f"{srv.url}/metrics")
            after = await get(http, f"{srv.url}/metrics")
        assert failed.status == 503
        assert failed.body == body[:256]
        assert after.body == PAGE
        assert srv.connections == 2  # the connection of an error answer is not reused

    asyncio.run(main())


def test_a_silent_pod_times_out() -> None:
    async def main() -> None:
        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(100)
            await asyncio.sleep(5)
            writer.close()

        server = await asyncio.start_server(mute, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/metrics"
        async with PodHttp() as http:
            with pytest.raises(PodReadError) as caught:
                await get(http, url, timeout=0.3)
        server.close()
        assert caught.value.reason == "timeout"

    asyncio.run(main())


def test_the_answering_pods_uid_is_read_on_both_paths_and_bounded() -> None:
    # X-Promdemo-Pod-Uid: which pod answered (the engine drops another pod's reading).
    uid = b"0b6c7a0e-aaaa-4c36-9d43-1f2a3b4c5d6e"

    async def main() -> None:
        answers = [
            ok(PAGE, b"X-Promdemo-Pod-Uid: %s\r\n" % uid),
            ok(PAGE, b"x-promdemo-pod-uid: " + b"u" * 5000 + b"\r\n"),
            ok(PAGE),
        ]
        async with RawServer(answers) as srv, PodHttp() as http:
            named = await get(http, f"{srv.url}/metrics")
            huge = await get(http, f"{srv.url}/metrics")
            unnamed = await get(http, f"{srv.url}/metrics")
        assert named.pod_uid == uid.decode()
        assert huge.pod_uid == "u" * (MAX_POD_UID_CHARS + 1)  # kept just long enough to differ
        assert unnamed.pod_uid == ""

        async def reset(request: web.Request) -> web.Response:
            return web.json_response({"error": "another pod"}, status=409,
                                     headers={"X-Promdemo-Pod-Uid": uid.decode()})  # fmt: skip

        app = web.Application()
        app.router.add_post("/inventory/reset", reset)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            async with PodHttp() as http:
                url = f"http://127.0.0.1:{runner.addresses[0][1]}/inventory/reset"
                answer = await http.request("POST", url, timeout=5.0, max_bytes=1024)
        finally:
            await runner.cleanup()
        assert (answer.status, answer.pod_uid) == (409, uid.decode())

    asyncio.run(main())
