"""The heal engine: read each pod's inventory, ask the policy, reset one pod over HTTP.

No Kubernetes here: the caller gives a list of `PodTarget` (name, base URL,
ready) — built from the API by the kopf adapter, or from a static list of local
processes by `promdemo local` — and the process's HTTP client to pods
(`podhttp.PodHttp`, shared by every engine; an `httpx.AsyncClient` is accepted
too, or the engine makes a `PodHttp` of its own).

One `check()` is one evaluation: every ready pod is asked for the gauge alone
(`GET /metrics?name[]=product_inventory`, `METRICS_PATH`: prometheus_client's
exposition then renders one metric instead of the ~18 kB page, about a tenth of
the pod's CPU per check; an app that ignores the parameter answers the whole
page, which is read the same way) concurrently (each request bounded by
`timeout`, each body by `podhttp.ReadLimits`), `product_inventory` is found by
`exposition.InventoryScanner` as the page streams in and fed to the policy at
the check's timestamp. Prometheus's own scrape of `/metrics` is untouched. For
every pod the policy says is due, the engine takes that pod's lock, reads the
live value again, and only if it is still below the threshold (and the pod is
not in cooldown) sends ``POST /inventory/reset`` with the bearer token to that
pod alone, then confirms the value from the response body. `heal()` is the same
reset path for one pod, used by the Alertmanager webhook.

A reset that may have reached the pod starts the cooldown at the moment it was
sent, whether or not (or however late) its answer arrives: only a pod that
surely did not act (no connection, or a 4xx answer) may be reset again at the
next check.

A pod's IP goes to another pod once its pod is gone (a PodTarget may be a check
behind the watch). A target with a `uid` (the Pod's metadata.uid) is checked against
the pod that answers: a reading whose `X-Promdemo-Pod-Uid` names another pod is
dropped (`wrong_pod`, never used to decide a reset), and every reset carries
`X-Promdemo-Expected-Pod-Uid`, which the app refuses with 409 when it is another pod
(`wrong_pod`: nothing reset, no cooldown started). Either way the engine does not
read or reset that target at that address again until its address or UID changes
(`CheckResult.skipped` says `wrong_pod`). An answer without the header (an app
outside Kubernetes, or an older one) is taken as the pod's own.

Nothing here raises for a pod's fault: unreachable, slow, oversized and
garbage-answering pods and failing resets come back as `Failure` records (and
are counted in the metrics when a `HealMetrics` is given). What a pod said
reaches a `Failure` (and so the log) bounded, printable and redacted
(`exposition.redact`: the reset token and anything that looks like a credential),
since a hostile pod may echo the token it was sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from promdemo_operator.core.heal_policy import Action, Decision, HealPolicy
from promdemo_operator.heal.access import PROXY_TOKEN_HEADER
from promdemo_operator.heal.exposition import (
    METRIC,
    ExpositionError,
    InventoryScanner,
    clip,
    parse_inventory,
    parse_reset_answer,
    redact,
)
from promdemo_operator.heal.metrics import HealMetrics
from promdemo_operator.heal.pod_client import (
    MAX_METRICS_BYTES,
    POD_UID_HEADER,
    PodClient,
    PodHttp,
    PodReadError,
    ReadLimits,
)

__all__ = [
    "METRIC",
    "METRICS_PATH",
    "CheckResult",
    "Failure",
    "HealEngine",
    "HealOutcome",
    "PodTarget",
    "ReadLimits",
    "Reading",
    "ResetDone",
    "parse_inventory",
]

log = logging.getLogger("promdemo.heal")

#: Reads started per event-loop iteration (see `HealEngine._read_all`).
START_BATCH = 8
#: Kept for callers of the old name: the cap on a decoded /metrics page.
MAX_BODY_BYTES = MAX_METRICS_BYTES
#: What a check asks a pod for: the gauge alone (prometheus_client's `name[]` filter).
METRICS_PATH = f"/metrics?name[]={METRIC}"
#: The reset names the pod it is meant for; the app answers 409 when it is another.
EXPECTED_POD_UID_HEADER = "X-Promdemo-Expected-Pod-Uid"
#: Addresses found serving another pod, remembered per engine (bounded: the oldest go).
MAX_WRONG_ADDRESSES = 4096


@dataclass(frozen=True)
class PodTarget:
    """A pod as the engine sees it. `base_url` None: no address yet (e.g. no pod IP).

    `uid`: the Pod's metadata.uid; empty when unknown (`promdemo local`), then the
    answering pod is not checked.
    """

    name: str
    base_url: str | None
    ready: bool = True
    uid: str = ""


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
    outcome: str  # reset | recovered | cooldown | failed | wrong_pod
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
    # pod → not_ready | no_address | cooldown | recovered | wrong_pod
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def lowest_inventory(self) -> float | None:
        return min(self.inventory.values()) if self.inventory else None


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
        client: PodClient | None = None,
        token: str | None = None,
        timeout: float = 2.0,
        namespace: str = "",
        promdemo: str = "",
        metrics: HealMetrics | None = None,
        clock: Callable[[], float] = time.time,
        concurrency: int = 64,
        proxy_token_header: bool = False,
        limits: ReadLimits | None = None,
        metrics_path: str = METRICS_PATH,
    ) -> None:
        """`client`: the process's shared `PodHttp` (not closed by `aclose`), or None
        (the engine makes its own `PodHttp` and closes it). At most `concurrency`
        requests of this engine are in flight at once, whatever the client.
        """
        self.policy = policy
        self.token = token
        self.timeout = timeout
        self.namespace = namespace
        self.promdemo = promdemo
        self.metrics = metrics
        self.clock = clock
        self.proxy_token_header = proxy_token_header
        self.metrics_path = metrics_path
        self._own_client = client is None
        self._pods: PodClient = (
            PodHttp(max_connections=concurrency, limits=limits) if client is None else client
        )
        self.limits = limits or getattr(self._pods, "limits", None) or ReadLimits()
        # This engine's share of a shared client: one PromDemo's many (or slow) pods
        # cannot take every connection of the process. Waiting here is not timed.
        self._slots = asyncio.Semaphore(concurrency)
        self._locks: dict[str, asyncio.Lock] = {}
        # (pod, stage) → the reason of the last failure logged for it
        self._last_problem: dict[tuple[str, str], str] = {}
        self._last_action: dict[str, Action] = {}  # pod → last logged decision
        # (pod, uid, base_url) found answering as another pod: not asked again
        self._wrong_addresses: dict[tuple[str, str, str | None], None] = {}
        self._who = f"{namespace}/{promdemo}" if namespace or promdemo else "heal"
        if metrics is not None:
            metrics.touch(namespace, promdemo)

    # -- lifecycle ------------------------------------------------------------

    async def aclose(self) -> None:
        if self._own_client:
            await self._pods.aclose()

    async def __aenter__(self) -> HealEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- reading --------------------------------------------------------------

    def _safe(self, detail: str) -> str:
        """Pod-supplied text for a `Failure` and the log: without the token, bounded."""
        return clip(redact(detail, (self.token,)), 200)

    async def read(self, pod: PodTarget) -> Reading:
        """GET the pod's gauge (`metrics_path`) and find `product_inventory`; never raises."""
        if not pod.base_url:
            return Reading(pod.name, None, "unreachable", "no address")
        scanner = InventoryScanner()
        try:
            async with self._slots:
                answer = await self._pods.request(
                    "GET",
                    f"{pod.base_url}{self.metrics_path}",
                    timeout=self.timeout,
                    max_bytes=self.limits.metrics_bytes,
                    sink=scanner.feed,
                )
            if pod.uid and answer.pod_uid and answer.pod_uid != pod.uid:
                detail = f"answered as pod UID {self._safe(answer.pod_uid)} ({POD_UID_HEADER})"
                return Reading(pod.name, None, "wrong_pod", detail)
            if answer.status != 200:
                return Reading(
                    pod.name, None, "http_status", f"GET /metrics answered {answer.status}"
                )
            return Reading(pod.name, scanner.finish())
        except PodReadError as e:
            return Reading(pod.name, None, e.reason, self._safe(e.detail))
        except ExpositionError as e:
            return Reading(pod.name, None, e.reason, self._safe(e.detail))

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
            elif self._is_wrong_address(pod):
                result.skipped[pod.name] = "wrong_pod"
            else:
                targets.append(pod)
        if self.metrics is not None:
            self.metrics.checks.labels(self.namespace, self.promdemo).inc()

        readings = await self._read_all(targets)
        due: list[tuple[PodTarget, Decision]] = []
        for pod, reading in zip(targets, readings, strict=True):
            if reading.value is None:
                self.policy.observe_missing(pod.name, now)
                failure = Failure(pod.name, "scrape", reading.reason or "garbage", reading.detail)
                result.failures.append(failure)
                self._count_scrape_failure(failure)
                if failure.reason == "wrong_pod":
                    self._wrong_address(pod, failure)
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
        listed = {(p.name, p.uid, p.base_url) for p in pods}
        for key in [k for k in self._wrong_addresses if k not in listed]:
            del self._wrong_addresses[key]
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
            if outcome.outcome in ("recovered", "cooldown", "wrong_pod"):
                result.skipped[outcome.pod] = outcome.outcome
            if outcome.outcome == "wrong_pod":
                # The value read for the decision may have been another pod's.
                result.inventory.pop(outcome.pod, None)
        return result

    async def _read_all(self, targets: Sequence[PodTarget]) -> list[Reading]:
        """Read every target concurrently, starting them `START_BATCH` at a time.

        Starting a read (build the request, write it to the socket) costs ~0.2 ms of
        CPU; a thousand started in one event-loop iteration would hold the loop for
        a fifth of a second. Yielding between batches lets everything else waiting
        on the loop (probes, other PromDemos' answers) run in between.
        """
        tasks: list[asyncio.Future[Reading]] = []
        try:
            for i, pod in enumerate(targets):
                if i and i % START_BATCH == 0:
                    await asyncio.sleep(0)
                tasks.append(asyncio.ensure_future(self.read(pod)))
            return list(await asyncio.gather(*tasks))
        except BaseException:  # cancelled: no read outlives its check
            for task in tasks:
                task.cancel()
            raise

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
            if self._is_wrong_address(pod):
                return HealOutcome(pod.name, "wrong_pod")
            if self.policy.in_cooldown(pod.name, self.clock()):
                return HealOutcome(pod.name, "cooldown")
            live = await self.read(pod)
            if live.value is None:
                failure = Failure(pod.name, "scrape", live.reason or "garbage", live.detail)
                self._count_scrape_failure(failure)
                if failure.reason == "wrong_pod":
                    self._wrong_address(pod, failure)
                    return HealOutcome(pod.name, "wrong_pod", failure=failure)
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
        if pod.uid:
            headers[EXPECTED_POD_UID_HEADER] = pod.uid
        url = f"{pod.base_url}/inventory/reset"
        attempted = self.clock()
        # Whether the pod may have reset: then the cooldown starts at `attempted`, even
        # when the answer is late, broken or never comes (cancelled too). Only no
        # connection at all or a 4xx answer (the pod refused) leaves it unset.
        acted = True
        try:
            try:
                async with self._slots:
                    answer = await self._pods.request(
                        "POST",
                        url,
                        headers=headers,
                        timeout=self.timeout,
                        max_bytes=self.limits.answer_bytes,
                    )
            except PodReadError as e:
                acted = e.sent
                if e.status is not None and 200 <= e.status < 300:
                    # The pod said yes, then its answer broke: a reset, not confirmed.
                    failure = Failure(pod.name, "reset", e.reason, self._safe(e.detail))
                    return self._reset_done(pod, before, None, since, source, failure)
                return self._reset_failed(pod, e.reason, self._safe(e.detail), cooldown=acted)
            if answer.status == 409 and pod.uid:
                # The app at this address is not the pod meant (it compared the UID
                # it was sent): it reset nothing, so no cooldown; not tried there again.
                acted = False
                body = redact(answer.body.decode("utf-8", "replace"), (self.token,))
                detail = f"answered 409 {clip(body.strip())}".rstrip()
                failure = Failure(pod.name, "reset", "wrong_pod", detail)
                self._count_reset_failure(failure)
                self._wrong_address(pod, failure)
                return HealOutcome(pod.name, "wrong_pod", failure=failure)
            if not 200 <= answer.status < 300:
                acted = answer.status >= 500
                # Redacted before clipping, so a token is never cut into a visible part.
                body = redact(answer.body.decode("utf-8", "replace"), (self.token,))
                snippet = clip(body.strip())
                detail = f"POST /inventory/reset answered {answer.status} {snippet}".rstrip()
                return self._reset_failed(pod, "http_status", detail, cooldown=acted)
            after: float | None
            try:
                after = parse_reset_answer(answer.body)
                failure = None
            except ExpositionError as e:
                after = None
                failure = Failure(pod.name, "reset", e.reason, self._safe(e.detail))
            return self._reset_done(pod, before, after, since, source, failure)
        finally:
            if acted:
                self.policy.record_reset(pod.name, attempted)

    def _reset_done(
        self,
        pod: PodTarget,
        before: float,
        after: float | None,
        since: float | None,
        source: str,
        failure: Failure | None,
    ) -> HealOutcome:
        """A 2xx answer: the reset happened (confirmed when `after` could be read)."""
        done_at = self.clock()
        latency = None if since is None else max(0.0, done_at - since)
        done = ResetDone(pod.name, before, after, done_at, latency, source)
        if self.metrics is not None:
            self.metrics.resets.labels(self.namespace, self.promdemo).inc()
            if latency is not None:
                self.metrics.latency.labels(self.namespace, self.promdemo, source).observe(latency)
        if failure is not None:
            self._count_reset_failure(failure)
            self._log_reset_problem(
                failure,
                "%s: reset pod %s (inventory was %s) but its answer is unusable (%s: %s); "
                "cooldown started anyway",
                self._who,
                pod.name,
                _fmt(before),
                failure.reason,
                failure.detail,
            )
        else:
            self._last_problem.pop((pod.name, "reset"), None)
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

    # -- pods whose address now serves another pod -----------------------------------

    def _is_wrong_address(self, pod: PodTarget) -> bool:
        return bool(pod.uid) and (pod.name, pod.uid, pod.base_url) in self._wrong_addresses

    def _wrong_address(self, pod: PodTarget, failure: Failure) -> None:
        """Remember that `pod`'s address serves another pod; say so once."""
        key = (pod.name, pod.uid, pod.base_url)
        if key in self._wrong_addresses:
            return
        if len(self._wrong_addresses) >= MAX_WRONG_ADDRESSES:
            del self._wrong_addresses[next(iter(self._wrong_addresses))]
        self._wrong_addresses[key] = None
        log.warning(
            "%s: pod %s (uid %s) is not at %s any more: %s %s; not read or reset there "
            "again until its address or UID changes",
            self._who,
            pod.name,
            pod.uid,
            pod.base_url,
            "GET /metrics" if failure.stage == "scrape" else "POST /inventory/reset",
            failure.detail,
        )

    # -- bookkeeping --------------------------------------------------------------

    def _reset_failed(
        self, pod: PodTarget, reason: str, detail: str, *, cooldown: bool = False
    ) -> HealOutcome:
        failure = Failure(pod.name, "reset", reason, detail)
        self._count_reset_failure(failure)
        self._log_reset_problem(
            failure,
            "%s: reset of pod %s failed (%s): %s%s",
            self._who,
            pod.name,
            reason,
            detail,
            "; it may have happened: cooldown started" if cooldown else "",
        )
        return HealOutcome(pod.name, "failed", failure=failure)

    def _count_scrape_failure(self, failure: Failure) -> None:
        if self.metrics is not None:
            self.metrics.scrape_failures.labels(self.namespace, self.promdemo, failure.reason).inc()
        if failure.reason == "wrong_pod":
            return  # `_wrong_address` says it, once
        if self._first_of_its_kind(failure):
            log.warning(
                "%s: cannot read pod %s (%s): %s; skipped this check",
                self._who,
                failure.pod,
                failure.reason,
                failure.detail,
            )
        else:
            log.debug("%s: pod %s still %s", self._who, failure.pod, failure.reason)

    def _log_reset_problem(self, failure: Failure, message: str, *args: object) -> None:
        log.log(
            logging.WARNING if self._first_of_its_kind(failure) else logging.DEBUG, message, *args
        )

    def _first_of_its_kind(self, failure: Failure) -> bool:
        """Whether `failure` differs from the last one logged for its pod and stage.

        A pod failing the same way at every check (broken, hostile, or reset at every
        check with cooldown 0) is logged once per change of reason, not once per check;
        the failure counters have every one.
        """
        key = (failure.pod, failure.stage)
        if self._last_problem.get(key) == failure.reason:
            return False
        self._last_problem[key] = failure.reason
        return True

    def _count_reset_failure(self, failure: Failure) -> None:
        if self.metrics is not None:
            self.metrics.reset_failures.labels(self.namespace, self.promdemo, failure.reason).inc()

    def _note_recovered(self, pod: str) -> None:
        if self._last_problem.pop((pod, "scrape"), None) is not None:
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
