#!/usr/bin/env python3
"""Draw the pictures of docs/lessons.md: one PNG per lesson query, from a real run.

    python scripts/lessons_screenshots.py              # writes docs/img/lesson-*.png
    python scripts/lessons_screenshots.py --out /tmp/img

What it does, as a learner would:

1. starts `promdemo local --lessons` (one replica, Prometheus scraping every
   second, one burst of 300 orders after a quiet start; free loopback ports) and
   waits until Prometheus has the burst, then `--settle` seconds more;
2. opens every query of `lessons.LESSONS` in the Prometheus UI (the link
   `promdemo local` prints, in the Graph tab with a `--range` wide window, or in
   the table for a value that stays flat: TABLE_PICTURES) in headless Chromium,
   and saves a screenshot;
3. for lesson 13, types `heal` into promdemo local first and waits until
   Prometheus has scraped the reset;
4. writes docs/img/manifest.json: the queries, each image's file and SHA-256,
   and the SHA-256 of this script. tests/unit/project/test_lessons_images.py checks that
   the images are the ones listed and that the manifest comes from this script
   as it is now (not that pixels match: every run draws other random latencies).

Chromium runs headless with a fresh profile and the flags for a closed network
(no sandbox: it runs as root here). Needs `prometheus` and Debian's `chromium`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "operator"))  # the checkout's promdemo_operator

from promdemo_operator.cli.lessons import LESSONS, LessonQuery, query_url  # noqa: E402

OUT = ROOT / "docs" / "img"
MANIFEST = "manifest.json"
WINDOW = (1200, 800)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--hide-scrollbars",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
    # the page draws after its query returns: let its scripts run before the shot
    "--virtual-time-budget=8000",
]
READY = "lessons: Prometheus has the burst at"
#: A value that stays flat after the burst (a quantile, a ratio) reads better as the
#: table's number than as a flat line; everything else is drawn in the Graph tab.
TABLE_PICTURES = {
    "histogram_quantile(0.95, sum by (le) (rate(http_request_latency_seconds_bucket[5m])))",
    "histogram_quantile(0.5, sum by (le) (rate(http_request_latency_seconds_bucket[5m])))",
    "rate(http_request_latency_seconds_sum[5m]) / rate(http_request_latency_seconds_count[5m])",
    'sum(rate(orders_total{result="success"}[5m])) / sum(rate(orders_total[5m]))',
    "job:orders_success_per_orders:ratio_rate5m",
    "job:http_request_latency_seconds:p95_rate5m",
    "up",
}


def image_names(queries: tuple[LessonQuery, ...] = LESSONS) -> list[str]:
    """`lesson-03.png`, and `lesson-09a.png`, `lesson-09b.png` where a lesson has several."""
    per_lesson: dict[int, int] = {}
    for q in queries:
        per_lesson[q.lesson] = per_lesson.get(q.lesson, 0) + 1
    names, seen = [], dict.fromkeys(per_lesson, 0)
    for q in queries:
        suffix = ""
        if per_lesson[q.lesson] > 1:
            suffix = "abcdefgh"[seen[q.lesson]]
        seen[q.lesson] += 1
        names.append(f"lesson-{q.lesson:02d}{suffix}.png")
    return names


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def script_sha256() -> str:
    return sha256(Path(__file__).resolve())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lessons:
    """`promdemo local --lessons` with its output in a file and a pipe as its keyboard."""

    def __init__(self, workdir: Path) -> None:
        self.app_port, self.prom_port, self.am_port = free_port(), free_port(), free_port()
        self.log = workdir / "promdemo-local.out"
        self._out = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "promdemo_operator.cli.main",
                "local",
                "--lessons",
                "--no-ui",
                "--port",
                str(self.app_port),
                "--prometheus-port",
                str(self.prom_port),
                "--alertmanager-port",
                str(self.am_port),
            ],
            stdin=subprocess.PIPE,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT / "operator") + os.pathsep + str(ROOT / "app"),
            },
        )

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prom_port}"

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log.read_text(errors="replace"))
            if match:
                return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise RuntimeError(f"no {pattern!r} from promdemo local:\n{self.log.read_text()}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._out.close()


def prometheus_major(url: str) -> int:
    from urllib.request import urlopen

    from promdemo_operator.cli.lessons import prometheus_major as major

    with urlopen(f"{url}/api/v1/status/buildinfo", timeout=5) as answer:  # noqa: S310 - loopback
        return major(json.load(answer)["data"]["version"])


def screenshot(chromium: str, url: str, path: Path) -> None:
    """One headless Chromium with a fresh profile per picture: nothing carries over."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        result = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={path}", url],
            capture_output=True,
            text=True,
            timeout=120,
        )
    if result.returncode != 0 or not path.is_file():
        raise RuntimeError(f"chromium failed for {url}:\n{result.stderr[-2000:]}")


def wait_prometheus(url: str, expr: str, want: float, timeout: float) -> None:
    from urllib.parse import urlencode
    from urllib.request import urlopen

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urlopen(f"{url}/api/v1/query?{urlencode({'query': expr})}", timeout=5) as a:  # noqa: S310
            result = json.load(a)["data"]["result"]
        if result and float(result[0]["value"][1]) == want:
            return
        time.sleep(0.5)
    raise RuntimeError(f"Prometheus never answered {expr} = {want:g}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"default {OUT.relative_to(ROOT)}")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--range", default="2m", help="the graphs' time range (2m)")
    parser.add_argument(
        "--settle", type=float, default=20.0, help="seconds to wait after the burst (20)"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    names = image_names()
    images = []
    with tempfile.TemporaryDirectory(prefix="lessons-screenshots-") as tmp:
        run = Lessons(Path(tmp))
        try:
            run.wait_for(READY, timeout=180)
            time.sleep(args.settle)
            major = prometheus_major(run.prometheus_url)
            for query, name in zip(LESSONS, names, strict=True):
                if query.lesson == 13 and query.expr == "inventory_resets_total":
                    run.send("heal")  # the page's step: then the reset shows
                    wait_prometheus(run.prometheus_url, query.expr, 1, timeout=60)
                    time.sleep(5)
                tab = "table" if query.expr in TABLE_PICTURES else "graph"
                url = query_url(
                    run.prometheus_url, query.expr, major=major, tab=tab, range_input=args.range
                )
                path = args.out / name
                screenshot(args.chromium, url, path)
                images.append(
                    {"lesson": query.lesson, "query": query.expr, "tab": tab, "file": name}
                )
                print(f"{name}: {query.expr}", flush=True)
        finally:
            run.stop()
    for image in images:
        image["sha256"] = sha256(args.out / image["file"])
    manifest = {
        "script": "scripts/lessons_screenshots.py",
        "script_sha256": script_sha256(),
        "window": list(WINDOW),
        "images": images,
    }
    (args.out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(images)} images and {MANIFEST} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
