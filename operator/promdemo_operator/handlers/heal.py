"""kopf adapter of auto-heal: one heal loop (a kopf daemon) per PromDemo with autoHeal on.

The decisions and the HTTP work are the core's (`promdemo_operator.heal`); this
module only connects them to Kubernetes:

- the daemon runs while `spec.autoHeal.enabled` is true (kopf's `when=` filter
  stops it when it turns false or the spec becomes invalid, and when the
  PromDemo is deleted), one check every `spec.autoHeal.interval`;
- each check lists the Deployment's pods by its selector, keeps the Ready ones,
  reaches them by pod IP or through the API server's pod proxy
  (`spec.autoHeal.podAccess`), reads the reset token from `<name>-reset-token`;
- each reset: an Event `InventoryReset` on the PromDemo, and a status patch of
  only this module's keys: `inventory`, `lowestInventory`, `healCount`,
  `lastHeal` (which also keeps `recentResets`, the last reset time of each pod
  still in cooldown, so a restarted operator does not reset a pod twice within
  the cooldown);
- in `source: alertmanager` mode the loop keeps reading (status stays current)
  but does not reset: the webhook (`handlers/webhook.py`) asks `heal_alert` to.

No fault ends a loop: API errors and pod errors are counted
(`promdemo_heal_api_errors_total`, `promdemo_heal_scrape_failures_total`, ...),
logged, and the next interval tries again.

Stopping does not wait for a check: when kopf stops the daemon (operator exit,
PromDemo deleted, autoHeal off) a check in progress is cancelled at once, and a
Kubernetes API call it was waiting for (a thread: the client is synchronous) is
abandoned rather than awaited, so an API server that no longer answers cannot
hold up the operator's shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import ssl
import time
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import kopf

from promdemo_operator import render
from promdemo_operator import spec as spec_mod
from promdemo_operator.handlers.common import kube_from_memo, plain
from promdemo_operator.heal.access import API_PROXY, resolve_access
from promdemo_operator.heal.alertmanager import AlertRef, host_port
from promdemo_operator.heal.engine import CheckResult, HealEngine, PodTarget, ResetDone
from promdemo_operator.heal.metrics import HealMetrics, default_metrics
from promdemo_operator.heal.pods import pod_targets
from promdemo_operator.heal.policy import HealPolicy, PolicyConfig
from promdemo_operator.kube import Kube, KubeError
from promdemo_operator.resource import (
    GROUP,
    PLURAL,
    VERSION,
    label_selector,
    secret_name,
    selector_for,
)
from promdemo_operator.timefmt import parse_rfc3339, rfc3339

T = TypeVar("T")


log = logging.getLogger("promdemo.heal")
# httpx logs every request at INFO: one line per pod per interval would drown the heal log.
logging.getLogger("httpx").setLevel(logging.WARNING)

#: The running loops, by (namespace, name): the webhook finds its target here.
LOOPS: dict[tuple[str, str], HealLoop] = {}

POD_TIMEOUT_SECONDS = 2.0
INVALID_SPEC_RETRY_SECONDS = 5.0
TOKEN_REFRESH_SECONDS = 60.0
#: kopf cancels the daemon this long after asking it to stop; the loop itself stops a
#: check at once (`_unless_stopped`), so this is only a backstop.
CANCELLATION_TIMEOUT_SECONDS = 2.0


def _number(value: float | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def parse_auto_heal(spec: Any) -> spec_mod.AutoHealSpec:
    """`spec.autoHeal`, defaulted and validated (raises `SpecError`)."""
    return spec_mod.parse_spec(plain(spec or {})).auto_heal


def heal_wanted(spec: Any, **_: Any) -> bool:
    """kopf `when=` filter: run the loop only for a valid spec with autoHeal enabled."""
    try:
        return parse_auto_heal(spec).enabled
    except spec_mod.SpecError:
        return False


def _proxy_client(kube: Kube, timeout: float) -> tuple[httpx.AsyncClient, str]:
    """An HTTP client carrying the API server's credentials, and the API server's URL."""
    cfg = kube.api.configuration
    if cfg.refresh_api_key_hook is not None:
        cfg.refresh_api_key_hook(cfg)
    headers = {}
    auth = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
        "authorization"
    )
    if auth:
        headers["Authorization"] = auth if " " in auth else f"Bearer {auth}"
    verify: ssl.SSLContext | bool = False
    if cfg.verify_ssl:
        verify = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
    if cfg.cert_file:
        if not isinstance(verify, ssl.SSLContext):
            verify = ssl.create_default_context()
            verify.check_hostname = False
            verify.verify_mode = ssl.CERT_NONE
        verify.load_cert_chain(cfg.cert_file, cfg.key_file)
    client = httpx.AsyncClient(headers=headers, verify=verify, timeout=httpx.Timeout(timeout))
    return client, cfg.host


class HealLoop:
    """The heal state of one PromDemo: its engine, policy, pods, counters."""

    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        kube: Kube,
        metrics: HealMetrics | None = None,
        clock: Any = time.time,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.kube = kube
        self.metrics = metrics
        self.clock = clock
        self.policy = HealPolicy()
        self.settings: spec_mod.AutoHealSpec | None = None
        self.body: Any = None
        self.pods: list[PodTarget] = []
        self.heal_count = 0
        self.last_heal: dict[str, Any] | None = None
        self._access: str | None = None
        self._engine: HealEngine | None = None
        self._client: httpx.AsyncClient | None = None
        self._token: str | None = None
        self._token_read_at = 0.0
        self._selector: dict[str, str] = selector_for(name)
        self._status_lock = asyncio.Lock()
        self._written: dict[str, Any] = {}
        self._who = f"{namespace}/{name}"
        # The kopf daemon's context: where kopf.event finds its queue.
        self.context = contextvars.copy_context()

    # -- state across restarts --------------------------------------------------------

    def restore(self, status: Mapping[str, Any] | None) -> None:
        """Pick up healCount and the cooldowns a previous operator left in status."""
        status = status or {}
        try:
            self.heal_count = int(status.get("healCount") or 0)
        except (TypeError, ValueError):
            self.heal_count = 0
        last = status.get("lastHeal")
        if isinstance(last, Mapping):
            self.last_heal = {k: v for k, v in last.items() if k != "recentResets"}
            saved: dict[str, float] = {}
            recent = last.get("recentResets")
            if isinstance(recent, Mapping):
                for pod, when in recent.items():
                    epoch = parse_rfc3339(when)
                    if epoch is not None:
                        saved[str(pod)] = epoch
            pod, when = last.get("pod"), parse_rfc3339(last.get("time"))
            if isinstance(pod, str) and when is not None:
                saved[pod] = max(when, saved.get(pod, when))
            self.policy.import_state(saved)
            if saved:
                log.info(
                    "%s: restored last resets %s (cooldown continues after a restart)",
                    self._who,
                    ", ".join(f"{p} at {rfc3339(t)}" for p, t in sorted(saved.items())),
                )

    # -- one check ------------------------------------------------------------------------

    def configure(self, settings: spec_mod.AutoHealSpec) -> None:
        self.settings = settings
        self.policy.update_config(PolicyConfig.from_auto_heal(settings))

    async def _ensure_engine(self) -> HealEngine:
        assert self.settings is not None
        access = resolve_access(self.settings.pod_access)
        if self._engine is not None and access == self._access:
            return self._engine
        await self._close_engine()
        api_server = None
        if access == API_PROXY:
            self._client, api_server = _proxy_client(self.kube, POD_TIMEOUT_SECONDS)
        else:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(POD_TIMEOUT_SECONDS))
        self._api_server = api_server
        self._access = access
        self._engine = HealEngine(
            self.policy,
            client=self._client,
            token=self._token,
            timeout=POD_TIMEOUT_SECONDS,
            namespace=self.namespace,
            promdemo=self.name,
            metrics=self.metrics,
            clock=self.clock,
            proxy_token_header=access == API_PROXY,
        )
        log.info("%s: heal loop reaches pods by %s", self._who, access)
        return self._engine

    async def _close_engine(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        self._client = None
        self._engine = None

    async def aclose(self) -> None:
        await self._close_engine()

    async def _api(self, operation: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """One Kubernetes API call in a thread; a failure is counted, logged and re-raised."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except KubeError as e:
            if self.metrics is not None:
                self.metrics.api_error(self.namespace, self.name, operation)
            log.warning("%s: Kubernetes API error in %s: %s", self._who, operation, e)
            raise

    async def _refresh_token(self, engine: HealEngine, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and self._token and now - self._token_read_at < TOKEN_REFRESH_SECONDS:
            return
        try:
            token = await self._api(
                "read_secret",
                self.kube.read_secret_value,
                self.namespace,
                secret_name(self.name),
                render.RESET_TOKEN_KEY,
            )
        except KubeError:
            return
        self._token_read_at = now
        if token is None and self._token is None:
            log.warning(
                "%s: Secret %s has no %r yet; resets are sent without a token",
                self._who,
                secret_name(self.name),
                render.RESET_TOKEN_KEY,
            )
        self._token = token
        engine.token = token

    async def refresh_pods(self) -> list[PodTarget] | None:
        """List the Deployment's pods by its selector; None when the API failed."""
        await self._ensure_engine()
        try:
            deployment = await self._api(
                "list_pods", self.kube.get, "Deployment", self.namespace, self.name
            )
        except KubeError:
            deployment = None
        match = ((deployment or {}).get("spec") or {}).get("selector", {}).get("matchLabels")
        if isinstance(match, Mapping) and match:
            self._selector = {str(k): str(v) for k, v in match.items()}
        selector = label_selector(self._selector)
        path = f"/api/v1/namespaces/{quote(self.namespace)}/pods?labelSelector={quote(selector)}"
        try:
            listing = await self._api("list_pods", self.kube.request, "GET", path)
        except KubeError:
            return None
        assert self._access is not None
        self.pods = pod_targets(
            listing.get("items") or [],
            selector=self._selector,
            access=self._access,
            namespace=self.namespace,
            api_server=getattr(self, "_api_server", None),
        )
        return self.pods

    async def tick(self, body: Any) -> CheckResult | None:
        """One check: list pods, read them, reset due ones (direct mode), write status."""
        assert self.settings is not None
        self.body = body
        engine = await self._ensure_engine()
        await self._refresh_token(engine)
        pods = await self.refresh_pods()
        if pods is None:
            return None
        direct = self.settings.source == "direct"
        result = await engine.check(pods, reset=direct)
        if any(f.stage == "reset" and f.reason == "http_status" for f in result.failures):
            await self._refresh_token(engine, force=True)
        await self._after_resets(result.resets)
        await self._write_status(result.inventory, bool(result.resets))
        return result

    # -- the webhook's entry -------------------------------------------------------------

    def find_pod(self, ref: AlertRef) -> PodTarget | None:
        for pod in self.pods:
            if ref.pod and pod.name == ref.pod:
                return pod
            if not ref.pod and ref.instance and host_port(pod.base_url) == ref.instance:
                return pod
        return None

    async def heal_alert(self, ref: AlertRef) -> str:
        """Re-check and maybe reset the pod of one firing alert; returns the outcome."""
        if self.settings is None or self.settings.source != "alertmanager":
            return "ignored"
        target = self.find_pod(ref)
        if target is None:
            await self.refresh_pods()
            target = self.find_pod(ref)
        if target is None or not target.ready or not target.base_url:
            return "unknown_target"
        engine = await self._ensure_engine()
        if engine.token is None:
            await self._refresh_token(engine, force=True)
        outcome = await engine.heal(target, first_seen=ref.starts_at, source="alertmanager")
        if outcome.failure is not None and outcome.failure.reason == "http_status":
            await self._refresh_token(engine, force=True)
        if outcome.reset is not None:
            await self._after_resets([outcome.reset])
            inventory = {p.name: v for p, v in self._last_inventory_items()}
            if outcome.reset.after is not None:
                inventory[target.name] = outcome.reset.after
            await self._write_status(inventory, True)
        return outcome.outcome

    def _last_inventory_items(self) -> list[tuple[PodTarget, float]]:
        inv = self._written.get("inventory") or {}
        return [(p, inv[p.name]) for p in self.pods if p.name in inv]

    # -- visibility ----------------------------------------------------------------------

    async def _after_resets(self, resets: list[ResetDone]) -> None:
        for done in resets:
            self.heal_count += 1
            self.last_heal = {
                "pod": done.pod,
                "before": _number(done.before),
                "after": _number(done.after),
                "time": rfc3339(done.time, milliseconds=True),
            }
            after = "unconfirmed" if done.after is None else _number(done.after)
            message = (
                f"Reset pod {done.pod}: inventory {_number(done.before)} -> {after}"
                f" ({done.source}"
                + (f", {done.latency:.1f}s after it was first seen below" if done.latency else "")
                + ")"
            )
            if self.body is not None:
                try:
                    # kopf.event needs the operator's context (its event queue lives in a
                    # contextvar): the webhook's request tasks run outside it.
                    self.context.run(
                        kopf.event,
                        self.body,
                        type="Normal",
                        reason="InventoryReset",
                        message=message,
                    )
                except Exception as e:
                    if self.metrics is not None:
                        self.metrics.api_error(self.namespace, self.name, "post_event")
                    log.warning("%s: could not post the InventoryReset event: %s", self._who, e)

    async def _write_status(self, inventory: Mapping[str, float], force: bool) -> None:
        """Merge-patch status with only the heal keys, when something changed."""
        now = self.clock()
        wanted: dict[str, Any] = {
            "inventory": {k: _number(v) for k, v in sorted(inventory.items())},
            "lowestInventory": _number(min(inventory.values())) if inventory else None,
            "healCount": self.heal_count,
        }
        if self.last_heal is not None:
            recent = {
                p: rfc3339(t, milliseconds=True) for p, t in self.policy.export_state(now).items()
            }
            wanted["lastHeal"] = {**self.last_heal, "recentResets": recent}
        if not force and wanted == self._written:
            return
        patch: dict[str, Any] = dict(wanted)
        # A merge patch keeps map keys it does not mention: gone pods are set to null.
        old_inventory = self._written.get("inventory") or {}
        stale = {k: None for k in old_inventory if k not in wanted["inventory"]}
        patch["inventory"] = {**stale, **wanted["inventory"]}
        if "lastHeal" in wanted:
            old_recent = (self._written.get("lastHeal") or {}).get("recentResets") or {}
            stale_recent = {
                k: None for k in old_recent if k not in wanted["lastHeal"]["recentResets"]
            }
            patch["lastHeal"] = {
                **wanted["lastHeal"],
                "recentResets": {**stale_recent, **wanted["lastHeal"]["recentResets"]},
            }
        async with self._status_lock:
            try:
                await self._api(
                    "patch_status",
                    self.kube.merge_patch,
                    "PromDemo",
                    self.namespace,
                    self.name,
                    {"status": patch},
                    subresource="status",
                )
            except KubeError:
                return
            self._written = wanted


async def _stop_requested(stopped: kopf.DaemonStopped) -> None:
    await stopped.wait()


async def _unless_stopped(stopped: kopf.DaemonStopped, work: Coroutine[Any, Any, T]) -> T | None:
    """`work`'s result, or None when the daemon was asked to stop first (`work` cancelled).

    kopf sets `stopped` and waits `cancellation_timeout` before it cancels the daemon;
    a check blocked on an unanswered API call would use all of it. Cancelling here
    abandons the call's thread at once (`asyncio.to_thread` cannot interrupt it).
    """
    task = asyncio.ensure_future(work)
    halt = asyncio.ensure_future(_stop_requested(stopped))
    try:
        await asyncio.wait({task, halt}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        halt.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return None
    return task.result()


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
    **_: Any,
) -> None:
    """The heal loop of one PromDemo; returns when it is deleted or autoHeal is switched off."""
    metrics = default_metrics()
    loop = HealLoop(namespace, name, kube=kube_from_memo(memo), metrics=metrics)
    loop.restore(body.get("status"))
    LOOPS[(namespace, name)] = loop
    started = time.monotonic()
    next_at = started
    log.info("%s: heal loop started", loop._who)
    try:
        while not stopped:
            try:
                settings = parse_auto_heal(body.get("spec"))
            except spec_mod.SpecError as e:
                log.warning("%s: invalid spec, not healing: %s", loop._who, e)
                await stopped.wait(INVALID_SPEC_RETRY_SECONDS)
                continue
            loop.configure(settings)
            try:
                await _unless_stopped(stopped, loop.tick(body))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if metrics is not None:
                    metrics.api_error(namespace, name, "other")
                log.exception("%s: heal check failed: %s", loop._who, e)
            if stopped:
                break
            next_at += settings.interval_seconds
            delay = next_at - time.monotonic()
            if delay <= 0:  # a check longer than the interval: start the next one now
                next_at = time.monotonic()
                continue
            await stopped.wait(delay)
    finally:
        if LOOPS.get((namespace, name)) is loop:
            del LOOPS[(namespace, name)]
        await loop.aclose()
        reason = getattr(stopped, "reason", None)
        if reason is not None and kopf.DaemonStoppingReason.RESOURCE_DELETED in reason:
            metrics.forget(namespace, name)
        log.info("%s: heal loop stopped (%s)", loop._who, reason)
