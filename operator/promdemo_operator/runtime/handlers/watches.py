"""kopf adapter: what the operator watches, the in-memory indexes fed by the watches,
and the events that wake a PromDemo's reconcile.

Watched (each one list + watch stream per resource, shared by every PromDemo):

- the children (Secrets, Deployments, Services, ServiceMonitors, PrometheusRules)
  and the app's pods, all filtered by the API server with the label selector
  `app.kubernetes.io/name=promdemo` that every child and pod carries, so other
  objects in the cluster never reach the operator;
- the monitoring CRDs (`servicemonitors/prometheusrules/prometheuses.monitoring.coreos.com`);
- prometheus-operator's `Prometheus` objects (all of them: which one selects a
  PromDemo is the question) and the namespaces (their labels, which namespace
  selectors match).

Indexes (kopf keeps them current; a handler reads memory, never the API; kopf
fills them completely before any handler runs, also after a restart):

- `promdemo_children`: (kind, namespace, name) → `watched.ChildRecord`;
- `promdemo_pods`: (namespace, PromDemo name) → `heal.pods.PodRecord` per pod;
- `promdemo_prometheuses`: (namespace, name) → `promstatus.prometheus_record` (the
  selectors and the fields of the service proxy path, nothing else);
- `promdemo_namespaces`: name → labels.

Events that wake a reconcile (the reconcile loop debounces them):

- any change to, or deletion of, a child → its controlling PromDemo (drift repair,
  and a Deployment's readiness reaching the status);
- a spec change of a PromDemo (generation ahead of `status.observedGeneration`);
- a monitoring CRD added or removed → every PromDemo (discovery is read again);
- a Prometheus object added, deleted, or changed in what its record holds → every
  PromDemo (PrometheusSelected is decided again; prometheus-operator's frequent
  status updates of the object change nothing and wake nothing);
- a namespace's labels changed → the PromDemos of that namespace.

Objects the watches list at start only fill the indexes, which kopf completes before
any handler runs: a restart wakes nothing. A PromDemo listed again (its watch broke
off with 410 Gone) wakes its reconcile, which then reads every child from the API:
kopf's indexes never drop an object that vanished while a watch was away. A child
kind's watch may break off alone (its resourceVersion compacted, the PromDemos'
not): a child seen before and listed again wakes every PromDemo the same way, once
per re-list (`OperatorContext.child_watch_relisted`). A re-list that delivers no
object at all (the kind's last child deleted in the gap) cannot be seen here; the
resync catches it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, cast

import kopf

from promdemo_operator.core.names import (
    APP_NAME,
    GROUP,
    MONITORING_GROUP,
    MONITORING_VERSION,
    PLURAL,
    VERSION,
    secret_name,
)
from promdemo_operator.core.render import RESET_TOKEN_KEY
from promdemo_operator.core.watched import (
    CHILD_KINDS,
    ChildRecord,
    child_record,
    controller_promdemo,
)
from promdemo_operator.heal.pods import PodRecord, pod_record
from promdemo_operator.prometheus.status import prometheus_record
from promdemo_operator.runtime.handlers.context import context_of

APP_LABELS = {"app.kubernetes.io/name": APP_NAME}
APP_SELECTOR = f"app.kubernetes.io/name={APP_NAME}"
INSTANCE_LABEL = "app.kubernetes.io/instance"

CHILD_RESOURCES = (
    ("", "v1", "secrets"),
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    (MONITORING_GROUP, MONITORING_VERSION, "servicemonitors"),
    (MONITORING_GROUP, MONITORING_VERSION, "prometheusrules"),
)
POD_RESOURCE = ("", "v1", "pods")
PROMETHEUS_RESOURCE = (MONITORING_GROUP, MONITORING_VERSION, "prometheuses")
NAMESPACE_RESOURCE = ("", "v1", "namespaces")
MONITORING_CRDS = frozenset(
    f"{plural}.{MONITORING_GROUP}" for _, _, plural in (*CHILD_RESOURCES[3:], PROMETHEUS_RESOURCE)
)

CHILDREN_INDEX = "promdemo_children"
PODS_INDEX = "promdemo_pods"
PROMETHEUS_INDEX = "promdemo_prometheuses"
NAMESPACES_INDEX = "promdemo_namespaces"


@kopf.on.startup()
async def restrict_watches(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Let the API server filter the children's and pods' watches by the app's label."""
    for resource in (*CHILD_RESOURCES, POD_RESOURCE):
        settings.watching.label_selectors[resource] = APP_SELECTOR


