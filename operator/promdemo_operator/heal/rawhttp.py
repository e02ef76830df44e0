"""A minimal HTTP/1.1 GET over keep-alive sockets: the heal check's read of a pod by IP.

A check is one small GET per pod every few seconds (`/metrics?name[]=product_inventory`,
about 200 bytes back). Through aiohttp's client that read cost the operator ~115 µs
of CPU, most of it in the request and response machinery (URL objects, header
multidicts, tracing hooks, the stream reader); here it is one `asyncio.Protocol`
per connection, the request bytes written once, the answer's head parsed with
`bytes` methods and its body handed to the caller's sink as it arrives. Everything
the answer may do is bounded as in `podhttp`: the head (`MAX_HEAD_BYTES`), a chunk
size line, the decoded body (`podhttp.BodyDecoder`), the time (the caller's timeout).

Plain http only, GET only, no proxy, no redirects followed, no cookies. A connection
is kept (at most `keepalive_seconds` idle) only after an answer that was read to its
end and did not ask to close; an idle connection the pod closed meanwhile is
retried once on a fresh one (the request was never read). Errors are
`PodReadError` with the reasons `podhttp` uses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

#: The longest answer head (status line and headers) accepted.
MAX_HEAD_BYTES = 16 * 1024
#: The longest chunk-size line of a chunked body.
MAX_CHUNK_LINE = 1024
#: Buffered bytes at which reading from the socket pauses until the reader catches up.
PAUSE_BYTES = 256 * 1024
#: Idle connections kept per pod address (a check reads each pod once).
IDLE_PER_ADDRESS = 2
#: The header naming the pod that answered (the app's PROMDEMO_POD_UID), and how
#: much of it is kept: longer than any UID, short enough for a log line.
POD_UID_HEADER = "X-Promdemo-Pod-Uid"
MAX_POD_UID_CHARS = 128


_POD_UID_FIELD = POD_UID_HEADER.lower().encode("ascii")

#: (status, Content-Encoding, Content-Length) → where each piece of a 2xx body goes.
Decode = Callable[[int, str | None, int | None], Callable[[bytes], None]]


class Closed(Exception):
    """The connection ended before the answer did; `started`: some of it had arrived."""

    def __init__(self, started: bool) -> None:
        super().__init__("connection closed")
        self.started = started


class Wire(asyncio.Protocol):
    """One connection: bytes in a buffer, a waiter woken when more arrive."""

    __slots__ = ("_waiter", "buffer", "closed", "idle_since", "paused", "received", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False
        self.paused = False
        self.received = 0
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.received += len(data)
        if len(self.buffer) > PAUSE_BYTES and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def more(self, started: bool) -> None:
        """Wait for more bytes; `Closed` when none will come."""
        if self.closed:
            raise Closed(started or self.received > 0)
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Answer:
    """What `RawPool.get` read: the status, the headers asked for, the body if no sink."""

    __slots__ = ("body", "encoding", "pod_uid", "status")

    def __init__(self, status: int, encoding: str | None, body: bytes, pod_uid: str = "") -> None:
        self.status = status
        self.encoding = encoding
        self.body = body
        self.pod_uid = pod_uid


class BadAnswer(Exception):
    """The answer is not HTTP/1.x as this client reads it (reason `garbage`)."""


class RawPool:
    """Keep-alive connections by address, and the GET over them."""

    def __init__(self, *, keepalive_seconds: float, user_agent: str) -> None:
        self.keepalive_seconds = keepalive_seconds
        self.user_agent = user_agent
        self._idle: dict[tuple[str, int], list[Wire]] = {}

    def _take(self, key: tuple[str, int]) -> Wire | None:
        wires = self._idle.get(key)
        now = time.monotonic()
        while wires:
            wire = wires.pop()
            if not wires:
                del self._idle[key]
            if wire.closed or wire.buffer or now - wire.idle_since > self.keepalive_seconds:
                wire.close()
                continue
            return wire
        return None

    def _give_back(self, key: tuple[str, int], wire: Wire) -> None:
        wires = self._idle.setdefault(key, [])
        if len(wires) >= IDLE_PER_ADDRESS:
            wire.close()
            return
        wire.idle_since = time.monotonic()
        wires.append(wire)

    def close(self) -> None:
        for wires in self._idle.values():
            for wire in wires:
                wire.close()
        self._idle.clear()

    async def get(
        self,
        host: str,
        port: int,
        target: str,
        *,
        headers: dict[str, str],
        decode: Decode,
        error_bytes: int,
    ) -> Answer:
        """GET `target` from host:port. `decode(encoding, length)` is called once the head
        of a 2xx answer is read and returns the function each body piece goes to (it
        raises to refuse); a non-2xx answer's first `error_bytes` come back as its body.

        Raises `ConnectionError`/`OSError` (no connection), `Closed`, `BadAnswer`.
        """
        key = (host, port)
        lines = [f"GET {target} HTTP/1.1", f"Host: {host}:{port}", f"User-Agent: {self.user_agent}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        wire = self._take(key)
        if wire is not None:
            try:
                return await self._exchange(key, wire, request, decode, error_bytes)
            except Closed as e:
                if e.started:
                    raise
                # The pod closed the idle connection before reading the request: once more.
        loop = asyncio.get_running_loop()
        _, wire = await loop.create_connection(Wire, host, port)
        return await self._exchange(key, wire, request, decode, error_bytes)

    async def _exchange(
        self,
        key: tuple[str, int],
        wire: Wire,
        request: bytes,
        decode: Decode,
        error_bytes: int,
    ) -> Answer:
        clean = False
        try:
            assert wire.transport is not None
            wire.received = 0
            wire.transport.write(request)
            answer, keep = await self._read(wire, decode, error_bytes)
            clean = keep
            return answer
        finally:
            if clean and not wire.closed and not wire.buffer:
                self._give_back(key, wire)
            else:
                wire.close()

    async def _read(
        self,
        wire: Wire,
        decode: Decode,
        error_bytes: int,
    ) -> tuple[Answer, bool]:
        buf = wire.buffer
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if len(buf) > MAX_HEAD_BYTES:
                raise BadAnswer(f"answer head longer than {MAX_HEAD_BYTES} bytes")
            await wire.more(False)
        if end > MAX_HEAD_BYTES:
            raise BadAnswer(f"answer head longer than {MAX_HEAD_BYTES} bytes")
        head = bytes(buf[:end])
        del buf[: end + 4]
        status, version, fields = _parse_head(head)
        length_field = fields.get(b"content-length")
        chunked = b"chunked" in fields.get(b"transfer-encoding", b"").lower()
        length: int | None = None
        if length_field is not None and not chunked:
            if not length_field.isdigit() or len(length_field) > 18:
                raise BadAnswer("bad Content-Length")
            length = int(length_field)
        keep = version == b"HTTP/1.1" and b"close" not in fields.get(b"connection", b"").lower()
        uid_field = fields.get(_POD_UID_FIELD, b"")[: MAX_POD_UID_CHARS + 1]
        pod_uid = uid_field.decode("latin-1")
        if not 200 <= status < 300:
            # The start of the body, for the log: what has come, or what one wait brings.
            want = error_bytes if length is None else min(error_bytes, length)
            try:
                while len(buf) < want and (length is not None or not buf):
                    await wire.more(True)
            except Closed:
                pass
            return Answer(status, None, bytes(buf[:error_bytes]), pod_uid), False
        encoding_field = fields.get(b"content-encoding")
        encoding = encoding_field.decode("latin-1") if encoding_field is not None else None
        feed = decode(status, encoding, length)
        if chunked:
            await _read_chunked(wire, feed)
        elif length is not None:
            await _read_length(wire, feed, length)
        else:
            await _read_to_close(wire, feed)
            keep = False
        return Answer(status, encoding, b"", pod_uid), keep


def _parse_head(head: bytes) -> tuple[int, bytes, dict[bytes, bytes]]:
    first, _, rest = head.partition(b"\r\n")
    version, _, tail = first.partition(b" ")
    code = tail[:3]
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or not code.isdigit() or len(code) != 3:
        raise BadAnswer(f"not an HTTP/1.x status line: {first[:60]!r}")
    fields: dict[bytes, bytes] = {}
    if rest:
        for line in rest.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise BadAnswer(f"bad header line {line[:60]!r}")
            name = name.lower()
            value = value.strip()
            conflict = name in fields and fields[name] != value
            if conflict and name in (b"content-length", b"transfer-encoding"):
                raise BadAnswer(f"conflicting {name.decode()} headers")
            fields[name] = value
    return int(code), version, fields


async def _read_length(wire: Wire, feed: Callable[[bytes], None], length: int) -> None:
    buf = wire.buffer
    left = length
    while left:
        if not buf:
            await wire.more(True)
            continue
        piece = bytes(buf[:left])
        del buf[: len(piece)]
        left -= len(piece)
        feed(piece)


async def _read_to_close(wire: Wire, feed: Callable[[bytes], None]) -> None:
    buf = wire.buffer
    while True:
        if buf:
            piece = bytes(buf)
            buf.clear()
            feed(piece)
        if wire.closed:
            return
        try:
            await wire.more(True)
        except Closed:
            if buf:
                continue
            return


async def _read_chunked(wire: Wire, feed: Callable[[bytes], None]) -> None:
    buf = wire.buffer
    while True:
        while (nl := buf.find(b"\r\n")) < 0:
            if len(buf) > MAX_CHUNK_LINE:
                raise BadAnswer("chunk size line too long")
            await wire.more(True)
        size_text = bytes(buf[:nl]).split(b";", 1)[0].strip()
        del buf[: nl + 2]
        if not size_text or len(size_text) > 16 or size_text.strip(b"0123456789abcdefABCDEF"):
            raise BadAnswer("bad chunk size")
        size = int(size_text, 16)
        if size == 0:
            # Trailers (bounded), then the empty line.
            while (end := buf.find(b"\r\n")) != 0:
                if end > 0:
                    del buf[: end + 2]
                    continue
                if len(buf) > MAX_CHUNK_LINE:
                    raise BadAnswer("trailer too long")
                await wire.more(True)
            del buf[:2]
            return
        await _read_length(wire, feed, size)
        while len(buf) < 2:
            await wire.more(True)
        if buf[:2] != b"\r\n":
            raise BadAnswer("chunk not followed by CRLF")
        del buf[:2]
