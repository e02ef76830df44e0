"""kopf adapter: one reconcile loop per PromDemo (a kopf daemon), woken by the watches.

The loop reconciles as soon as kopf sees the PromDemo (created, or found after a
restart), then waits. The watches (`runtime/handlers/watches.py`) wake it when a child
changes or goes away, when the spec changes, and when the monitoring CRDs come or
go; several wake-ups within `DEBOUNCE_SECONDS` make one reconcile. Every
`--resync-seconds` (hours by default) it reconciles anyway as a safety net, then
reading every child from the API rather than from the watches.

A reconcile has three steps, each idempotent:

1. **Spec** (`invalid_spec`): a spec or name the CRD schema could not reject sets
   `SpecValid=False` with reason `InvalidSpec` (and an Event when the message is
   new); nothing is applied, and nothing is retried until the spec changes.
2. **Children** (`apply_children`, in the API thread pool): the reset token from
   the watched Secret (else a new one), `render.render_children`, then
   `kube.Kube.apply` for each against the watched object (create, patch when it
   drifted, nothing otherwise; an object this PromDemo does not control is left
   alone). ServiceMonitor/PrometheusRule are skipped while monitoring.coreos.com/v1
   is not served, and deleted (when owned) once the spec switches them off. With
   `spec.monitoring.matchPrometheus: auto` the labels the one able Prometheus
   needs are added first (`promstatus.auto_match`, from the watched Prometheus
   objects).
3. **Status** (`report_status`): only the reconcile's keys (`core/reconcile_status.py`), patched
   only when they changed; `PrometheusSelected` from the watched Prometheus objects,
   the namespace's labels and the ServiceMonitor/PrometheusRule as applied
   (`promstatus.selected_condition`), which also tells the PromDemo's observe loop
   (`runtime/handlers/prometheus.py`) which Prometheus to ask for TargetsUp, RulesLoaded,
   `status.targets` and `status.lessons`. Both write the status one at a time.

Events on the PromDemo say what changed: children created, updated (a drift
repaired) or deleted, a replicas change by another writer set back, the spec
becoming invalid, monitoring CRDs missing or back, a child that is not ours, the
PromDemo selected by a Prometheus or not any more. Which Events, what to apply or
delete and when to retry are the core's decisions (`core/reconcile_events.py`,
`core/reconcile_plan.py`); this module makes the calls. A
failed API call is retried after `TRANSIENT_RETRY_SECONDS` (409, 429, 5xx, no
connection) or `PERMANENT_RETRY_SECONDS` (e.g. 403) with a `ReconcileFailed` Event;
the retry (and the reconcile after the PromDemo watch re-listed, see
`watches.promdemo_listed`) reads every child from the API, not the indexes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import kopf

from promdemo_operator.core import render
from promdemo_operator.core import spec as spec_mod
from promdemo_operator.core.apply_plan import owned_by, secret_value
from promdemo_operator.core.event_limit import EventLimiter
from promdemo_operator.core.names import GROUP, PLURAL, VERSION, secret_name
from promdemo_operator.core.plaindata import plain
from promdemo_operator.core.reconcile_events import (
    Event,
    child_events,
    failure_event,
    invalid_spec_event,
    monitoring_event,
    not_owned_event,
    replicas_overridden,
    replicas_set_back_event,
    selection_changed,
    selection_event,
)
from promdemo_operator.core.reconcile_plan import (
    TRANSIENT_RETRY_SECONDS,
    children_of,
    children_to_apply,
    failure_retry_seconds,
    monitoring_plan,
    retry_after,
    writes_to_remember,
)
from promdemo_operator.core.reconcile_status import (
    MONITORING_PLURALS,
    find_condition,
    invalid_spec_status,
    monitoring_condition,
    reconciled_status,
    status_changes,
)
from promdemo_operator.core.timefmt import rfc3339
from promdemo_operator.prometheus import status as promstatus
from promdemo_operator.prometheus.selection import AutoLabels
from promdemo_operator.runtime.aio import pause, stop_requested, unless_stopped, wait_woken
from promdemo_operator.runtime.handlers import events
from promdemo_operator.runtime.handlers.context import OperatorContext, context_of
from promdemo_operator.runtime.handlers.prometheus import Observation, observe_loop, observed_status
from promdemo_operator.runtime.handlers.watches import Watched
from promdemo_operator.runtime.kube import UNKNOWN, ApplyResult, Kube, KubeError
from promdemo_operator.runtime.metrics import metrics
from promdemo_operator.runtime.ratelimit import TokenBucket

T = TypeVar("T")


class _Prefixed(logging.LoggerAdapter):
    """Log lines of one PromDemo: `namespace/name: message`."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"{self.extra['who']}: {msg}", kwargs  # type: ignore[index]


