"""The operator's Kubernetes API client: plain dicts over `kubernetes.client.ApiClient`.

A small, thread-safe, synchronous facade (the kopf handlers call it from a thread
pool sized for it, `--workers`): `get`, `create`, `merge_patch`, `delete`, and
`apply`, which makes one child match its desired state without ever deleting and
re-creating it:

- an object that is absent is created; a 409 on create (somebody was faster)
  means "read it and patch it";
- an object that exists is patched only when the plan says it drifted
  (`apply_plan.plan_patch`: a three-way merge that keeps what other writers added);
  the patch carries the `metadata.resourceVersion` it was planned against, so a
  change that arrived in between (or a stale watch cache) answers 409, and the
  object is read again and planned once more; a 404 (the object was deleted and
  the caller's copy is stale) creates it;
- what the server does not keep as written (a field it does not know is dropped
  with a warning, not refused) is logged once and that same patch is not sent again
  (until the desired state or a field the operator manages changes): no patch and
  no Event at every reconcile;
- an existing object this PromDemo does not control is left alone (`not_owned`).

`apply` takes the object as the caller already knows it (from the watches), so a
reconcile of a converged PromDemo sends no request at all; without it, it reads
the object first.

Whether the API server serves `monitoring.coreos.com/v1` ServiceMonitors,
PrometheusRules (and Prometheus objects) is a fact to report, not an error:
`monitoring_support()` answers from discovery (cached until
`invalidate_discovery()`, which the CRD watch calls) and treats a 404 as "not
installed".

Everything goes through `kubernetes.client.ApiClient` with plain dicts, so one
code path serves built-in kinds and custom resources alike, and the same
kubeconfig / in-cluster credentials as kopf's own client are used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from promdemo_operator.core.apply_plan import (
    controlled_by,
    normalize_secret,
    plan_patch,
    secret_value,
    with_last_applied,
)
from promdemo_operator.core.names import (
    GROUP,
    MONITORING_GROUP,
    MONITORING_VERSION,
    PLURAL,
    VERSION,
)
from promdemo_operator.core.reconcile_status import MONITORING_PLURALS
from promdemo_operator.runtime.ratelimit import TokenBucket

log = logging.getLogger("promdemo.kube")


def _version(obj: Mapping[str, Any] | None) -> str | None:
    return None if obj is None else (obj.get("metadata") or {}).get("resourceVersion")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Kind:
    """Where the API serves one kind of object."""

    group: str
    version: str
    plural: str

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        prefix = (
            f"/api/{self.version}" if self.group == "" else f"/apis/{self.group}/{self.version}"
        )
        path = f"{prefix}/namespaces/{namespace}/{self.plural}"
        if name is not None:
            path += f"/{name}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


KINDS: dict[str, Kind] = {
    "Secret": Kind("", "v1", "secrets"),
    "Service": Kind("", "v1", "services"),
    "Deployment": Kind("apps", "v1", "deployments"),
    "ServiceMonitor": Kind(MONITORING_GROUP, MONITORING_VERSION, "servicemonitors"),
    "PrometheusRule": Kind(MONITORING_GROUP, MONITORING_VERSION, "prometheusrules"),
    "PromDemo": Kind(GROUP, VERSION, PLURAL),
}


class KubeError(Exception):
    """A failed API call: HTTP status, the Status reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        """Worth retrying soon: throttling, conflicts, server-side trouble."""
        return self.status in (409, 429) or self.status >= 500 or self.status == 0


Action = Literal["created", "patched", "unchanged", "not_owned"]

#: `Kube.apply(actual=UNKNOWN)`: the caller does not know the object; read it first.
UNKNOWN: Any = object()

#: How often a patch planned against a version that changed meanwhile (409) is re-planned.
CONFLICT_ATTEMPTS = 3


@dataclass(frozen=True)
class ApplyResult:
    """What `Kube.apply` did to one object, and the object as the server has it now."""

    kind: str
    name: str
    action: Action
    object: dict[str, Any]


@dataclass(frozen=True)
class MonitoringSupport:
    """Which monitoring.coreos.com/v1 kinds the API server serves.

    `kinds`: of the ServiceMonitor and PrometheusRule the operator creates;
    `prometheus`: whether Prometheus objects (which select them) are served.
    """

    kinds: frozenset[str]
    prometheus: bool = False

    @property
    def complete(self) -> bool:
        return self.kinds >= set(MONITORING_PLURALS)

    def missing(self) -> list[str]:
        return sorted(set(MONITORING_PLURALS) - self.kinds)


