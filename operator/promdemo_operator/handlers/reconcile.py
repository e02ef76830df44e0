"""kopf adapter: reconcile a PromDemo into its children, and report it in status.

One function, `reconcile`, does the work; kopf calls it on create, update and
resume (operator restart), and a slow timer calls it again (`--resync-seconds`,
30 s by default) so that a deleted child comes back, Deployment readiness
reaches the status, and monitoring CRDs installed later get their objects.

The steps, all idempotent:

1. `spec.apply_defaults` + `spec.parse_spec`: a spec the CRD schema could not
   reject (e.g. dependencyMinSeconds > dependencyMaxSeconds) sets
   `SpecValid=False` with reason `InvalidSpec`; nothing is retried until the spec
   changes (the resync only re-checks it), and other PromDemos are unaffected.
2. The reset token comes from the existing Secret, or is generated once.
3. `render.render_children` builds the children; each gets an owner reference
   and is applied with `kube.Kube.apply` (create, or patch when it drifted,
   never delete and re-create). ServiceMonitor/PrometheusRule are skipped
   when monitoring.coreos.com/v1 is not served (`MonitoringReady=False`), and a
   monitoring object this PromDemo owns is deleted when the spec switches it off.
4. Status: only this module's keys are patched (observedGeneration, replicas,
   readyReplicas, selector, conditions Available/MonitoringReady/SpecValid);
   what the heal loop writes (inventory, healCount, lastHeal, lowestInventory)
   is never touched, and conditions of other types are kept as they are.

Kubernetes Events are posted for what changed (children created, updated or
deleted; the spec becoming invalid; monitoring CRDs missing or appearing), not
for a resync that found nothing to do.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import kopf

from promdemo_operator import render
from promdemo_operator import spec as spec_mod
from promdemo_operator.handlers.common import kube_from_memo, plain
from promdemo_operator.kube import MONITORING_PLURALS, Kube, KubeError
from promdemo_operator.opmetrics import metrics
from promdemo_operator.resource import GROUP, PLURAL, VERSION, secret_name, selector_string
from promdemo_operator.timefmt import rfc3339

OWN_CONDITIONS = ("Available", "MonitoringReady", "SpecValid")

#: How often every PromDemo is reconciled again without an event (seconds).
#: `promdemo operator --resync-seconds` sets it before the handlers are imported.
RESYNC_SECONDS = float(os.environ.get("PROMDEMO_RESYNC_SECONDS", "30"))

#: Retry delays after a failed API call: soon for transient trouble, slowly otherwise.
TRANSIENT_RETRY_SECONDS = 10.0
PERMANENT_RETRY_SECONDS = 120.0


# -- plain helpers (no kopf) -----------------------------------------------------------


def condition(type_: str, ok: bool, reason: str, message: str) -> dict[str, str]:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
    }


def find_condition(conditions: Any, type_: str) -> Mapping[str, Any] | None:
    for c in conditions or []:
        if isinstance(c, Mapping) and c.get("type") == type_:
            return c
    return None


def merge_conditions(
    existing: Any, updates: list[dict[str, str]], *, now: str
) -> list[dict[str, Any]]:
    """Existing conditions with `updates` applied by type.

    `lastTransitionTime` changes only when a condition's status changes; the
    order is stable (existing ones first, new types appended); conditions of
    types not in `updates` (someone else's) are kept untouched.
    """
    by_type = {u["type"]: u for u in updates}
    result: list[dict[str, Any]] = []
    seen: set[str] = set()
    for old in existing or []:
        if not isinstance(old, Mapping):
            continue
        type_ = old.get("type")
        if type_ not in by_type:
            result.append(dict(old))
            continue
        seen.add(type_)
        new = dict(by_type[type_])
        same = old.get("status") == new["status"] and old.get("lastTransitionTime")
        new["lastTransitionTime"] = old["lastTransitionTime"] if same else now
        result.append(new)
    for u in updates:
        if u["type"] not in seen:
            result.append({**u, "lastTransitionTime": now})
    return result


def available_condition(desired: int, ready: int) -> dict[str, str]:
    if desired == 0:
        return condition("Available", True, "ScaledToZero", "spec.replicas is 0")
    if ready >= desired:
        return condition("Available", True, "ReplicasReady", f"{ready}/{desired} replicas ready")
    return condition("Available", False, "ReplicasNotReady", f"{ready}/{desired} replicas ready")


def monitoring_condition(wanted: set[str], missing: list[str]) -> dict[str, str]:
    if not wanted:
        return condition(
            "MonitoringReady", True, "MonitoringDisabled",
            "ServiceMonitor and PrometheusRule are switched off in spec.monitoring",
        )  # fmt: skip
    if missing:
        plurals = ", ".join(MONITORING_PLURALS[k] for k in missing)
        return condition(
            "MonitoringReady", False, "MonitoringCRDsMissing",
            f"the API server does not serve monitoring.coreos.com/v1 {plurals} (install the "
            "Prometheus Operator CRDs); the app is deployed without them and they are created "
            "once the CRDs exist",
        )  # fmt: skip
    return condition(
        "MonitoringReady",
        True,
        "MonitoringObjectsApplied",
        f"{' and '.join(sorted(wanted))} applied",
    )


def status_changes(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of `wanted` whose value differs from `current` (what to patch)."""
    return {k: v for k, v in wanted.items() if current.get(k) != v}


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(r, Mapping) and r.get("uid") == uid for r in refs)


