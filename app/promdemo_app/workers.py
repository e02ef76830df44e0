"""The threads that run requests: a pool that wakes the thread idle the shortest time.

Waitress's own `ThreadedTaskDispatcher` starts every thread up front and wakes
the one that has waited longest, so under steady load all 300 threads take
turns, and each one's malloc cache (glibc's tcache) fills with blocks the heap
then has to replace: part of the memory growth docs/app.md ("Memory")
explains. `WorkerPool` hands a request to the most recently idle thread
instead, starts threads only when none is idle, and lets a thread idle for
`idle_seconds` exit (returning its cache), so the threads in use, and their
memory, follow the concurrency actually seen.

It also replaces waitress's one WARNING per queued request with one line per
interval (`report()`), and `Dispatcher` puts probes and scrapes on a pool of
their own so a full house of slow orders cannot starve them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Protocol

log = logging.getLogger("promdemo_app.workers")

# A thread left idle this long exits; the next burst starts new ones (~0.1 ms each).
IDLE_SECONDS = 30.0
# Probes and scrapes get threads of their own: with every worker busy on a slow
# order (the seed's 300 concurrent orders on 300 threads), kubelet's probes and
# Prometheus's scrape would otherwise wait behind them and time out.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
PROBE_THREADS = 4
# How often the queue is reported while requests wait for a thread.
REPORT_INTERVAL_SECONDS = 10.0


class Task(Protocol):
    """What waitress hands the dispatcher: a channel with a request to serve."""

    def service(self) -> None: ...
    def cancel(self) -> None: ...


class _Worker:
    __slots__ = ("task", "wake")

    def __init__(self) -> None:
        # Released by add_task() once `task` is set; a Lock is the cheapest wake-up.
        self.wake = threading.Lock()
        self.wake.acquire()
        self.task: Task | None = None


class WorkerPool:
    """Up to `size` threads serving tasks; the last thread to go idle is woken first."""

    def __init__(self, name: str, size: int, *, idle_seconds: float = IDLE_SECONDS) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one thread")
        self.name = name
        self.size = size
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._exited = threading.Condition(self._lock)
        self._idle: list[_Worker] = []  # a stack
        self._queue: deque[Task] = deque()
        self._threads = 0
        self._started = 0
        self._stopping = False
        # Since the last report(): requests that waited, and the longest queue.
        self._waited = 0
        self._longest = 0

    @property
    def threads(self) -> int:
        """Threads alive now (idle ones included)."""
        with self._lock:
            return self._threads

    @property
    def idle(self) -> int:
        """Threads waiting for a request."""
        with self._lock:
            return len(self._idle)

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    def add_task(self, task: Task) -> None:
        with self._lock:
            if self._stopping:
                task.cancel()
                return
            if self._idle:
                worker = self._idle.pop()
                worker.task = task
                worker.wake.release()
                return
            if self._threads >= self.size:
                self._queue.append(task)
                self._waited += 1
                self._longest = max(self._longest, len(self._queue))
                return
            self._threads += 1
            self._started += 1
            number = self._started
        thread = threading.Thread(
            target=self._run, args=(task,), name=f"{self.name}-{number}", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:
            # Out of threads (a container's pids limit): serve it when one frees up.
            log.warning("cannot start another %s thread; the request waits", self.name)
            with self._lock:
                self._threads -= 1
                self._queue.appendleft(task)
                self.size = max(1, self._threads)

    def _run(self, task: Task | None) -> None:
        worker = _Worker()
        while task is not None:
            try:
                task.service()
            except BaseException:
                log.exception("unexpected error while serving a request")
            task = self._next(worker)

    def _next(self, worker: _Worker) -> Task | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            if self._stopping:
                return self._exit()
            self._idle.append(worker)
        if not worker.wake.acquire(timeout=self.idle_seconds):
            with self._lock:
                if worker in self._idle:
                    self._idle.remove(worker)
                    return self._exit()
            # add_task() took this worker just as the wait timed out: its task is coming.
            worker.wake.acquire()
        task, worker.task = worker.task, None
        if task is None:
            # Woken by shutdown().
            with self._lock:
                return self._exit()
        return task

    def _exit(self) -> None:
        # Called with the lock held.
        self._threads -= 1
        self._exited.notify_all()
        return None

    def report(self) -> None:
        """Log the queue once if requests had to wait since the last call."""
        with self._lock:
            waited, longest, self._waited, self._longest = self._waited, self._longest, 0, 0
            queued, threads = len(self._queue), self._threads
        if waited:
            log.warning(
                "%d request(s) waited for one of the %d %s threads (longest queue %d, %d now)",
                waited,
                threads,
                self.name,
                longest,
                queued,
            )

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5.0) -> bool:
        """Stop the threads (after their current request); True if all stopped in time."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._stopping = True
            pending = list(self._queue) if cancel_pending else []
            if cancel_pending:
                self._queue.clear()
            while self._idle:
                self._idle.pop().wake.release()
            while self._threads and (left := deadline - time.monotonic()) > 0:
                self._exited.wait(left)
            stopped = self._threads == 0
        for task in pending:
            task.cancel()
        return stopped


class Dispatcher:
    """Waitress's task dispatcher: probes and scrapes on `probes`, the rest on `orders`."""

    def __init__(self, threads: int, probe_threads: int = PROBE_THREADS) -> None:
        self.orders = WorkerPool("worker", threads)
        self.probes = WorkerPool("probe", probe_threads)

    def add_task(self, task: Task) -> None:
        # Called with the channel's requests_lock held and its next request parsed.
        # A request waitress rejected has no path: it goes with the orders.
        requests = getattr(task, "requests", None)
        request = requests[0] if requests else None
        path = getattr(request, "path", None) if request is not None else None
        if path in PROBE_PATHS and request.error is None:  # type: ignore[union-attr]
            self.probes.add_task(task)
        else:
            self.orders.add_task(task)

    def report(self) -> None:
        self.orders.report()
        self.probes.report()

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5.0) -> bool:
        probes = self.probes.shutdown(cancel_pending, timeout)
        return self.orders.shutdown(cancel_pending, timeout) and probes