class GenerationEssence(kopf.AnnotationsDiffBaseStorage):
    """kopf's "essence" of an object cut down to its `metadata.generation`.

    kopf builds an essence from every event of every object it handles (a deep copy of
    the body less system fields, then another copy less its progress marks) to diff it
    with the last handled one. Only change-detecting handlers (`on.create`, `on.update`,
    `on.field`) use that diff, and the operator has none: its daemons use it only to
    reset idle timers they do not have. What the operator reacts to comes through its
    own `on.event` handlers and indexes. Without this, every Deployment, Pod and child
    event was deep-copied twice with its managedFields and status.
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        if extra_fields:  # a handler asked for fields: kopf's full essence
            return super().build(body=body, extra_fields=extra_fields)
        generation = (body.get("metadata") or {}).get("generation")
        return cast(kopf.BodyEssence, {"metadata": {"generation": generation}})


class Watched:
    """Read access to the indexes, as the reconcile and heal loops use them."""

    def __init__(
        self,
        children: Mapping[Any, Any],
        pods: Mapping[Any, Any],
        prometheuses: Mapping[Any, Any] | None = None,
        namespaces: Mapping[Any, Any] | None = None,
    ) -> None:
        self._children = children
        self._pods = pods
        self._prometheuses = prometheuses if prometheuses is not None else {}
        self._namespaces = namespaces if namespaces is not None else {}

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> Watched:
        """From a kopf handler's kwargs (kopf passes each index under its name)."""
        return cls(
            kwargs[CHILDREN_INDEX],
            kwargs[PODS_INDEX],
            kwargs.get(PROMETHEUS_INDEX),
            kwargs.get(NAMESPACES_INDEX),
        )

    def child(self, kind: str, namespace: str, name: str) -> ChildRecord | None:
        store = self._children.get((kind, namespace, name))
        return next(iter(store), None) if store else None

    def token(self, namespace: str, promdemo: str) -> str | None:
        """The reset token in the PromDemo's Secret, as last watched; None when absent."""
        record = self.child("Secret", namespace, secret_name(promdemo))
        return record.secret_value(RESET_TOKEN_KEY) if record is not None else None

    def pods(self, namespace: str, promdemo: str) -> list[PodRecord]:
        """The PromDemo's pods (by its selector's instance label), as last watched."""
        store = self._pods.get((namespace, promdemo))
        return list(store) if store else []

    def prometheuses(self) -> list[dict[str, Any]]:
        """Every watched Prometheus object's record, by namespace and name."""
        records = [next(iter(store)) for store in self._prometheuses.values() if store]
        return sorted(records, key=lambda r: (r["metadata"]["namespace"], r["metadata"]["name"]))

    def namespace_labels(self, namespace: str) -> dict[str, dict[str, str]]:
        """{namespace: its labels}, as `selection.check` takes them ({} when not watched)."""
        store = self._namespaces.get(namespace)
        return {namespace: dict(next(iter(store)))} if store else {}


# -- indexes ------------------------------------------------------------------------------


async def index_child(body: kopf.Body, resource: kopf.Resource, **_: Any) -> dict[Any, Any]:
    kind = CHILD_KINDS[resource.plural]
    record = child_record(kind, body)
    return {(kind, record.namespace, record.name): record}


for _resource in CHILD_RESOURCES:
    kopf.index(*_resource, id=CHILDREN_INDEX, labels=APP_LABELS)(index_child)


@kopf.index(*PROMETHEUS_RESOURCE, id=PROMETHEUS_INDEX)
async def index_prometheus(body: kopf.Body, namespace: str, name: str, **_: Any) -> Any:
    return {(namespace, name): prometheus_record(body)}


@kopf.index(*NAMESPACE_RESOURCE, id=NAMESPACES_INDEX)
async def index_namespace(name: str, labels: kopf.Labels, **_: Any) -> Any:
    return {name: {str(k): str(v) for k, v in labels.items()}}


@kopf.index(*POD_RESOURCE, id=PODS_INDEX, labels=APP_LABELS)
async def index_pod(body: kopf.Body, namespace: str, labels: kopf.Labels, **_: Any) -> Any:
    instance = labels.get(INSTANCE_LABEL)
    if not instance:
        return None
    return {(namespace, instance): pod_record(body)}


# -- events that wake a reconcile ----------------------------------------------------------