def load_config() -> None:
    """Credentials for the `kubernetes` client: in-cluster first, then the kubeconfig."""
    try:
        k8s_config.load_incluster_config()
    except k8s_config.ConfigException:
        k8s_config.load_kube_config()


class Kube:
    """A small, thread-safe facade over `kubernetes.client.ApiClient` for plain dicts."""

    def __init__(
        self,
        api_client: k8s_client.ApiClient | None = None,
        *,
        request_timeout: float = 30.0,
        discovery_ttl: float = 300.0,
        limiter: TokenBucket | None = None,
    ) -> None:
        self.api = api_client or k8s_client.ApiClient()
        #: The client-side limit (`--kube-api-qps`/`--kube-api-burst`): every request
        #: through this client waits for a token first; None: no limit (the leader's
        #: Lease client, whose renewals must not queue behind a large apply).
        self.limiter = limiter
        self.request_timeout = request_timeout
        self.discovery_ttl = discovery_ttl
        self._discovery_lock = threading.Lock()
        self._discovery: tuple[float, MonitoringSupport] | None = None
        #: Objects the server does not keep as desired (an unknown field it drops, a value
        #: it normalizes): (kind, namespace, name) → (the desired object's digest, the
        #: patch still planned after the write). Sending that patch again changes nothing.
        self._not_kept: dict[tuple[str, str, str], tuple[str, str]] = {}

    @classmethod
    def from_default_config(
        cls, *, pool_size: int = 16, limiter: TokenBucket | None = None
    ) -> Kube:
        """A client from in-cluster credentials or the kubeconfig (`$KUBECONFIG`)."""
        load_config()
        configuration = k8s_client.Configuration.get_default_copy()
        configuration.connection_pool_maxsize = max(pool_size, 4)
        return cls(k8s_client.ApiClient(configuration), limiter=limiter)

    # -- raw requests ---------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One API call; the decoded JSON answer, or `KubeError`."""
        if self.limiter is not None:
            self.limiter.wait()
        headers = {"Accept": "application/json", "Content-Type": content_type}
        method, url, headers, body, _ = self.api.param_serialize(
            method=method,
            resource_path=path,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(
                method, url, header_params=headers, body=body,
                _request_timeout=self.request_timeout,
            )  # fmt: skip
            raw = response.read()
        except k8s_client.ApiException as e:  # raised by the REST layer for some statuses
            raise KubeError(e.status or 0, e.reason or "ApiException", str(e.body)) from e
        except Exception as e:  # urllib3 errors: connection refused, timeouts
            raise KubeError(0, type(e).__name__, str(e)) from e
        text = raw.decode("utf-8", errors="replace") if raw else ""
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {}
        if not 200 <= response.status <= 299:
            reason = data.get("reason") or response.reason or "Error"
            message = data.get("message") or text[:500]
            raise KubeError(response.status, str(reason), str(message))
        return data if isinstance(data, dict) else {}

    # -- objects ----------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", KINDS[kind].path(namespace, name))
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return self.request("POST", KINDS[obj["kind"]].path(meta["namespace"]), dict(obj))

    def merge_patch(
        self,
        kind: str,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        return self.request(
            "PATCH",
            KINDS[kind].path(namespace, name, subresource),
            dict(patch),
            content_type="application/merge-patch+json",
        )

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete one object; False when it was already gone."""
        try:
            self.request("DELETE", KINDS[kind].path(namespace, name))
        except KubeError as e:
            if e.status == 404:
                return False
            raise
        return True

    def apply(
        self,
        desired: Mapping[str, Any],
        *,
        actual: Mapping[str, Any] | object | None = UNKNOWN,
        owner_uid: str | None = None,
    ) -> ApplyResult:
        """Make the object in the cluster match `desired`: create, patch, or nothing.

        `actual` is the object as the caller knows it (None: known to be absent);
        without it the object is read first. With `owner_uid`, an existing object
        that the owner does not control is not touched (`not_owned`). What is
        created carries the `promdemo.dev/last-applied` annotation, so a key a later
        `desired` drops is deleted by that later patch (`apply_plan.plan_patch`).
        """
        desired = with_last_applied(normalize_secret(dict(desired)))
        kind = desired["kind"]
        meta = desired["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        key = (kind, namespace, name)
        digest = hashlib.sha256(json.dumps(desired, sort_keys=True).encode()).hexdigest()[:32]
        current: Mapping[str, Any] | None
        current = self.get(kind, namespace, name) if actual is UNKNOWN else actual  # type: ignore[assignment]
        if current is None:
            try:
                created = self.create(desired)
            except KubeError as e:
                if e.status != 409:
                    raise
                current = self.get(kind, namespace, name)
                if current is None:  # created and deleted again in between: next time
                    raise
            else:
                self._note_kept(key, digest, desired, created)
                return ApplyResult(kind, name, "created", created)
        for attempt in range(CONFLICT_ATTEMPTS):
            if owner_uid and not controlled_by(current, owner_uid):
                return ApplyResult(kind, name, "not_owned", dict(current))
            patch = plan_patch(desired, current)
            if patch is None or self._not_kept.get(key) == (digest, _canonical(patch)):
                # Converged, or this very patch was sent before and the server did not keep
                # it: sending it again would change nothing.
                return ApplyResult(kind, name, "unchanged", dict(current))
            # Planned against this version: if it changed since, the API server answers 409
            # instead of letting the patch drop what the other writer just added.
            version = (current.get("metadata") or {}).get("resourceVersion")
            if version:
                patch.setdefault("metadata", {})["resourceVersion"] = version
            try:
                patched = self.merge_patch(kind, namespace, name, patch)
            except KubeError as e:
                if e.status == 404:
                    # Deleted since the caller saw it (a watch that missed the deletion, as
                    # after a 410 Gone re-list): what is missing is created, not retried.
                    created = self.create(desired)
                    self._note_kept(key, digest, desired, created)
                    return ApplyResult(kind, name, "created", created)
                if e.status != 409 or attempt == CONFLICT_ATTEMPTS - 1:
                    raise
                current = self.get(kind, namespace, name)
                if current is None:
                    raise
                continue
            kept = self._note_kept(key, digest, desired, patched)
            if not kept and _version(patched) == _version(current):
                return ApplyResult(kind, name, "unchanged", patched)  # nothing was written
            return ApplyResult(kind, name, "patched", patched)
        raise AssertionError("unreachable")  # pragma: no cover

    def _note_kept(
        self,
        key: tuple[str, str, str],
        digest: str,
        desired: Mapping[str, Any],
        written: Mapping[str, Any],
    ) -> bool:
        """True when the server kept what was written; else remember it, and say so once.

        A field the server does not know is dropped (kube-apiserver warns, it does not
        refuse); without this, every reconcile would patch it again, and post an Event.
        """
        left = plan_patch(desired, written)
        if left is None:
            self._not_kept.pop(key, None)
            return True
        if self._not_kept.get(key, ("",))[0] != digest:
            log.warning(
                "%s %s/%s: the API server did not keep %s as written (an unknown field or a "
                "value it changes); this patch is not sent again until the spec or the object "
                "changes",
                key[0], key[1], key[2], json.dumps(left, sort_keys=True)[:300],
            )  # fmt: skip
        self._not_kept[key] = (digest, _canonical(left))
        return False

    # -- secrets and discovery -----------------------------------------------------------

    def read_secret_value(self, namespace: str, name: str, key: str = "token") -> str | None:
        """The value of `key` in Secret `name`; None when the Secret or the key is absent."""
        secret = self.get("Secret", namespace, name)
        return None if secret is None else secret_value(secret, key)

    def invalidate_discovery(self) -> None:
        """Forget what discovery said (a monitoring CRD was added or removed)."""
        with self._discovery_lock:
            self._discovery = None

    def monitoring_support(self, *, refresh: bool = False) -> MonitoringSupport:
        """Which monitoring.coreos.com/v1 kinds are served (cached for `discovery_ttl` s)."""
        now = time.monotonic()
        with self._discovery_lock:
            cached = self._discovery
            if cached is not None and not refresh and now - cached[0] < self.discovery_ttl:
                return cached[1]
        try:
            listing = self.request("GET", f"/apis/{MONITORING_GROUP}/{MONITORING_VERSION}")
        except KubeError as e:
            if e.status not in (404, 503):  # 503: an aggregated API that is down
                raise
            listing = {}
        served = {r.get("name") for r in listing.get("resources", []) if isinstance(r, dict)}
        kinds = frozenset(kind for kind, plural in MONITORING_PLURALS.items() if plural in served)
        support = MonitoringSupport(kinds, prometheus="prometheuses" in served)
        with self._discovery_lock:
            self._discovery = (now, support)
        return support
