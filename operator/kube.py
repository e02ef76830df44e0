"""Create-or-patch of PromDemo children through the `kubernetes` client.

The kopf handlers hand this module fully rendered objects (plain dicts); it
makes the cluster match them without ever deleting and re-creating one:

- an object that is absent is created; a 409 on create (somebody was faster)
  means "read it and patch it";
- an object that exists is compared with the desired state and, only when it
  drifted, merge-patched to it (so a steady-state resync writes nothing);
- a Secret's data is never rewritten once it holds the key (the reset token
  is created once and never rotated by an update).

Whether the API server serves `monitoring.coreos.com/v1` ServiceMonitors and
PrometheusRules is a fact to report, not an error: `monitoring_support()`
answers from discovery and treats a 404 as "not installed".

Everything goes through `kubernetes.client.ApiClient` with plain dicts, so one
code path serves built-in kinds and custom resources alike, and the same
kubeconfig / in-cluster credentials as kopf's own client are used.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

MONITORING_GROUP = "monitoring.coreos.com"
MONITORING_VERSION = "v1"
MONITORING_PLURALS = {"ServiceMonitor": "servicemonitors", "PrometheusRule": "prometheusrules"}


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
    "PromDemo": Kind("promdemo.dev", "v1alpha1", "promdemos"),
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


Action = Literal["created", "patched", "unchanged"]


@dataclass(frozen=True)
class ApplyResult:
    """What `Kube.apply` did to one object, and the object as the server has it now."""

    kind: str
    name: str
    action: Action
    object: dict[str, Any]


@dataclass(frozen=True)
class MonitoringSupport:
    """Which monitoring.coreos.com/v1 kinds the API server serves."""

    kinds: frozenset[str]

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


def is_subset(desired: Any, actual: Any) -> bool:
    """True when every field of `desired` is in `actual` with the same value.

    Dicts are compared key by key (fields the server added are ignored); lists
    must have the same length and match item by item the same way, so the
    defaults an API server fills into containers or ports are no drift.
    """
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            return False
        return all(k in actual and is_subset(v, actual[k]) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(desired) != len(actual):
            return False
        return all(is_subset(d, a) for d, a in zip(desired, actual, strict=True))
    if isinstance(desired, bool) or isinstance(actual, bool):
        return desired is actual
    if isinstance(desired, int | float) and isinstance(actual, int | float):
        return float(desired) == float(actual)
    return desired == actual


def _normalize_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """`stringData` → base64 `data`: what a server returns, so the comparison is fair."""
    if obj.get("kind") != "Secret" or not obj.get("stringData"):
        return obj
    out = dict(obj)
    data = dict(out.get("data") or {})
    for key, value in out.pop("stringData").items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    out["data"] = data
    return out


def _managed_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a desired object that the operator owns and compares."""
    meta = obj.get("metadata", {})
    view: dict[str, Any] = {
        k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind", "status")
    }
    view["metadata"] = {
        k: meta[k] for k in ("labels", "annotations", "ownerReferences") if k in meta
    }
    return view


def secret_value(secret: Mapping[str, Any], key: str) -> str | None:
    """A Secret's value for `key` (from `data`, or `stringData` as some emulators keep it)."""
    raw = (secret.get("data") or {}).get(key)
    if raw:
        try:
            return base64.b64decode(raw).decode()
        except (ValueError, UnicodeDecodeError):
            return None
    value = (secret.get("stringData") or {}).get(key)
    return str(value) if value else None


class Kube:
    """A small, thread-safe facade over `kubernetes.client.ApiClient` for plain dicts."""

    def __init__(
        self,
        api_client: k8s_client.ApiClient | None = None,
        *,
        request_timeout: float = 30.0,
        discovery_ttl: float = 10.0,
    ) -> None:
        self.api = api_client or k8s_client.ApiClient()
        self.request_timeout = request_timeout
        self.discovery_ttl = discovery_ttl
        self._discovery_lock = threading.Lock()
        self._discovery: tuple[float, MonitoringSupport] | None = None

    @classmethod
    def from_default_config(cls, *, pool_size: int = 16) -> Kube:
        """A client from in-cluster credentials or the kubeconfig (`$KUBECONFIG`)."""
        load_config()
        configuration = k8s_client.Configuration.get_default_copy()
        configuration.connection_pool_maxsize = max(pool_size, 4)
        return cls(k8s_client.ApiClient(configuration))

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

    def apply(self, desired: Mapping[str, Any]) -> ApplyResult:
        """Make the object in the cluster match `desired`: create, patch, or nothing."""
        desired = _normalize_secret(dict(desired))
        kind = desired["kind"]
        meta = desired["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        actual = self.get(kind, namespace, name)
        if actual is None:
            try:
                created = self.create(desired)
            except KubeError as e:
                if e.status != 409:
                    raise
                actual = self.get(kind, namespace, name)
                if actual is None:  # created and deleted again in between: next time
                    raise
            else:
                return ApplyResult(kind, name, "created", created)
        return self._patch_to(desired, actual)

    def _patch_to(self, desired: dict[str, Any], actual: dict[str, Any]) -> ApplyResult:
        kind, meta = desired["kind"], desired["metadata"]
        wanted = _managed_view(desired)
        if kind == "Secret" and actual.get("data"):
            # Created once; only keys that are missing are added, none is rewritten.
            have = actual.get("data") or {}
            missing = {k: v for k, v in (wanted.get("data") or {}).items() if k not in have}
            wanted.pop("stringData", None)
            if missing:
                wanted["data"] = missing
            else:
                wanted.pop("data", None)
        if is_subset(wanted, actual):
            return ApplyResult(kind, meta["name"], "unchanged", actual)
        patched = self.merge_patch(kind, meta["namespace"], meta["name"], wanted)
        return ApplyResult(kind, meta["name"], "patched", patched)

    # -- secrets and discovery -----------------------------------------------------------

    def read_secret_value(self, namespace: str, name: str, key: str = "token") -> str | None:
        """The value of `key` in Secret `name`; None when the Secret or the key is absent."""
        secret = self.get("Secret", namespace, name)
        return None if secret is None else secret_value(secret, key)

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
        support = MonitoringSupport(kinds)
        with self._discovery_lock:
            self._discovery = (now, support)
        return support
