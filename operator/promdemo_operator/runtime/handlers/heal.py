"""kopf adapter of auto-heal: the heal loop of each PromDemo (a kopf daemon) and its Events.

The decisions, the HTTP work and the loop's state are the core's
(`promdemo_operator.heal`: engine, policy, state); this module connects them to
Kubernetes:

- the daemon runs while the PromDemo's name and spec are valid and
  `spec.autoHeal.enabled` is true (kopf's `when=` filter stops it otherwise, and
  when the PromDemo is deleted), one check every `spec.autoHeal.interval`; the
  first check of each loop comes at a point of its interval given by its name, so
  loops started together do not check together;
- a check reads memory only: the pods and the reset token come from the watches
  (`runtime/handlers/watches.py`), the pods are reached by pod IP or through the API
  server's pod proxy (`spec.autoHeal.podAccess`) with the HTTP client all loops
  share (`runtime/handlers/pod_clients.py`). The only API requests are writes: the status
  when it changed, at most once per `heal.state.STATUS_WRITE_PERIOD_SECONDS`
  (10 s) per PromDemo however busy its pods are (the next check after the
  period writes what it read), and an Event per reset;
- in `source: alertmanager` mode the loop keeps reading (status stays current)
  but does not reset: the webhook (`runtime/handlers/webhook.py`) asks `heal_alert` to.

No fault ends a loop: API errors and pod errors are counted
(`promdemo_heal_api_errors_total`, `promdemo_heal_scrape_failures_total`, ...),
logged, and the next interval tries again. Stopping does not wait for a check: a
check in progress is cancelled at once, and a status write waiting for an API
server that does not answer is abandoned.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import urllib.parse
import zlib
from typing import Any

import kopf

from promdemo_operator.core import render
from promdemo_operator.core import spec as spec_mod
from promdemo_operator.core.heal_policy import PolicyConfig
from promdemo_operator.core.names import GROUP, PLURAL, VERSION, secret_name, selector_string
from promdemo_operator.core.plaindata import plain
from promdemo_operator.core.timefmt import rfc3339
from promdemo_operator.heal.access import API_PROXY, resolve_access
from promdemo_operator.heal.alertmanager import AlertRef
from promdemo_operator.heal.engine import CheckResult, HealEngine, PodTarget, ResetDone
from promdemo_operator.heal.metrics import HealMetrics, default_metrics
from promdemo_operator.heal.pods import PodRecord, alert_names_pod, targets_from_records
from promdemo_operator.heal.status import HealState
from promdemo_operator.runtime.aio import pause, stop_requested, unless_stopped
from promdemo_operator.runtime.handlers import events
from promdemo_operator.runtime.handlers.context import OperatorContext, context_of
from promdemo_operator.runtime.handlers.pod_clients import POD_TIMEOUT_SECONDS, PodHttpClients
from promdemo_operator.runtime.handlers.watches import Watched
from promdemo_operator.runtime.kube import KubeError

log = logging.getLogger("promdemo.heal")

INVALID_SPEC_RETRY_SECONDS = 5.0
#: kopf cancels the daemon this long after asking it to stop; the loop itself stops a
#: check at once (`unless_stopped`), so this is only a backstop.
CANCELLATION_TIMEOUT_SECONDS = 2.0


#: PromDemos whose parsed `autoHeal` is remembered (by uid, for one generation).
SPEC_CACHE_SIZE = 8192


def parse_auto_heal(spec: Any) -> spec_mod.AutoHealSpec:
    """`spec.autoHeal`, defaulted and validated (raises `SpecError`)."""
    return spec_mod.parse_spec(plain(spec or {})).auto_heal


class AutoHealCache:
    """`parse_auto_heal` once per PromDemo generation.

    Parsing and validating the whole spec costs ~90 µs; kopf asks `heal_wanted` at
    every event of the PromDemo and each heal loop wanted its settings at every tick
    (one PromDemo of one pod checked every 5 s spent more on that than on the read).
    The spec changes only with `metadata.generation` (status is a subresource), so
    the result (or the `SpecError`) is kept per uid for its generation; without a uid
    or generation nothing is kept. Bounded: the oldest entries go first.
    """

    def __init__(self, size: int = SPEC_CACHE_SIZE) -> None:
        self.size = size
        self._entries: dict[str, tuple[Any, spec_mod.AutoHealSpec | spec_mod.SpecError]] = {}

    def get(self, meta: Any, spec: Any) -> spec_mod.AutoHealSpec:
        uid = meta.get("uid") if meta else None
        generation = meta.get("generation") if meta else None
        if uid is None or generation is None:
            return parse_auto_heal(spec)
        entry = self._entries.get(uid)
        if entry is None or entry[0] != generation:
            try:
                result: spec_mod.AutoHealSpec | spec_mod.SpecError = parse_auto_heal(spec)
            except spec_mod.SpecError as e:
                result = e
            if entry is None and len(self._entries) >= self.size:
                del self._entries[next(iter(self._entries))]
            entry = self._entries[uid] = (generation, result)
        if isinstance(entry[1], spec_mod.SpecError):
            raise entry[1].with_traceback(None)  # no traceback growing at every raise
        return entry[1]


_auto_heal_cache = AutoHealCache()


def heal_wanted(name: str, spec: Any, meta: Any = None, **_: Any) -> bool:
    """kopf `when=` filter: a loop only for a valid name and spec with autoHeal enabled."""
    try:
        render.check_name(name)
        return _auto_heal_cache.get(meta, spec).enabled
    except spec_mod.SpecError:
        return False


def first_check_delay(namespace: str, name: str, interval: float) -> float:
    """Where in its first interval a loop checks first: fixed by its name, spread over loops."""
    return interval * (zlib.crc32(f"{namespace}/{name}".encode()) / 2**32)


class HealLoop:
    """One PromDemo's heal loop: its state, its engine, and the Kubernetes side of a check."""

    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        ctx: OperatorContext,
        watched: Watched,
        metrics: HealMetrics | None = None,
        clock: Any = time.time,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.ctx = ctx
        self.watched = watched
        self.metrics = metrics
        self.clock = clock
        self.state = HealState()
        self.settings: spec_mod.AutoHealSpec | None = None
        self.body: Any = None
        self._access: str | None = None
        self._api_server: str | None = None
        self._engine: HealEngine | None = None
        self._token_missing_logged = False
        #: Pods kopf's index still holds but the API no longer has: deleted during a watch
        #: gap (410 Gone), whose DELETED event never came (see `forget_gone_pods`).
        self._gone: set[str] = set()
        # What the last tick derived from the watched records, kept while the records
        # are the same objects (a check of one pod cost more in these than in its read).
        self._token_record: Any = None
        self._token: str | None = None
        self._targets_key: tuple[Any, ...] | None = None
        self._targets: list[PodTarget] = []
        self.who = f"{namespace}/{name}"
        #: The status write in flight, if any: checks do not wait for it (below).
        self._status_write: asyncio.Future[None] | None = None
        self._force_pending = False
        # The kopf daemon's context: where kopf.event finds its queue.
        self.context = contextvars.copy_context()

    # -- configuration ----------------------------------------------------------------------

    def configure(self, settings: spec_mod.AutoHealSpec) -> None:
        self.settings = settings
        self.state.policy.update_config(PolicyConfig.from_spec(settings))

    def _clients(self) -> PodHttpClients:
        if self.ctx.pod_http is None:
            self.ctx.pod_http = PodHttpClients(self.ctx.kube)
        return self.ctx.pod_http

    def engine(self) -> HealEngine:
        """The engine for the current pod access mode, on the shared client."""
        assert self.settings is not None
        access = resolve_access(self.settings.pod_access)
        if self._engine is not None and access == self._access:
            return self._engine
        if access == API_PROXY:
            client, self._api_server = self._clients().proxy()
        else:
            client, self._api_server = self._clients().direct(), None
        self._access = access
        self._engine = HealEngine(
            self.state.policy,
            client=client,
            timeout=POD_TIMEOUT_SECONDS,
            namespace=self.namespace,
            promdemo=self.name,
            metrics=self.metrics,
            clock=self.clock,
            proxy_token_header=access == API_PROXY,
        )
        log.info("%s: heal loop reaches pods by %s", self.who, access)
        return self._engine

    # -- what the watches know -------------------------------------------------------------

    def records(self) -> tuple[PodRecord, ...]:
        """The PromDemo's watched pods, less those gone during a watch gap."""
        records = tuple(self.watched.pods(self.namespace, self.name))
        if self._gone:
            self._gone &= {r.name for r in records}  # what the index still holds, no more
            records = tuple(r for r in records if r.name not in self._gone)
        return records

    def pods(self) -> list[PodTarget]:
        """The PromDemo's pods as targets, from the watched pods."""
        self.engine()
        assert self._access is not None
        records = self.records()
        key = (self._access, self._api_server, records)
        if key != self._targets_key:
            self._targets_key = key
            self._targets = targets_from_records(
                records,
                access=self._access,
                namespace=self.namespace,
                api_server=self._api_server,
            )
        return list(self._targets)

    def _update_token(self, engine: HealEngine) -> None:
        record = self.watched.child("Secret", self.namespace, secret_name(self.name))
        if record is not self._token_record:  # decoded again only when the Secret changed
            self._token_record = record
            self._token = record.secret_value(render.RESET_TOKEN_KEY) if record else None
        token = self._token
        if token is None and not self._token_missing_logged:
            self._token_missing_logged = True
            log.warning(
                "%s: Secret %s has no %r yet; resets are sent without a token",
                self.who, secret_name(self.name), render.RESET_TOKEN_KEY,
            )  # fmt: skip
        engine.token = token

    async def forget_gone_pods(self) -> None:
        """After the PromDemo watch re-listed (`ctx.refresh`): list the pods from the API
        once, and leave out the indexed pods it no longer has (kopf's index keeps a pod
        deleted during a watch gap: the check would probe its dead address forever)."""
        key = (self.namespace, self.name)
        if key not in self.ctx.stale_pods:
            return
        self.ctx.stale_pods.discard(key)
        indexed = {r.name for r in self.watched.pods(self.namespace, self.name)}
        selector = urllib.parse.quote(selector_string(self.name))
        path = f"/api/v1/namespaces/{self.namespace}/pods?labelSelector={selector}"
        try:
            listing = await self.ctx.call(self.ctx.kube.request, "GET", path)
        except KubeError as e:
            self.ctx.stale_pods.add(key)  # next check
            if self.metrics is not None:
                self.metrics.api_error(self.namespace, self.name, "list_pods")
            log.warning("%s: Kubernetes API error in list_pods: %s", self.who, e)
            return
        live = {(i.get("metadata") or {}).get("name") for i in listing.get("items") or []}
        gone = indexed - live
        if gone:
            log.info("%s: pods gone during a watch gap, no longer checked: %s", self.who,
                     ", ".join(sorted(gone)))  # fmt: skip
        self._gone |= gone

    # -- one check -------------------------------------------------------------------------

    async def tick(self, body: Any) -> CheckResult:
        """One check: read the pods, reset due ones (direct mode), write status if it changed."""
        assert self.settings is not None
        self.body = body
        engine = self.engine()
        self._update_token(engine)
        await self.forget_gone_pods()
        result = await engine.check(self.pods(), reset=self.settings.source == "direct")
        await self._after_resets(result.resets)
        await self._write_status(result.inventory, force=bool(result.resets))
        return result

    # -- the webhook's entry -------------------------------------------------------------

    def find_pod(self, ref: AlertRef) -> PodTarget | None:
        """The pod an alert names, among the watched pods: by what the pod is (its name,
        the address it was scraped at: `heal.pods.alert_names_pod`), never by the URL the
        operator reaches it at (through the API server's proxy, every pod's URL starts
        with the API server's address)."""
        if self.settings is None:
            return None
        targets = {t.name: t for t in self.pods()}
        for record in self.records():
            if alert_names_pod(record, pod=ref.pod, instance=ref.instance):
                return targets.get(record.name)
        return None

    async def heal_alert(self, ref: AlertRef) -> str:
        """Re-check and maybe reset the pod of one firing alert; returns the outcome."""
        if self.settings is None or self.settings.source != "alertmanager":
            return "ignored"
        target = self.find_pod(ref)
        if target is None or not target.ready or not target.base_url:
            return "unknown_target"
        engine = self.engine()
        self._update_token(engine)
        outcome = await engine.heal(target, first_seen=ref.starts_at, source="alertmanager")
        if outcome.reset is not None:
            await self._after_resets([outcome.reset])
            await self._write_status(self.state.inventory, force=True)
        return outcome.outcome

    # -- visibility ----------------------------------------------------------------------

    async def _after_resets(self, resets: list[ResetDone]) -> None:
        for done in resets:
            message = self.state.record(done)
            if self.body is None:
                continue
            try:
                # kopf.event needs the operator's context (its event queue lives in a
                # contextvar): the webhook's request tasks run outside it.
                self.context.run(
                    events.post, self.ctx.events, self.body,
                    type="Normal", reason="InventoryReset", message=message,
                    api_limiter=getattr(self.ctx.kube, "limiter", None),
                )  # fmt: skip
            except Exception as e:
                if self.metrics is not None:
                    self.metrics.api_error(self.namespace, self.name, "post_event")
                log.warning("%s: could not post the InventoryReset event: %s", self.who, e)

    async def _write_status(self, inventory: dict[str, float], *, force: bool) -> None:
        """Merge-patch status with only the heal keys, when they changed, without waiting.

        The write goes out as a task of its own: a check never waits for it. Under the
        client's API limit (`--kube-api-qps`) a write can wait for its token for seconds
        when many PromDemos write at once, and the next checks (and resets) would wait
        behind it. While one write is in flight no other is planned (`status_patch`
        keeps one pending patch); the next check plans again with what it read, and a
        reset's forced write is kept for it.
        """
        if self._status_write is not None and not self._status_write.done():
            self.state.inventory = dict(inventory)
            self._force_pending = self._force_pending or force
            return
        force = force or self._force_pending
        patch = self.state.status_patch(inventory, self.clock(), force=force)
        if patch is None:
            return
        self._force_pending = False
        self._status_write = asyncio.ensure_future(self._send_status(patch))

    async def status_written(self) -> None:
        """Wait for the status write in flight, if any (tests, and a clean stop)."""
        if self._status_write is not None:
            await asyncio.wait({self._status_write})

    def stop_writing(self) -> None:
        """The loop stops: drop the write in flight (its thread finishes on its own)."""
        if self._status_write is not None and not self._status_write.done():
            self._status_write.cancel()

    async def _send_status(self, patch: dict[str, Any]) -> None:
        try:
            await self.ctx.call(
                self.ctx.kube.merge_patch, "PromDemo", self.namespace, self.name,
                {"status": patch}, subresource="status",
            )  # fmt: skip
        except KubeError as e:
            if self.metrics is not None:
                self.metrics.api_error(self.namespace, self.name, "patch_status")
            log.warning("%s: Kubernetes API error in patch_status: %s", self.who, e)
            return
        except Exception as e:  # a task of its own: nobody else would see it
            if self.metrics is not None:
                self.metrics.api_error(self.namespace, self.name, "other")
            log.exception("%s: writing the heal status failed: %s", self.who, e)
            return
        self.state.written_ok()


