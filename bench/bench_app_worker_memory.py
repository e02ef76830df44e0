"""bench_app_memory.py's measurement, read from gunicorn's worker process.

    python bench/bench_app_worker_memory.py --warmup 20000 --requests 100000 --json

Since the app runs on gunicorn, `python -m promdemo_app` is gunicorn's master
process and the orders are served by its one worker process (its child). The
shared helper (appserver.py) now reads the worker too (`AppServer.pid`), so this
gives what `bench_app_memory.py` gives; it stays for the command README cites,
and says "the worker" where the other says "the server". A measurement, never a
test: nothing is asserted.
"""

from __future__ import annotations

from pathlib import Path

import appserver
import bench_app_memory


class WorkerAppServer(appserver.AppServer):
    """The server, its figures read from the worker process (the master's only child)."""

    def worker_pid(self) -> int:
        pid = self.proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if not children:
            raise RuntimeError("gunicorn's worker process is not running")
        return int(children[0])

    def _status(self, key: str) -> int:
        with open(f"/proc/{self.worker_pid()}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise KeyError(key)


if __name__ == "__main__":
    bench_app_memory.AppServer = WorkerAppServer  # type: ignore[misc]
    raise SystemExit(bench_app_memory.main())