# -- the reconcile ---------------------------------------------------------------------


class _Events:
    """Kubernetes Events on the PromDemo (kopf posts them in the background)."""

    def __init__(self, body: kopf.Body) -> None:
        self.body = body

    def normal(self, reason: str, message: str) -> None:
        kopf.event(self.body, type="Normal", reason=reason, message=message)

    def warning(self, reason: str, message: str) -> None:
        kopf.event(self.body, type="Warning", reason=reason, message=message)


_ACTION_EVENTS = {"created": "Created", "patched": "Updated"}


def reconcile(
    body: kopf.Body, patch: kopf.Patch, memo: Any, logger: logging.Logger | logging.LoggerAdapter
) -> str:
    """Bring one PromDemo's children and status to the desired state; returns the result.

    Serialized per PromDemo (the resync timer runs beside the event handlers).
    Raises `kopf.TemporaryError` when an API call failed (retried later).
    """
    lock = memo.setdefault("reconcile_lock", threading.Lock())
    m = metrics()
    started = time.perf_counter()
    with lock:
        try:
            result = _reconcile(body, patch, kube_from_memo(memo), _Events(body), logger)
        except KubeError as e:
            m.reconciles.labels(result="error").inc()
            m.reconcile_errors.inc()
            delay = TRANSIENT_RETRY_SECONDS if e.transient else PERMANENT_RETRY_SECONDS
            if not e.transient:
                _Events(body).warning("ReconcileFailed", f"{e}")
            raise kopf.TemporaryError(f"reconcile failed: {e}", delay=delay) from e
        except Exception:
            m.reconciles.labels(result="error").inc()
            m.reconcile_errors.inc()
            raise
        finally:
            m.reconcile_duration.observe(time.perf_counter() - started)
    m.reconciles.labels(result=result).inc()
    return result


