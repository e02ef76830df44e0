"""Fake pods for the heal engine: one process, one listener per pod on 127.0.0.x, honest or hostile.

    python -m tests.support.fake_pods --page PAGE_FILE \\
        --pod a=ok --pod b=endless --pod c=ok:late --count 500:ok

prints one JSON line ``{"a": "http://127.0.0.2:41234", ...}`` once every pod
listens, then serves until SIGTERM. ``NAME=METRICS[:RESET][@VALUE]``: what the
pod does on ``GET /metrics`` and on ``POST /inventory/reset`` (and its own
inventory instead of ``--value``); ``--count N:METRICS[:RESET]``
adds pods ``pod-0`` … ``pod-N-1``. Pods are spread over 127.0.0.2 … 127.0.0.201
(one address per pod up to 200 pods, then several ports per address).
``--hosts FIRST_IP --port N`` instead: pod i listens on FIRST_IP + i, port N (as many
pods on one port as a cluster has: run inside a network namespace where those
addresses are local, e.g. bench/realapi.py's).
``GET /stats`` answers ``{"scrapes": n, "resets": n}`` (resets received);
``GET /stats/all`` (on any pod) the same summed over every pod of the process.
``POST /traffic/on`` (on any pod) plays order traffic on every ``ok`` pod: its
value drops by one at each scrape (``/traffic/off`` stops it).

GET /metrics:
  ok          the page (``--page``, a real app's page) with ``product_inventory``
              set to the pod's value (default ``--value``, -5: due for a reset);
              with ``?name[]=product_inventory`` (what the heal check asks for)
              only that gauge's lines, as the app's restricted registry answers
  endless     200, chunked, filler lines forever
  gzip-bomb   200, ``Content-Encoding: gzip``, 1 GiB of zeros in ~1 MiB
  big-page    a page just under 4 MiB without ``product_inventory``
  many-lines  200,000 lines of filler without ``product_inventory``
  duplicates  the page with ``product_inventory 5`` and ``product_inventory -3``
  nan         the page with ``product_inventory NaN``
  drip        200, then one byte every 0.2 s, forever

POST /inventory/reset:
  ok          inventory := 100, answer ``{"inventory": 100}``
  nan         inventory := 100, answer ``{"inventory": NaN}``
  late        answer ``{"inventory": 100}`` after 3 s; the page keeps saying
              the pod's value (a pod oversold again at once, or lying)
  endless     200, then an endless body
  gzip-bomb   200, ``Content-Encoding: gzip``, 1 GiB of zeros

Plain asyncio streams, HTTP/1.1 with keep-alive: light enough that one process
serves 1,000 pods while the operator side is measured in another.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

METRICS = ("ok", "endless", "gzip-bomb", "big-page", "many-lines", "duplicates", "nan", "drip")
RESETS = ("ok", "nan", "late", "endless", "gzip-bomb")
FIRST_HOST, HOSTS = 2, 200
MAX_HEAD = 16 * 1024


@dataclass
class Pod:
    name: str
    metrics: str
    reset: str
    value: float
    scrapes: int = 0
    resets: int = 0


def gzip_bomb(gib: int = 1) -> bytes:
    """A gzip member of `gib` GiB of zeros, ~1 MiB: one full-flushed 1 MiB block, repeated."""
    zeros = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    # A full flush ends the block byte-aligned with no back-references into it, so
    # the same bytes can follow themselves: each copy inflates to 1 MiB of zeros.
    block = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(1024 * gib):
        crc = zlib.crc32(zeros, crc)
    size = (1 << 30) * gib
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    final = b"\x03\x00"  # an empty final fixed-Huffman block
    return header + block * (1024 * gib) + final + struct.pack("<II", crc, size & 0xFFFFFFFF)


class FakePods:
    def __init__(
        self, page: str, pods: list[Pod], *, first_host: str | None = None, port: int = 0
    ) -> None:
        self.pods = pods
        self.first_host = ipaddress.IPv4Address(first_host) if first_host else None
        self.port = port
        head, _, tail = page.partition("\nproduct_inventory ")
        tail = tail.partition("\n")[2]
        self._page_head = head + "\nproduct_inventory "
        self._page_tail = "\n" + tail
        self._pages: dict[float, bytes] = {}
        # The gauge's own lines (HELP, TYPE, sample): the page `?name[]=` asks for.
        gauge = [ln for ln in page.splitlines() if _is_gauge(ln)]
        self._gauge_head = "\n".join(ln for ln in gauge if ln.startswith("#")) + "\n"
        self._bomb: bytes | None = None
        self.servers: list[asyncio.base_events.Server] = []
        self.urls: dict[str, str] = {}
        self.traffic = False

    def page(self, value: object, *, gauge_only: bool = False) -> bytes:
        if gauge_only:
            return f"{self._gauge_head}product_inventory {value}\n".encode()
        return f"{self._page_head}{value}{self._page_tail}".encode()

    def bomb(self) -> bytes:
        if self._bomb is None:
            self._bomb = gzip_bomb()
        return self._bomb

    async def start(self) -> None:
        per_host: dict[str, int] = {}
        for i, pod in enumerate(self.pods):
            if self.first_host is not None:
                host = str(self.first_host + i)
            else:
                host = f"127.0.0.{FIRST_HOST + i % HOSTS}"
            per_host[host] = per_host.get(host, 0) + 1
            server = await asyncio.start_server(
                lambda r, w, pod=pod: self.serve(pod, r, w), host, self.port, backlog=64
            )
            self.servers.append(server)
            port = server.sockets[0].getsockname()[1]
            self.urls[pod.name] = f"http://{host}:{port}"
        if any(p.metrics == "gzip-bomb" or p.reset == "gzip-bomb" for p in self.pods):
            self.bomb()

    async def serve(self, pod: Pod, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                if len(head) > MAX_HEAD:
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path = [*lines[0].split(" "), "", ""][:2]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip() or 0)
                if length:
                    await reader.readexactly(length)
                if not await self.answer(pod, method, path, writer):
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def answer(self, pod: Pod, method: str, path: str, w: asyncio.StreamWriter) -> bool:
        """Answer one request; False: the connection is closed after it."""
        path, _, query = path.partition("?")
        if method == "GET" and path == "/metrics":
            pod.scrapes += 1
            pairs = (p.partition("=") for p in query.split("&"))
            names = {v for k, _, v in pairs if k in NAME_KEYS}
            return await self.metrics(pod, w, gauge_only=names == {"product_inventory"})
        if method == "POST" and path == "/inventory/reset":
            pod.resets += 1
            return await self.reset(pod, w)
        if method == "GET" and path == "/stats":
            body = json.dumps({"scrapes": pod.scrapes, "resets": pod.resets}).encode()
            return await send(w, 200, body, "application/json")
        if method == "GET" and path == "/stats/all":
            totals = {
                "scrapes": sum(p.scrapes for p in self.pods),
                "resets": sum(p.resets for p in self.pods),
            }
            return await send(w, 200, json.dumps(totals).encode(), "application/json")
        if method == "POST" and path in ("/traffic/on", "/traffic/off"):
            self.traffic = path.endswith("/on")
            return await send(w, 200, b"{}", "application/json")
        return await send(w, 404, b"not found\n")

    async def metrics(self, pod: Pod, w: asyncio.StreamWriter, *, gauge_only: bool) -> bool:
        kind = pod.metrics
        if kind == "ok":
            if self.traffic:
                pod.value -= 1
            return await send(w, 200, self.page(_number(pod.value), gauge_only=gauge_only))
        if kind == "duplicates":
            page = self.page("5").replace(
                b"\nproduct_inventory 5\n", b"\nproduct_inventory 5\nproduct_inventory -3\n"
            )
            return await send(w, 200, page)
        if kind == "nan":
            return await send(w, 200, self.page("NaN"))
        if kind == "big-page":
            line = b'filler_metric{label="0123456789abcdef0123456789abcdef"} 1\n'
            # just under 4 MiB: what the operator's former cap let through to the parser
            return await send(w, 200, line * (4 * 1024 * 1024 // len(line) - 16))
        if kind == "many-lines":
            return await send(w, 200, b"".join(b"f%d 1\n" % i for i in range(200_000)))
        if kind == "gzip-bomb":
            return await send(w, 200, self.bomb(), extra=b"Content-Encoding: gzip\r\n")
        if kind == "endless":
            return await endless(w, b'filler_metric{i="x"} 1\n' * 2048)
        if kind == "drip":
            w.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
            )
            while True:
                w.write(b"#")
                await w.drain()
                await asyncio.sleep(0.2)
        raise AssertionError(kind)

    async def reset(self, pod: Pod, w: asyncio.StreamWriter) -> bool:
        kind = pod.reset
        if kind in ("ok", "nan"):
            pod.value = 100.0
            body = b'{"inventory": 100}' if kind == "ok" else b'{"inventory": NaN}'
            return await send(w, 200, body, "application/json")
        if kind == "late":
            await asyncio.sleep(3)  # applied, but answered after the operator's timeout
            return await send(w, 200, b'{"inventory": 100}', "application/json")
        if kind == "endless":
            return await endless(w, b" " * 65536, "application/json")
        if kind == "gzip-bomb":
            return await send(
                w, 200, self.bomb(), "application/json", b"Content-Encoding: gzip\r\n"
            )
        raise AssertionError(kind)


#: The query key of prometheus_client's name filter, plain and percent-encoded.
NAME_KEYS = ("name[]", "name%5B%5D", "name%5b%5d")


def _is_gauge(line: str) -> bool:
    """A HELP/TYPE/sample line of `product_inventory` itself (not `product_inventory_x`)."""
    words = line.split(" ")
    name = words[2] if line.startswith("#") and len(words) > 2 else words[0].partition("{")[0]
    return name == "product_inventory"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


async def send(
    w: asyncio.StreamWriter,
    status: int,
    body: bytes,
    ctype: str = "text/plain; version=0.0.4",
    extra: bytes = b"",
) -> bool:
    reason = {200: "OK", 404: "Not Found"}.get(status, "X")
    w.write(
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
        % (status, reason.encode(), ctype.encode(), len(body), extra)
    )
    w.write(body)
    await w.drain()
    return True


async def endless(w: asyncio.StreamWriter, piece: bytes, ctype: str = "text/plain") -> bool:
    w.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
        % ctype.encode()
    )
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    while True:
        w.write(chunk)
        await w.drain()


def app_metrics_page() -> str:
    """The order service's own /metrics page (~18 kB, ~270 lines), made in this process."""
    from promdemo_app.settings import load_settings
    from promdemo_app.web import create_app

    answer = create_app(load_settings({})).test_client().get("/metrics")
    return answer.get_data(as_text=True)