log = logging.getLogger("promdemo.reconcile")

#: Wake-ups closer together than this make one reconcile (a create writes five children).
DEBOUNCE_SECONDS = 0.1
#: kopf cancels the loop this long after asking it to stop (the loop stops at once anyway).
CANCELLATION_TIMEOUT_SECONDS = 2.0


@dataclass
class Outcome:
    """What one reconcile ended with: its result, and when to try again (None: on events)."""

    result: str  # success | invalid_spec | error
    retry_after: float | None = None


@dataclass
class Applied:
    """What step 2 did (computed in the thread pool, reported on the event loop)."""

    results: list[ApplyResult] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    wanted_monitoring: set[str] = field(default_factory=set)
    missing_monitoring: list[str] = field(default_factory=list)
    monitoring_complete: bool = True
    prometheus_served: bool = False

    def object_of(self, kind: str) -> dict[str, Any] | None:
        for result in self.results:
            if result.kind == kind:
                return result.object
        return None


class Events:
    """Kubernetes Events on the PromDemo (kopf posts them in the background), rate-limited
    per PromDemo and reason, each taking a token of the API client's limit
    (`runtime/handlers/events.py`)."""

    def __init__(
        self, body: Any, limiter: EventLimiter, api_limiter: TokenBucket | None = None
    ) -> None:
        self.body = body
        self.limiter = limiter
        self.api_limiter = api_limiter

    def normal(self, reason: str, message: str) -> None:
        events.post(
            self.limiter,
            self.body,
            type="Normal",
            reason=reason,
            message=message,
            api_limiter=self.api_limiter,
        )

    def warning(self, reason: str, message: str) -> None:
        events.post(
            self.limiter,
            self.body,
            type="Warning",
            reason=reason,
            message=message,
            api_limiter=self.api_limiter,
        )