def _reconcile(
    body: kopf.Body,
    patch: kopf.Patch,
    kube: Kube,
    events: _Events,
    logger: logging.Logger | logging.LoggerAdapter,
) -> str:
    raw = plain(body)
    meta = raw.get("metadata", {})
    name, namespace, uid = meta["name"], meta.get("namespace"), meta.get("uid", "")
    status = raw.get("status") or {}
    conditions = status.get("conditions") or []
    generation = meta.get("generation")
    now = rfc3339()

    # 1. The spec: defaults and the checks the schema cannot express.
    try:
        spec = spec_mod.parse_spec(raw.get("spec") or {})
        children = render.render_children(
            name,
            namespace,
            spec,
            token=_token(kube, namespace, name),
            owner=render.owner_reference(raw),
        )
    except spec_mod.SpecError as e:
        message = getattr(e, "message", None) or str(e)
        old = find_condition(conditions, "SpecValid")
        if old is None or old.get("status") != "False" or old.get("message") != message:
            events.warning("InvalidSpec", message)
            logger.warning("invalid spec: %s", message)
        wanted = {
            "observedGeneration": generation,
            "conditions": merge_conditions(
                conditions, [condition("SpecValid", False, "InvalidSpec", message)], now=now
            ),
        }
        _patch_status(patch, status, wanted)
        return "invalid_spec"

    # 2. The children, in render order (the Secret before the Deployment that reads it).
    m = metrics()
    support = kube.monitoring_support()
    wanted_monitoring = {c["kind"] for c in children if c["kind"] in MONITORING_PLURALS}
    missing = sorted(wanted_monitoring - support.kinds)
    m.monitoring_crds.set(1 if support.complete else 0)
    deployment: dict[str, Any] | None = None
    desired_replicas = 0
    for child in children:
        kind = child["kind"]
        if kind in missing:
            continue
        child.setdefault("metadata", {}).setdefault("namespace", namespace)
        kopf.append_owner_reference(child, owner=body)
        result = kube.apply(child)
        m.children.labels(kind=kind, action=result.action).inc()
        if result.action in _ACTION_EVENTS:
            verb = _ACTION_EVENTS[result.action]
            events.normal(verb, f"{verb} {kind} {result.name}")
            logger.info("%s %s %s", result.action, kind, result.name)
        if kind == "Deployment":
            deployment = result.object
            desired_replicas = int((child.get("spec") or {}).get("replicas", 1) or 0)
    for kind in sorted(set(MONITORING_PLURALS) - wanted_monitoring):
        if kind in support.kinds:
            _delete_if_owned(kube, kind, namespace, name, uid, events)

    # 3. Status: only our keys.
    dstatus = (deployment or {}).get("status") or {}
    ready = int(dstatus.get("readyReplicas") or 0)
    old_monitoring = find_condition(conditions, "MonitoringReady")
    new_monitoring = monitoring_condition(wanted_monitoring, missing)
    if old_monitoring is None or old_monitoring.get("status") != new_monitoring["status"]:
        if missing:
            events.warning("MonitoringCRDsMissing", new_monitoring["message"])
        elif old_monitoring is not None:
            events.normal(new_monitoring["reason"], new_monitoring["message"])
    wanted = {
        "observedGeneration": generation,
        "replicas": int(dstatus.get("replicas") or 0),
        "readyReplicas": ready,
        "selector": selector_string(name),
        "conditions": merge_conditions(
            conditions,
            [
                available_condition(desired_replicas, ready),
                new_monitoring,
                condition("SpecValid", True, "SpecAccepted", "the spec is valid"),
            ],
            now=now,
        ),
    }
    _patch_status(patch, status, wanted)
    return "success"


def _token(kube: Kube, namespace: str, name: str) -> str:
    """The reset token: the one in the existing Secret, or a new one (created once)."""
    secret = secret_name(name)
    return (
        kube.read_secret_value(namespace, secret, render.RESET_TOKEN_KEY)
        or render.new_reset_token()
    )


def _delete_if_owned(
    kube: Kube, kind: str, namespace: str, name: str, uid: str, events: _Events
) -> None:
    """Delete a monitoring object the spec switched off, if this PromDemo owns it."""
    obj = kube.get(kind, namespace, name)
    if obj is not None and owned_by(obj, uid) and kube.delete(kind, namespace, name):
        metrics().children.labels(kind=kind, action="deleted").inc()
        events.normal("Deleted", f"Deleted {kind} {name} (switched off in spec.monitoring)")


def _patch_status(patch: kopf.Patch, current: Mapping[str, Any], wanted: dict[str, Any]) -> None:
    # Unchanged conditions keep their lastTransitionTime, so equal means unchanged, and a
    # resync that found nothing new writes nothing.
    for key, value in status_changes(current, wanted).items():
        patch.status[key] = value


# -- kopf registration -------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile_on_change(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: logging.Logger, **_: Any
) -> None:
    """A PromDemo appeared, changed, or the operator restarted: reconcile it."""
    reconcile(body, patch, memo, logger)


@kopf.timer(GROUP, VERSION, PLURAL, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def resync(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: logging.Logger, **_: Any
) -> None:
    """Reconcile again: deleted children come back, readiness and new CRDs are seen."""
    reconcile(body, patch, memo, logger)
