"""The probe server (probes.py): what it answers, and that idle connections cannot lock it."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from promdemo_app.lifecycle import Lifecycle
from promdemo_app.probes import ProbeServer, respond


def status_and_body(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Connection: close" in head
    return int(head.split(b" ")[1]), json.loads(body) if body else {}


def test_answers() -> None:
    life = Lifecycle()
    assert status_and_body(respond(b"GET /healthz HTTP/1.1\r\nHost: x", life)) == (
        200,
        {"status": "ok"},
    )
    assert status_and_body(respond(b"GET /readyz?verbose HTTP/1.1", life))[0] == 200
    head = respond(b"HEAD /readyz HTTP/1.1", life)
    assert head.endswith(b"\r\n\r\n")  # no body to a HEAD
    assert status_and_body(respond(b"GET /metrics HTTP/1.1", life))[0] == 404
    assert status_and_body(respond(b"POST /healthz HTTP/1.1", life))[0] == 405
    assert status_and_body(respond(b"\x16\x03\x01junk", life))[0] == 400
    life.start_draining()
    assert status_and_body(respond(b"GET /readyz HTTP/1.1", life)) == (503, {"status": "draining"})
    assert status_and_body(respond(b"GET /healthz HTTP/1.1", life))[0] == 200


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    listener = socket.create_server(("127.0.0.1", 0))
    probes = ProbeServer(listener, Lifecycle(), max_connections=50, request_timeout=30)
    probes.start()
    yield probes.address
    probes.stop()
    listener.close()


def probe(address: tuple[str, int]) -> int:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: kubelet\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return status_and_body(answer)[0]


def test_idle_connections_beyond_the_cap_do_not_lock_the_probes_out(
    server: tuple[str, int],
) -> None:
    idle = [socket.create_connection(server, timeout=10) for _ in range(200)]
    try:
        # 200 silent connections against a cap of 50: the oldest make room.
        assert probe(server) == 200
        # The 150 oldest were closed (the 100 checked here among them).
        closed = 0
        for sock in idle[:100]:
            sock.settimeout(5)
            try:
                closed += sock.recv(1) == b""
            except ConnectionResetError:
                closed += 1
        assert closed == 100
    finally:
        for sock in idle:
            sock.close()