@contextlib.contextmanager
def fake_pods(
    workdir: Path,
    pods: list[str] = (),
    counts: list[str] = (),
    value: float = -5.0,
    *,
    first_host: str | None = None,
    port: int = 0,
    prefix: list[str] = (),
) -> Iterator[tuple[object, dict[str, str]]]:
    """Start a fake-pods process; yields (process, {name: base URL}); stops it after.

    `first_host` and `port`: pod i on FIRST_HOST + i, port `port`; `prefix` goes before
    the command (e.g. `ip netns exec NS`, where those addresses are local).
    """
    from tests.support.processes import ManagedProcess

    page = workdir / "app-metrics.txt"
    page.write_text(app_metrics_page())
    log = workdir / f"fake-pods-{time.monotonic_ns()}.log"
    argv = [*prefix, sys.executable, "-m", "tests.support.fake_pods", "--page", str(page)]
    argv += [f"--pod={p}" for p in pods] + [f"--count={c}" for c in counts]
    argv += [f"--value={value}"]
    if first_host is not None:
        argv += [f"--hosts={first_host}", f"--port={port}"]
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = ManagedProcess(argv, log_path=log, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            first = log.read_text().partition("\n")
            if first[1]:
                urls = json.loads(first[0])
                break
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"fake pods did not start:\n{proc.log()[-2000:]}")
            time.sleep(0.05)
        yield proc, urls
    finally:
        proc.stop()