@kopf.daemon(
    GROUP,
    VERSION,
    PLURAL,
    id="auto-heal",
    when=heal_wanted,
    cancellation_timeout=CANCELLATION_TIMEOUT_SECONDS,
)
async def auto_heal(
    body: kopf.Body,
    name: str,
    namespace: str,
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """The heal loop of one PromDemo; returns when it is deleted or autoHeal is switched off."""
    ctx = context_of(memo)
    metrics = default_metrics()
    loop = HealLoop(namespace, name, ctx=ctx, watched=Watched.from_kwargs(kwargs), metrics=metrics)
    restored = loop.state.restore(body.get("status"))
    if restored:
        log.info(
            "%s: restored last resets %s (cooldown continues after a restart)",
            loop.who,
            ", ".join(f"{p} at {rfc3339(t)}" for p, t in sorted(restored.items())),
        )
    ctx.heal_loops[(namespace, name)] = loop
    log.info("%s: heal loop started", loop.who)
    next_at: float | None = None
    halt = stop_requested(stopped)
    try:
        while not stopped:
            try:
                settings = _auto_heal_cache.get(body.get("metadata"), body.get("spec"))
            except spec_mod.SpecError as e:
                log.warning("%s: invalid spec, not healing: %s", loop.who, e)
                await pause(halt, INVALID_SPEC_RETRY_SECONDS)
                continue
            if settings is not loop.settings:
                loop.configure(settings)
            interval = settings.interval_seconds
            if next_at is None:
                next_at = time.monotonic() + first_check_delay(namespace, name, interval)
                await pause(halt, next_at - time.monotonic())
                if stopped:
                    break
            try:
                await unless_stopped(halt, loop.tick(body))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                metrics.api_error(namespace, name, "other")
                log.exception("%s: heal check failed: %s", loop.who, e)
            if stopped:
                break
            next_at += interval
            delay = next_at - time.monotonic()
            if delay <= 0:  # a check longer than the interval: start the next one now
                next_at = time.monotonic()
                continue
            await pause(halt, delay)
    finally:
        halt.cancel()
        loop.stop_writing()
        if ctx.heal_loops.get((namespace, name)) is loop:
            del ctx.heal_loops[(namespace, name)]
        reason = getattr(stopped, "reason", None)
        if reason is not None and kopf.DaemonStoppingReason.RESOURCE_DELETED in reason:
            metrics.forget(namespace, name)
        log.info("%s: heal loop stopped (%s)", loop.who, reason)


@kopf.on.cleanup()
async def close_pod_clients(memo: kopf.Memo, **_: Any) -> None:
    """Close the heal loops' shared HTTP clients at the operator's exit."""
    ctx = memo.get("context")
    if ctx is not None and ctx.pod_http is not None:
        await ctx.pod_http.aclose()
