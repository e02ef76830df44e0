"""The heal engine: read each pod's inventory, ask the policy, reset one pod over HTTP.

No Kubernetes here: the caller gives a list of `PodTarget` (name, base URL,
ready) — built from the API by the kopf adapter, or from a static list of local
processes by `promdemo local` — and an `httpx.AsyncClient` (plain for pod IPs
and loopback, carrying the API server's credentials for the pod proxy).

One `check()` is one evaluation: every ready pod's `/metrics` is read
concurrently (each request bounded by `timeout`), `product_inventory` is parsed
with prometheus_client's parser and fed to the policy at the check's
timestamp. For every pod the policy says is due, the engine takes that pod's
lock, reads the live value again, and only if it is still below the threshold
(and the pod is not in cooldown) sends ``POST /inventory/reset`` with the
bearer token to that pod alone, then confirms the value from the response
body. `heal()` is the same reset path for one pod, used by the Alertmanager
webhook.

Nothing here raises for a pod's fault: unreachable, slow, garbage-answering
pods and failing resets come back as `Failure` records (and are counted in the
metrics when a `HealMetrics` is given).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .access import PROXY_TOKEN_HEADER
from .metrics import HealMetrics
from .policy import Action, Decision, HealPolicy

log = logging.getLogger("promdemo.heal")

METRIC = "product_inventory"
MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class PodTarget:
    """A pod as the engine sees it. `base_url` None: no address yet (e.g. no pod IP)."""

    name: str
    base_url: str | None
    ready: bool = True


@dataclass(frozen=True)
class Reading:
    """One read of a pod's `product_inventory`; `reason` says why `value` is None."""

    pod: str
    value: float | None
    reason: str | None = None  # metrics.SCRAPE_REASONS
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class Failure:
    pod: str
    stage: str  # "scrape" | "reset"
    reason: str  # metrics.SCRAPE_REASONS / metrics.RESET_REASONS
    detail: str = ""


@dataclass(frozen=True)
class ResetDone:
    """A reset that was sent and answered 2xx. `after` None: answer not understood."""

    pod: str
    before: float
    after: float | None
    time: float  # epoch seconds when the answer came back
    latency: float | None  # first below-observation → confirmed, seconds
    source: str  # "direct" | "alertmanager"

    @property
    def confirmed(self) -> bool:
        return self.after is not None


@dataclass(frozen=True)
class HealOutcome:
    """What the reset path did for one pod."""

    pod: str
    outcome: str  # reset | recovered | cooldown | failed
    value: float | None = None  # the live value read right before deciding
    reset: ResetDone | None = None
    failure: Failure | None = None


@dataclass
class CheckResult:
    """One check of all pods."""

    time: float
    inventory: dict[str, float] = field(default_factory=dict)  # after resets
    decisions: dict[str, Decision] = field(default_factory=dict)
    resets: list[ResetDone] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # pod → not_ready | no_address | …

    @property
    def lowest_inventory(self) -> float | None:
        return min(self.inventory.values()) if self.inventory else None


class _ReadError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse_inventory(text: str) -> float:
    """The `product_inventory` value in a Prometheus text exposition.

    Only the metric's own lines go through prometheus_client's parser (a pod's
    page has ~100 other lines, and 500 pods are parsed every interval). Raises
    `ValueError` with ``missing:`` (no such metric) or ``garbage:`` (not parseable).
    """
    prefixes = (METRIC, f"# HELP {METRIC} ", f"# TYPE {METRIC} ")
    lines = [line for line in text.splitlines() if line.startswith(prefixes)]
    if not lines:
        # Tell "a metrics page without the gauge" from "not a metrics page".
        try:
            for _ in text_string_to_metric_families(text):
                pass
        except Exception as e:
            raise ValueError(f"garbage: {str(e)[:120]}") from e
        raise ValueError(f"missing: no {METRIC} sample")
    values: list[float] = []
    try:
        for family in text_string_to_metric_families("\n".join(lines) + "\n"):
            for sample in family.samples:
                if sample.name == METRIC:
                    values.append(float(sample.value))
    except Exception as e:
        raise ValueError(f"garbage: {str(e)[:120]}") from e
    if not values:
        raise ValueError(f"missing: no {METRIC} sample")
    value = min(values)
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"garbage: {METRIC} is {value}")
    return value