def parse_pod(spec: str, value: float) -> Pod:
    name, _, kinds = spec.partition("=")
    kinds, _, own_value = kinds.partition("@")
    if own_value:
        value = float(own_value)
    metrics, _, reset = kinds.partition(":")
    metrics, reset = metrics or "ok", reset or "ok"
    if metrics not in METRICS or reset not in RESETS:
        raise SystemExit(f"unknown behaviour in {spec!r}: metrics {METRICS}, reset {RESETS}")
    return Pod(name, metrics, reset, value)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--page", type=Path, required=True, help="a real app's /metrics page")
    parser.add_argument(
        "--pod", action="append", default=[], metavar="NAME=METRICS[:RESET][@VALUE]"
    )
    parser.add_argument("--count", action="append", default=[], metavar="N:METRICS[:RESET]")
    parser.add_argument("--value", type=float, default=-5.0, help="product_inventory of ok pods")
    parser.add_argument("--hosts", metavar="FIRST_IP", help="pod i listens on FIRST_IP + i")
    parser.add_argument("--port", type=int, default=0, help="with --hosts: every pod's port")
    args = parser.parse_args(argv)
    pods = [parse_pod(spec, args.value) for spec in args.pod]
    for spec in args.count:
        n, _, kinds = spec.partition(":")
        pods += [parse_pod(f"pod-{i}={kinds}", args.value) for i in range(int(n))]
    fake = FakePods(args.page.read_text(), pods, first_host=args.hosts, port=args.port)
    await fake.start()
    print(json.dumps(fake.urls), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in fake.servers:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