async def child_changed(
    event: kopf.RawEvent, body: kopf.Body, resource: kopf.Resource, memo: kopf.Memo, **_: Any
) -> None:
    """A child changed or went away: reconcile the PromDemo that controls it."""
    owner = controller_promdemo(body)
    if owner is None:
        return
    ctx = context_of(memo)
    meta = body.get("metadata") or {}
    key = (CHILD_KINDS[resource.plural], str(meta.get("namespace")), str(meta.get("name")))
    version = str(meta.get("resourceVersion") or "")
    written = ctx.unseen_writes.get(key)
    if written is not None and (event.get("type") == "DELETED" or version != written[0]):
        del ctx.unseen_writes[key]  # the watch has caught up with the operator's own write
    if event.get("type") is None and key in ctx.seen_versions:
        # A listing of a child seen before: this kind's watch broke off (410 Gone) and
        # listed again, maybe alone (the PromDemo watch kept going): what vanished in
        # its gap is still indexed, so every PromDemo reads its children from the API.
        ctx.child_watch_relisted(key[0], time.monotonic())
    if event.get("type") == "DELETED":
        ctx.seen_versions.pop(key, None)
    elif ctx.seen_versions.get(key) == version:
        return  # the same version again (a watch re-listed): nothing happened
    else:
        ctx.seen_versions[key] = version
    ctx.reconcilers.poke((key[1], owner[0]))


for _group, _version, _plural in CHILD_RESOURCES:
    kopf.on.event(_group, _version, _plural, id=f"watch-{_plural}", labels=APP_LABELS)(
        child_changed
    )


def _spec_ahead(body: kopf.Body, **_: Any) -> bool:
    generation = (body.get("metadata") or {}).get("generation")
    return generation != (body.get("status") or {}).get("observedGeneration")


@kopf.on.event(GROUP, VERSION, PLURAL, id="watch-spec", when=_spec_ahead)
async def spec_changed(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    """A new spec (generation ahead of observedGeneration): reconcile it now."""
    context_of(memo).reconcilers.poke((namespace, name))


@kopf.on.event(GROUP, VERSION, PLURAL, id="watch-relist")
async def promdemo_listed(
    event: kopf.RawEvent, namespace: str, name: str, memo: kopf.Memo, **_: Any
) -> None:
    """A PromDemo listed again (its watch broke off with 410 Gone and re-listed): the
    children's watches may have had the same gap, and kopf's indexes keep a child
    deleted during it (a re-list adds and updates, it never removes). The PromDemo's
    next reconcile reads every child from the API, so a child deleted in the gap is
    created again at once, not at the next resync (hours).
    """
    ctx = context_of(memo)
    key = (namespace, name)
    if event.get("type") == "DELETED":
        ctx.seen_promdemos.discard(key)
    elif event.get("type") is None and key in ctx.seen_promdemos:
        ctx.refresh(key)
    else:
        ctx.seen_promdemos.add(key)


def _monitoring_crd(name: str, **_: Any) -> bool:
    return name in MONITORING_CRDS


@kopf.on.event(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", id="watch-crds",
    when=_monitoring_crd,
)  # fmt: skip
async def monitoring_crd_changed(memo: kopf.Memo, **_: Any) -> None:
    """Monitoring CRDs installed or removed: look again, for every PromDemo."""
    ctx = context_of(memo)
    ctx.kube.invalidate_discovery()
    ctx.reconcilers.poke_all()


def _news(seen: dict[Any, Any], key: Any, value: Any, event: kopf.RawEvent) -> bool:
    """Record `value` (None: deleted) under `key`; True when it is a change worth a wake-up.

    A first sight is news only as a watch event (ADDED), not in a listing (at start,
    or again after a watch broke off, when kopf's event has no type).
    """
    missing = key not in seen
    previous = seen.get(key)
    if event.get("type") == "DELETED":
        seen.pop(key, None)
        return not missing
    seen[key] = value
    if missing:
        return event.get("type") == "ADDED"
    return previous != value


@kopf.on.event(*PROMETHEUS_RESOURCE, id="watch-prometheuses")
async def prometheus_changed(
    event: kopf.RawEvent, body: kopf.Body, namespace: str, name: str, memo: kopf.Memo, **_: Any
) -> None:
    """A Prometheus object came, went or changed its selectors: decide selection again."""
    ctx = context_of(memo)
    key = (namespace, name)
    if _news(ctx.seen_prometheuses, key, prometheus_record(body), event):
        ctx.prometheus.forget(f"{namespace}/{name}")
        ctx.reconcilers.poke_all()


@kopf.on.event(*NAMESPACE_RESOURCE, id="watch-namespaces")
async def namespace_changed(
    event: kopf.RawEvent, name: str, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> None:
    """A namespace's labels changed: decide selection again for its PromDemos."""
    ctx = context_of(memo)
    plain_labels = {str(k): str(v) for k, v in labels.items()}
    if _news(ctx.seen_namespaces, name, plain_labels, event):
        ctx.reconcilers.poke_namespace(name)