class ReconcileLoop:
    """One PromDemo's reconciles: the three steps, and what the loop remembers between them."""

    def __init__(self, ctx: OperatorContext, body: Any, watched: Watched) -> None:
        self.ctx = ctx
        self.body = body  # kopf's live view of the PromDemo
        self.watched = watched
        meta = body.get("metadata") or {}
        self.namespace = str(meta.get("namespace") or "")
        self.name = str(meta.get("name") or "")
        # kopf's per-object logger would also post each warning as an Event: the loop posts
        # its own Events, and logs on its own logger.
        self.logger = _Prefixed(log, {"who": f"{self.namespace}/{self.name}"})
        self.events = Events(body, ctx.events, getattr(ctx.kube, "limiter", None))
        # The status keys this loop (or its observe loop) wrote, and the PromDemo's version
        # when it wrote them: until the watch delivers the newer version, those keys are
        # taken from here. One writer at a time, so neither drops the other's conditions.
        self._written: dict[str, Any] = {}
        self._written_over: str | None = None
        self._status_lock = asyncio.Lock()
        self._warned_not_owned: set[str] = set()
        #: What the observe loop asks Prometheus, as the last reconcile decided.
        self.observation: Observation | None = None
        self.observation_changed = asyncio.Event()

    # -- the reconcile -------------------------------------------------------------------

    async def reconcile(self, *, fresh: bool = False) -> Outcome:
        """One reconcile; `fresh` reads every child from the API instead of the watches."""
        async with self.ctx.reconcile_slots:
            return await self._reconcile(fresh=fresh)

    async def _reconcile(self, *, fresh: bool) -> Outcome:
        m = metrics()
        started = time.perf_counter()
        try:
            outcome = await self._steps(fresh=fresh)
        except KubeError as e:
            m.reconcile_errors.inc()
            outcome = Outcome("error", failure_retry_seconds(transient=e.transient))
            self.logger.warning("reconcile failed (retry in %.0fs): %s", outcome.retry_after, e)
            self.post(failure_event(f"{e}", transient=e.transient))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            m.reconcile_errors.inc()
            outcome = Outcome("error", TRANSIENT_RETRY_SECONDS)
            self.logger.exception("reconcile failed (retry in %.0fs): %s", outcome.retry_after, e)
        finally:
            m.reconcile_duration.observe(time.perf_counter() - started)
        m.reconciles.labels(result=outcome.result).inc()
        return outcome

    def _current_status(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        status = dict(raw.get("status") or {})
        version = (raw.get("metadata") or {}).get("resourceVersion")
        if self._written and version == self._written_over:
            status.update(self._written)  # the watch has not delivered our own write yet
        else:
            self._written = {}  # delivered (or overtaken): the body has it
        return status

    async def _steps(self, *, fresh: bool) -> Outcome:
        raw = plain(self.body)
        meta = raw.get("metadata") or {}
        name, namespace = meta["name"], meta.get("namespace") or ""
        if meta.get("deletionTimestamp"):
            # Being deleted: its children go with it (garbage collector); re-creating one
            # that the collector just deleted would only delay that.
            return Outcome("success")
        status = self._current_status(raw)
        records = self.watched.prometheuses()
        namespace_labels = self.watched.namespace_labels(namespace)
        try:
            spec = spec_mod.parse_spec(raw.get("spec") or {})
            spec, auto = promstatus.auto_match(name, namespace, spec, records, namespace_labels)
            # The watches hold every Secret of ours: no Secret there means a new PromDemo (and
            # if one was created meanwhile, its data is never rewritten: see apply_plan).
            secret = self._known("Secret", namespace, name)
            token = secret_value(secret, render.RESET_TOKEN_KEY) if secret else None
            if fresh:
                token = await self.ctx.call(
                    self.ctx.kube.read_secret_value,
                    namespace,
                    secret_name(name),
                    render.RESET_TOKEN_KEY,
                )
            children = render.render_children(
                name,
                namespace,
                spec,
                token=token or render.new_reset_token(),
                owner=render.owner_reference(raw),
            )
        except spec_mod.SpecError as e:
            await self.invalid_spec(raw, status, getattr(e, "message", None) or str(e))
            return Outcome("invalid_spec")
        applied = await self.apply_children(raw, status, spec, children, fresh=fresh)
        selected = self.decide_selection(spec, applied, auto, records, namespace_labels)
        await self.report_status(raw, status, spec, applied, selected)
        return Outcome("success", retry_after(applied.results, name))

    def post(self, event: Event | None) -> None:
        """Post an Event the core decided on (None: nothing to say)."""
        if event is None:
            return
        if event.type == "Warning":
            self.events.warning(event.reason, event.message)
        else:
            self.events.normal(event.reason, event.message)

    # -- 1. the spec -----------------------------------------------------------------------

    async def invalid_spec(
        self, raw: Mapping[str, Any], status: Mapping[str, Any], message: str
    ) -> None:
        """SpecValid=False with the message; an Event and a log line when the message is new."""
        event = invalid_spec_event(status, message)
        if event is not None:
            self.post(event)
            self.logger.warning("invalid spec: %s", message)
        generation = (raw.get("metadata") or {}).get("generation")
        await self.update_status(
            lambda current: invalid_spec_status(
                current, generation=generation, message=message, now=rfc3339()
            )
        )

    # -- 2. the children ---------------------------------------------------------------------

    def _known(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The child as the watches (or the operator's own last write) have it."""
        key = (kind, namespace, secret_name(name) if kind == "Secret" else name)
        written = self.ctx.unseen_writes.get(key)
        if written is not None:
            return written[1]
        record = self.watched.child(*key)
        return record.object() if record is not None else None

    def _remember_writes(
        self, known: Mapping[str, Any], applied: Applied, namespace: str, name: str
    ) -> None:
        """Until the watches deliver them, the next reconcile plans against these writes."""
        delivered: dict[tuple[str, str, str], str | None] = {}
        for result in applied.results:
            record = self.watched.child(result.kind, namespace, result.name)
            if record is not None:
                delivered[(result.kind, namespace, result.name)] = record.resource_version
        self.ctx.unseen_writes.update(
            writes_to_remember(
                applied.results, applied.deleted, known,
                namespace=namespace, promdemo=name, delivered=delivered,
                unknown={kind for kind, obj in known.items() if obj is UNKNOWN},
            )
        )  # fmt: skip

    async def apply_children(
        self,
        raw: Mapping[str, Any],
        status: Mapping[str, Any],
        spec: spec_mod.PromDemoSpec,
        children: list[dict[str, Any]],
        *,
        fresh: bool,
    ) -> Applied:
        """Create, patch or leave each child; delete monitoring objects switched off."""
        meta = raw.get("metadata") or {}
        name, namespace, uid = meta["name"], meta.get("namespace") or "", meta.get("uid") or ""
        kinds = (*(c["kind"] for c in children), *MONITORING_PLURALS)
        known: dict[str, Any] = {
            kind: UNKNOWN if fresh else self._known(kind, namespace, name) for kind in kinds
        }
        if fresh:  # read from the API: forget what the watches had not delivered
            for key in children_of(list(self.ctx.unseen_writes), namespace, name):
                del self.ctx.unseen_writes[key]
        applied = await self.ctx.call(
            apply_children, self.ctx.kube, children, known=known, owner_uid=uid,
            namespace=namespace, name=name,
        )  # fmt: skip
        self._remember_writes(known, applied, namespace, name)
        m = metrics()
        m.monitoring_crds.set(1 if applied.monitoring_complete else 0)
        for result in applied.results:
            m.children.labels(kind=result.kind, action=result.action).inc()
            if result.action in ("created", "patched"):
                self.logger.info("%s %s %s", result.action, result.kind, result.name)
            elif result.action == "not_owned":
                self._not_owned(raw, result)
        for kind in applied.deleted:
            m.children.labels(kind=kind, action="deleted").inc()
        for event in child_events(applied.results, applied.deleted, name):
            self.post(event)
        self._scaled_back(raw, status, spec, known.get("Deployment"), applied)
        return applied

    def _scaled_back(
        self,
        raw: Mapping[str, Any],
        status: Mapping[str, Any],
        spec: spec_mod.PromDemoSpec,
        before: Any,
        applied: Applied,
    ) -> None:
        """Say so when a replicas count set by another writer was set back to spec.replicas."""
        theirs = replicas_overridden(
            deployment_patched=any(
                r.kind == "Deployment" and r.action == "patched" for r in applied.results
            ),
            before=before,
            generation=(raw.get("metadata") or {}).get("generation"),
            observed_generation=status.get("observedGeneration"),
            spec_replicas=spec.replicas,
        )
        if theirs is None:
            return
        name = (raw.get("metadata") or {}).get("name")
        self.post(replicas_set_back_event(name, theirs, spec.replicas))
        self.logger.info("set replicas of Deployment %s back from %s to %s", name, theirs,
                         spec.replicas)  # fmt: skip

    def _not_owned(self, raw: Mapping[str, Any], result: ApplyResult) -> None:
        name = (raw.get("metadata") or {}).get("name")
        event = not_owned_event(result, name)
        if event is None:
            self.logger.info(
                "%s %s still belongs to a deleted PromDemo %s; waiting for the garbage collector",
                result.kind, result.name, name,
            )  # fmt: skip
            return
        if result.kind in self._warned_not_owned:
            return
        self._warned_not_owned.add(result.kind)
        self.post(event)
        self.logger.warning("%s %s exists and is not ours; not touching it", result.kind,
                            result.name)  # fmt: skip

    # -- 3. the status -------------------------------------------------------------------------

    def decide_selection(
        self,
        spec: spec_mod.PromDemoSpec,
        applied: Applied,
        auto: AutoLabels | None,
        records: list[dict[str, Any]],
        namespace_labels: Mapping[str, Mapping[str, str]],
    ) -> dict[str, str]:
        """PrometheusSelected for the objects as applied; tell the observe loop whom to ask."""
        decided = promstatus.selection(
            self.name,
            self.namespace,
            spec,
            live={kind: applied.object_of(kind) for kind in MONITORING_PLURALS},
            monitoring_served=not applied.missing_monitoring,
            prometheus_served=applied.prometheus_served,
            records=records,
            namespace_labels=namespace_labels,
            auto=auto,
        )
        observation = Observation(
            service_monitor=spec.monitoring.service_monitor,
            prometheus_rule=spec.monitoring.prometheus_rule,
            replicas=spec.replicas,
            prometheuses=decided.asked,
            every=tuple(records),
            by_url=self.ctx.options.prometheus_url is not None,
            not_asked=decided.not_asked,
        )
        if observation != self.observation:
            self.observation = observation
            self.observation_changed.set()
        return decided.condition

    def _selection_event(self, status: Mapping[str, Any], new: Mapping[str, str]) -> None:
        """An Event when the PromDemo becomes selected, or not (or why not changes).

        A PromDemo that nothing selects gets the Warning from its first report on (what
        to fix); one selected from the start gets no Event for it.
        """
        old = find_condition(status.get("conditions"), promstatus.SELECTED)
        if not selection_changed(old, new):
            return
        self.post(selection_event(old, new))
        if new["status"] == "True":
            self.logger.info("%s", new["message"])
        elif new["status"] == "False":
            self.logger.info("not selected: %s", new["message"])

    async def report_status(
        self,
        raw: Mapping[str, Any],
        status: Mapping[str, Any],
        spec: spec_mod.PromDemoSpec,
        applied: Applied,
        selected: dict[str, str],
    ) -> None:
        meta = raw.get("metadata") or {}
        new_monitoring = monitoring_condition(applied.wanted_monitoring, applied.missing_monitoring)
        self.post(monitoring_event(status, new_monitoring))
        self._selection_event(status, selected)
        observation = self.observation

        def wanted(current: Mapping[str, Any]) -> Mapping[str, Any]:
            keys = reconciled_status(
                current,
                name=meta["name"],
                generation=meta.get("generation"),
                desired_replicas=spec.replicas,
                deployment=applied.object_of("Deployment"),
                monitoring=new_monitoring,
                now=rfc3339(),
                also=[selected],
            )
            if observation is not None and not observation.asks:
                # Prometheus is not to be asked: the observe loop's keys are known now, and
                # one write carries both (a new PromDemo costs one status write, not two).
                merged = {**current, **keys}
                keys = {**keys, **observed_status(
                    merged, observation, [], namespace=self.namespace, name=self.name,
                )}  # fmt: skip
            return keys

        await self.update_status(wanted)

    async def update_status(
        self, compute: Callable[[Mapping[str, Any]], Mapping[str, Any]]
    ) -> None:
        """Patch the keys of `compute(current status)` that changed; one writer at a time.

        `current` is the status as the watch last delivered it, with this loop's own
        writes it has not delivered yet; the reconcile and the observe loop both write
        through here, so neither plans its conditions against a list the other just
        changed.
        """
        async with self._status_lock:
            meta = dict(self.body.get("metadata") or {})
            raw = {"metadata": meta, "status": plain(self.body.get("status") or {})}
            current = self._current_status(raw)
            # Unchanged conditions keep their lastTransitionTime, so equal means unchanged,
            # and a reconcile that found nothing new writes nothing.
            changes = status_changes(current, compute(current))
            if not changes:
                return
            await self.ctx.call(
                self.ctx.kube.merge_patch, "PromDemo", self.namespace, self.name,
                {"status": changes}, subresource="status",
            )  # fmt: skip
            version = meta.get("resourceVersion")
            kept = self._written if version == self._written_over else {}
            self._written = {**kept, **changes}
            self._written_over = version


def apply_children(
    kube: Kube,
    children: list[dict[str, Any]],
    *,
    known: Mapping[str, Any],
    owner_uid: str,
    namespace: str,
    name: str,
) -> Applied:
    """Step 2's API calls (blocking; run in the pool). `known`: kind → object, None, UNKNOWN."""
    support = kube.monitoring_support()
    plan = monitoring_plan((c["kind"] for c in children), support.kinds)
    applied = Applied(monitoring_complete=support.complete, prometheus_served=support.prometheus)
    applied.wanted_monitoring = set(plan.wanted)
    applied.missing_monitoring = list(plan.missing)
    for child in children_to_apply(children, plan):
        actual = known.get(child["kind"], UNKNOWN)
        applied.results.append(kube.apply(child, actual=actual, owner_uid=owner_uid))
    for kind in plan.switched_off:
        obj = known.get(kind, UNKNOWN)
        if obj is UNKNOWN:
            obj = kube.get(kind, namespace, name)
        if obj is not None and owned_by(obj, owner_uid) and kube.delete(kind, namespace, name):
            applied.deleted.append(kind)
    return applied


# -- the kopf daemon -------------------------------------------------------------------------


def first_resync_seconds(namespace: str, name: str, resync: float) -> float:
    """When a PromDemo's first resync is due: spread over [resync, 2 * resync) by its name,
    so that PromDemos created together do not all resync at once."""
    spread = zlib.crc32(f"{namespace}/{name}".encode()) / 2**32
    return resync * (1.0 + spread)


@kopf.daemon(
    GROUP, VERSION, PLURAL, id="reconcile", cancellation_timeout=CANCELLATION_TIMEOUT_SECONDS
)
async def reconcile_loop(
    body: kopf.Body,
    name: str,
    namespace: str,
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """Reconcile now, then whenever the watches say so (and every --resync-seconds)."""
    ctx = context_of(memo)
    loop = ReconcileLoop(ctx, body, Watched.from_kwargs(kwargs))
    key = (namespace, name)
    wake = ctx.reconcilers.register(key)
    resync = ctx.options.resync_seconds
    next_resync = time.monotonic() + first_resync_seconds(namespace, name, resync)
    fresh = False
    halt = stop_requested(stopped)
    observer = asyncio.ensure_future(observe_loop(loop, stopped, halt))
    try:
        while not stopped:
            wake.clear()
            if key in ctx.stale:  # the indexes may be wrong (see ctx.refresh): read the API
                ctx.stale.discard(key)
                fresh = True
            outcome = await unless_stopped(halt, loop.reconcile(fresh=fresh))
            if stopped or outcome is None:
                break
            if outcome.result == "error":
                # E.g. a 404 or 409 because a child is not what the watches said: the retry
                # reads every child from the API rather than trusting the indexes again.
                ctx.stale.add(key)
            if fresh:
                next_resync = time.monotonic() + resync
            delay = max(0.0, next_resync - time.monotonic())
            if outcome.retry_after is not None:
                delay = min(delay, outcome.retry_after)
            woken = await wait_woken(halt, wake, delay)
            if stopped:
                break
            if woken:
                await pause(halt, DEBOUNCE_SECONDS)
                fresh = False
            else:
                fresh = time.monotonic() >= next_resync
    finally:
        observer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await observer
        halt.cancel()
        ctx.reconcilers.unregister(key, wake)