def _fmt(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class HealEngine:
    """Checks and heals the pods of one PromDemo (or one local demo)."""

    def __init__(
        self,
        policy: HealPolicy,
        *,
        client: httpx.AsyncClient | None = None,
        token: str | None = None,
        timeout: float = 2.0,
        namespace: str = "",
        promdemo: str = "",
        metrics: HealMetrics | None = None,
        clock: Callable[[], float] = time.time,
        concurrency: int = 64,
        proxy_token_header: bool = False,
    ) -> None:
        self.policy = policy
        self.token = token
        self.timeout = timeout
        self.namespace = namespace
        self.promdemo = promdemo
        self.metrics = metrics
        self.clock = clock
        self.proxy_token_header = proxy_token_header
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._sem = asyncio.Semaphore(concurrency)
        self._locks: dict[str, asyncio.Lock] = {}
        self._last_problem: dict[str, str] = {}  # pod → last logged failure reason
        self._last_action: dict[str, Action] = {}  # pod → last logged decision
        self._who = f"{namespace}/{promdemo}" if namespace or promdemo else "heal"
        if metrics is not None:
            metrics.touch(namespace, promdemo)

    # -- lifecycle ------------------------------------------------------------

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def __aenter__(self) -> HealEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- reading --------------------------------------------------------------

    async def read(self, pod: PodTarget) -> Reading:
        """GET the pod's /metrics and parse `product_inventory`; never raises."""
        if not pod.base_url:
            return Reading(pod.name, None, "unreachable", "no address")
        try:
            async with self._sem, asyncio.timeout(self.timeout):
                text = await self._get_text(f"{pod.base_url}/metrics")
            return Reading(pod.name, parse_inventory(text))
        except _ReadError as e:
            return Reading(pod.name, None, e.reason, e.detail)
        except (TimeoutError, httpx.TimeoutException):
            return Reading(pod.name, None, "timeout", f"no answer within {self.timeout:g}s")
        except httpx.HTTPError as e:
            return Reading(pod.name, None, "unreachable", f"{type(e).__name__}: {e}"[:200])
        except ValueError as e:
            kind, _, detail = str(e).partition(": ")
            reason = "missing" if kind == "missing" else "garbage"
            return Reading(pod.name, None, reason, detail or str(e))

    async def _get_text(self, url: str) -> str:
        async with self._client.stream("GET", url) as resp:
            if resp.status_code != 200:
                raise _ReadError("http_status", f"GET /metrics answered {resp.status_code}")
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise _ReadError("garbage", f"/metrics larger than {MAX_BODY_BYTES} bytes")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _ReadError("garbage", "/metrics is not UTF-8") from e

    # -- one check of all pods ---------------------------------------------------

    async def check(self, pods: Sequence[PodTarget], *, reset: bool = True) -> CheckResult:
        """One evaluation: read all ready pods, decide, reset the due ones.

        `reset=False` only reads and records (the event-driven mode keeps the
        status current this way while Alertmanager decides when to reset).
        """
        now = self.clock()
        result = CheckResult(time=now)
        targets: list[PodTarget] = []
        for pod in pods:
            if not pod.ready:
                result.skipped[pod.name] = "not_ready"
            elif not pod.base_url:
                result.skipped[pod.name] = "no_address"
            else:
                targets.append(pod)
        if self.metrics is not None:
            self.metrics.checks.labels(self.namespace, self.promdemo).inc()

        readings = await asyncio.gather(*(self.read(p) for p in targets))
        due: list[tuple[PodTarget, Decision]] = []
        for pod, reading in zip(targets, readings, strict=True):
            if reading.value is None:
                self.policy.observe_missing(pod.name, now)
                failure = Failure(pod.name, "scrape", reading.reason or "garbage", reading.detail)
                result.failures.append(failure)
                self._count_scrape_failure(failure)
                continue
            self._note_recovered(pod.name)
            decision = self.policy.observe(pod.name, reading.value, now)
            result.decisions[pod.name] = decision
            result.inventory[pod.name] = reading.value
            self._log_decision(decision)
            if decision.action is Action.RESET and reset:
                due.append((pod, decision))
            elif decision.action is Action.COOLDOWN:
                result.skipped[pod.name] = "cooldown"
        self.policy.forget_absent([p.name for p in targets], now)
        for name in list(self._locks):
            if name not in result.inventory and not self._locks[name].locked():
                del self._locks[name]

        if self.metrics is not None and result.inventory:
            self.metrics.lowest.labels(self.namespace, self.promdemo).set(
                min(result.inventory.values())
            )

        outcomes = await asyncio.gather(
            *(self._reset_path(pod, d.below_since, "direct", confirm=False) for pod, d in due)
        )
        for outcome in outcomes:
            if outcome.reset is not None:
                result.resets.append(outcome.reset)
                if outcome.reset.after is not None:
                    result.inventory[outcome.pod] = outcome.reset.after
            elif outcome.value is not None:
                result.inventory[outcome.pod] = outcome.value
            if outcome.failure is not None:
                result.failures.append(outcome.failure)
            if outcome.outcome in ("recovered", "cooldown"):
                result.skipped[outcome.pod] = outcome.outcome
        return result

    # -- one pod (the webhook's path; also the end of check()) ----------------------

    async def heal(
        self, pod: PodTarget, *, first_seen: float | None = None, source: str = "alertmanager"
    ) -> HealOutcome:
        """Re-check one pod's live value and reset it if still below and not in cooldown.

        For the event-driven mode: the alert's `for` was judged by Prometheus,
        so only threshold and cooldown apply here. `first_seen` (the alert's
        `startsAt`) is where the heal latency is measured from.
        """
        return await self._reset_path(pod, first_seen, source, confirm=True)

    async def _reset_path(
        self, pod: PodTarget, first_seen: float | None, source: str, *, confirm: bool
    ) -> HealOutcome:
        lock = self._locks.setdefault(pod.name, asyncio.Lock())
        async with lock:
            if self.policy.in_cooldown(pod.name, self.clock()):
                return HealOutcome(pod.name, "cooldown")
            live = await self.read(pod)
            if live.value is None:
                failure = Failure(pod.name, "scrape", live.reason or "garbage", live.detail)
                self._count_scrape_failure(failure)
                return HealOutcome(pod.name, "failed", failure=failure)
            now = self.clock()
            if confirm:
                decision = self.policy.confirm(pod.name, live.value, now)
            else:
                decision = self.policy.recheck(pod.name, live.value, now)
            if decision.action is Action.OK:
                log.info(
                    "%s: pod %s recovered to %s before the reset; not resetting",
                    self._who,
                    pod.name,
                    _fmt(live.value),
                )
                return HealOutcome(pod.name, "recovered", live.value)
            if decision.action is Action.COOLDOWN:
                return HealOutcome(pod.name, "cooldown", live.value)
            since = first_seen if first_seen is not None else decision.below_since
            return await self._post_reset(pod, live.value, since, source)

    async def _post_reset(
        self, pod: PodTarget, before: float, since: float | None, source: str
    ) -> HealOutcome:
        headers = {}
        if self.token and self.proxy_token_header:
            # Through the API server's pod proxy, `Authorization` belongs to the API
            # server (the client's own credentials) and is not forwarded to the pod.
            headers[PROXY_TOKEN_HEADER] = self.token
        elif self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = f"{pod.base_url}/inventory/reset"
        try:
            async with self._sem, asyncio.timeout(self.timeout):
                resp = await self._client.post(url, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            # The reset may have happened: the next check reads the value first.
            return self._reset_failed(pod, "timeout", f"no answer within {self.timeout:g}s")
        except httpx.HTTPError as e:
            return self._reset_failed(pod, "unreachable", f"{type(e).__name__}: {e}"[:200])
        if not 200 <= resp.status_code < 300:
            snippet = resp.text[:120].strip()
            return self._reset_failed(
                pod, "http_status", f"POST /inventory/reset answered {resp.status_code} {snippet}"
            )

        done_at = self.clock()
        self.policy.record_reset(pod.name, done_at)
        after: float | None
        try:
            after = float(resp.json()["inventory"])
        except Exception:
            after = None
        latency = None if since is None else max(0.0, done_at - since)
        done = ResetDone(pod.name, before, after, done_at, latency, source)
        failure = None
        if self.metrics is not None:
            self.metrics.resets.labels(self.namespace, self.promdemo).inc()
            if latency is not None:
                self.metrics.latency.labels(self.namespace, self.promdemo, source).observe(latency)
        if after is None:
            failure = Failure(pod.name, "reset", "garbage", "reset answered 2xx without inventory")
            self._count_reset_failure(failure)
            log.warning(
                "%s: reset pod %s (inventory was %s) but its answer had no inventory; "
                "cooldown started anyway",
                self._who,
                pod.name,
                _fmt(before),
            )
        else:
            log.info(
                "%s: reset pod %s inventory %s -> %s (%s, %s after it was first seen below %s)",
                self._who,
                pod.name,
                _fmt(before),
                _fmt(after),
                source,
                "?" if latency is None else f"{latency:.2f}s",
                _fmt(self.policy.config.threshold),
            )
        return HealOutcome(pod.name, "reset", before, reset=done, failure=failure)

    # -- bookkeeping --------------------------------------------------------------

    def _reset_failed(self, pod: PodTarget, reason: str, detail: str) -> HealOutcome:
        failure = Failure(pod.name, "reset", reason, detail)
        self._count_reset_failure(failure)
        log.warning("%s: reset of pod %s failed (%s): %s", self._who, pod.name, reason, detail)
        return HealOutcome(pod.name, "failed", failure=failure)

    def _count_scrape_failure(self, failure: Failure) -> None:
        if self.metrics is not None:
            self.metrics.scrape_failures.labels(self.namespace, self.promdemo, failure.reason).inc()
        # A pod failing every interval logs once per change of reason, not every time.
        if self._last_problem.get(failure.pod) != failure.reason:
            self._last_problem[failure.pod] = failure.reason
            log.warning(
                "%s: cannot read pod %s (%s): %s; skipped this check",
                self._who,
                failure.pod,
                failure.reason,
                failure.detail,
            )
        else:
            log.debug("%s: pod %s still %s", self._who, failure.pod, failure.reason)

    def _count_reset_failure(self, failure: Failure) -> None:
        if self.metrics is not None:
            self.metrics.reset_failures.labels(self.namespace, self.promdemo, failure.reason).inc()

    def _note_recovered(self, pod: str) -> None:
        if self._last_problem.pop(pod, None) is not None:
            log.info("%s: pod %s answers again", self._who, pod)

    def _log_decision(self, d: Decision) -> None:
        # One line per change of a pod's state, not one per check.
        previous = self._last_action.get(d.pod)
        self._last_action[d.pod] = d.action
        if previous is d.action:
            return
        if d.action is Action.OK and previous in (Action.PENDING, Action.COOLDOWN):
            log.info(
                "%s: pod %s inventory %s is back at or above %s",
                self._who,
                d.pod,
                _fmt(d.value),
                _fmt(self.policy.config.threshold),
            )
        elif d.action is Action.PENDING and d.below_since is not None:
            held = self.clock() - d.below_since
            log.info(
                "%s: pod %s inventory %s < %s: pending, reset when it stays below for %gs "
                "(below for %.1fs so far)",
                self._who,
                d.pod,
                _fmt(d.value),
                _fmt(self.policy.config.threshold),
                self.policy.config.for_seconds,
                held,
            )
        elif d.action is Action.COOLDOWN and d.cooldown_until is not None:
            log.info(
                "%s: pod %s inventory %s is below %s but was reset recently; "
                "cooldown ends in %.1fs",
                self._who,
                d.pod,
                _fmt(d.value),
                _fmt(self.policy.config.threshold),
                d.cooldown_until - self.clock(),
            )
