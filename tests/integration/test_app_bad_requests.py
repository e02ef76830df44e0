"""Malformed and hostile requests against the real server, over raw sockets.

Every one gets an answer (a 4xx: gunicorn's own small page for what its parser
refuses, the app's JSON for the rest) or, for bytes that never complete a
request line, is closed after the receive timeout; each with one log line and
never a traceback; none adds a metrics series; an oversized body's 413 reaches
the client.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import ssl
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration


def client_hello() -> bytes:
    """The first bytes a TLS client sends (`curl https://` on an http port)."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="shop.example")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def exchange(base_url: str, data: bytes, method: str = "GET") -> http.client.HTTPResponse:
    """Send `data` on a new connection; the parsed answer (its body already read)."""
    url = urlsplit(base_url)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    try:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        response.body = response.read()  # type: ignore[attr-defined]
        return response
    finally:
        sock.close()


def series(base_url: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    return {
        (s.name, tuple(sorted(s.labels.items())))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


MALFORMED = {
    "lower-case method": b"get /healthz HTTP/1.1\r\nHost: shop\r\n\r\n",
    "NUL in a header": b"GET /inventory HTTP/1.1\r\nHost: shop\r\nX-Note: a\x00b\r\n\r\n",
    "raw 0xFF in the path": b"GET /\xffinventory HTTP/1.1\r\nHost: shop\r\n\r\n",
    # RFC 9112 2.2 lets a server refuse a bare LF; before, waitress waited for
    # more and the client heard nothing.
    "header block ending in bare LF": b"GET /inventory HTTP/1.1\r\nHost: shop\n\n",
    "request line ending in bare LF": b"GET /inventory HTTP/1.1\nHost: shop\n\n",
}
# gunicorn's one log line for what its parser refuses.
REFUSED_LINE = "Invalid request from ip="


def log_lines(log: str, fragment: str) -> list[str]:
    return [line for line in log.splitlines() if fragment in line]


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_request_gets_400_and_one_log_line(start_app, name: str) -> None:
    proc, url = start_app()
    response = exchange(url, MALFORMED[name])
    assert response.status == 400
    assert response.getheader("Connection") == "close"
    assert len(response.body) < 1024  # type: ignore[attr-defined]
    # The server is fine afterwards.
    assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200
    log = proc.log()
    assert "Traceback" not in log
    assert " ERROR " not in log
    assert len(log_lines(log, REFUSED_LINE)) == 1, log


def test_content_length_with_transfer_encoding_is_answered_and_closed(start_app) -> None:
    # RFC 9112 6.1: such a message may be an attempt at request smuggling; the
    # server must close the connection after answering it.
    proc, url = start_app()
    parts = urlsplit(url)
    smuggled = b"GET /inventory/reset HTTP/1.1\r\nHost: shop\r\n\r\n"
    head = (
        b"POST /order HTTP/1.1\r\nHost: shop\r\nContent-Length: %d\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % (5 + len(smuggled))
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head + smuggled)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    # One answer, then the end of the connection (recv returned b""): the
    # request behind it was never read as a second request.
    assert received.startswith(b"HTTP/1.1 4"), received[:100]
    assert received.count(b"HTTP/1.1 ") == 1, received
    assert b"inventory" not in received.split(b"\r\n\r\n", 1)[1]
    assert len(log_lines(proc.log(), REFUSED_LINE)) == 1


def test_bytes_that_never_complete_a_request_are_closed_with_one_line(start_app) -> None:
    # Binary junk and a TLS ClientHello never end a request line: gunicorn
    # waits for more, and the socket's receive timeout (20 s) ends the wait.
    proc, url = start_app()
    parts = urlsplit(url)
    socks = [socket.create_connection((parts.hostname, parts.port), timeout=60) for _ in range(2)]
    try:
        socks[0].sendall(b"\x00\x01\x02\x03\x04\x05")
        socks[1].sendall(client_hello())
        # Meanwhile the server answers others.
        assert httpx.get(f"{url}/inventory", timeout=30).status_code == 200
        for sock in socks:
            # Closed (or refused with a 4xx) well before the 60 s client timeout.
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
            assert received == b"" or received.startswith(b"HTTP/1.1 4"), received[:100]
    finally:
        for sock in socks:
            sock.close()
    log = proc.log()
    assert "Traceback" not in log
    said = log_lines(log, "client stalled") + log_lines(log, REFUSED_LINE)
    assert len(said) == 2, log


def test_a_long_host_label_is_served_and_adds_no_series(start_app) -> None:
    _, url = start_app(env={"PROMDEMO_SIMULATION": "off"})
    before = series(url)
    for host in ("a" * 64, "x..y", "a" * 63 + ".example:8080"):
        request = f"POST /order HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
        assert exchange(url, request.encode(), "POST").status == 200, host
    assert series(url) == before


def fuzzed_request(rng: random.Random) -> tuple[bytes, str]:
    """A complete request (so it is always answered) with random defects; and its method."""
    method = rng.choice(
        ["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW", "get", "Post", "M"]
    )
    path = rng.choice(["/", "/order", "/inventory", "/inventory/reset", "/metrics", "/x"])
    path += rng.choice(["", "/", "//", "?q=1", "%2F", "/../order", "#frag", "\x7f", "\xe9"])
    if rng.random() < 0.1:
        path = rng.choice(["http://shop", "http://shop/order", "?q=1", "*", "//"])
    host = rng.choice(
        ["shop", "a" * rng.randint(60, 70), "x..y", "", "[::1", "h\xe9", "a b", "1.2.3.4:99"]
    )
    headers = [f"Host: {host}"]
    for _ in range(rng.randint(0, 4)):
        name = rng.choice(["X-A", "Accept", "Cookie", "X_Under", "Expect", "Te", "Bad Name"])
        value = "".join(rng.choice("abc;=, ") for _ in range(rng.randint(0, 20)))
        if rng.random() < 0.05:
            value += rng.choice(["\t", "\x01", "\x00", "\xff"])
        headers.append(f"{name}: {value}")
    body = bytes(rng.randrange(256) for _ in range(rng.choice([0, 0, 5, 100])))
    if rng.random() < 0.2:
        headers.append("Transfer-Encoding: chunked")
        payload = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    else:
        headers.append(f"Content-Length: {len(body)}")
        payload = body
    version = rng.choice(["HTTP/1.1"] * 6 + ["HTTP/1.0", "HTTP/2.0", "HTTP/1.x"])
    head = f"{method} {path} {version}\r\n" + "\r\n".join(headers) + "\r\n\r\n"
    return head.encode("latin-1") + payload, method


def test_fuzzed_requests_are_all_answered_and_add_no_series(start_app) -> None:
    proc, url = start_app(
        env={"PROMDEMO_SIMULATION": "off", "PROMDEMO_INITIAL_INVENTORY": "1000000"}
    )
    before = series(url)
    rng = random.Random(14)
    statuses: dict[int, int] = {}
    for _ in range(2000):
        data, method = fuzzed_request(rng)
        response = exchange(url, data, "HEAD" if method == "HEAD" else "GET")
        statuses[response.status] = statuses.get(response.status, 0) + 1
        if response.body:  # type: ignore[attr-defined]
            content_type = response.getheader("Content-Type") or ""
            # The app's answers are JSON (or the metrics); gunicorn's parser
            # refuses the rest with its own small page, always a 4xx.
            if not content_type.startswith(("application/json", "text/plain; version=0.0.4")):
                assert content_type == "text/html", content_type
                assert 400 <= response.status < 500 or response.status == 501
    print(f"\nstatuses of 2000 fuzzed requests: {dict(sorted(statuses.items()))}")
    assert series(url) == before
    # Nothing was left out of http_requests_total for want of a series either.
    assert "has no series" not in proc.log()


def test_an_oversized_body_gets_its_413_before_the_connection_closes(start_app) -> None:
    # A client that sends its whole body before it reads (as `requests` does),
    # with a small send buffer so most of the body is still unsent when the
    # server answers: closing then would reset the connection under it.
    _, url = start_app()
    parts = urlsplit(url)
    body = b"x" * (2 * 1024 * 1024)
    head = b"POST /order HTTP/1.1\r\nHost: shop\r\nContent-Length: %d\r\n\r\n" % len(body)
    for attempt in range(3):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
            sock.settimeout(30)
            sock.connect((parts.hostname, parts.port))
            sock.sendall(head + body)
            response = http.client.HTTPResponse(sock, method="POST")
            response.begin()
            assert response.status == 413, attempt
            assert "error" in json.loads(response.read())
