"""Create-or-patch of PromDemo children through the `kubernetes` client.

The kopf handlers hand this module fully rendered objects (plain dicts); it
makes the cluster match them without ever deleting and re-creating one:

- an object that is absent is created; a 409 on create (somebody was faster)
  means "read it and patch it";
- an object that exists is compared with the desired state and, only when it
  drifted, merge-patched to it (so a steady-state resync writes nothing);
- a map key the operator set last time and the desired state no longer has
  (e.g. a label dropped from `spec.monitoring.labels`) is deleted by the same
  patch (`null` in a JSON merge patch); keys other actors added are kept. What
  the operator set is recorded on each child in the annotation
  `promdemo.dev/last-applied` (see `managed_keys`);
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

from promdemo_operator.resource import (
    GROUP,
    MONITORING_GROUP,
    MONITORING_VERSION,
    PLURAL,
    VERSION,
)

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


# -- what the operator applied last (pruning of dropped map keys) -----------------------

#: The annotation on every child that records which keys the operator set (see managed_keys).
LAST_APPLIED_ANNOTATION = "promdemo.dev/last-applied"

#: A leaf of the key tree: a scalar or a list (a merge patch replaces those whole).
_LEAF = 1

#: Fields never recorded, so never pruned: a Secret's data is created once and never
#: rewritten (the reset token); recording it would also copy nothing useful.
_UNTRACKED = {"Secret": ("data", "stringData")}


def managed_keys(view: Mapping[str, Any]) -> dict[str, Any]:
    """The key tree of a managed view: maps → dicts of their keys, anything else → 1.

    Why key paths and not the desired object itself (as `kubectl apply`'s
    last-applied-configuration): deleting a dropped key needs only to know that
    the operator set it, not its value. The tree is small (lists such as
    containers, env, ports and rule groups are one leaf each, because a merge
    patch replaces them whole), it never copies a Secret's data or the rule groups
    into an annotation, and a change of any value but a key set leaves it equal,
    so it rarely changes at all. Maps are kept apart from leaves so that a map the
    operator set but another actor added keys to is emptied of the operator's keys
    only, not deleted with the other keys (see `stale_keys`).
    """
    return {str(k): managed_keys(v) if isinstance(v, Mapping) else _LEAF for k, v in view.items()}


def encode_managed_keys(tree: Mapping[str, Any]) -> str:
    """The annotation's value: canonical JSON, so equal trees give equal strings."""
    return json.dumps(tree, sort_keys=True, separators=(",", ":"))


def decode_managed_keys(text: Any) -> dict[str, Any]:
    """The tree recorded in an annotation; {} when absent or not a tree (nothing is pruned)."""
    if not isinstance(text, str) or not text:
        return {}
    try:
        tree = json.loads(text)
    except ValueError:
        return {}
    return managed_keys(tree) if isinstance(tree, Mapping) else {}


def _owned_entirely(node: Any, actual: Any) -> bool:
    """True when `actual` holds only keys the tree `node` says the operator set."""
    if not isinstance(node, Mapping) or not isinstance(actual, Mapping):
        return True  # a scalar or list the operator set (or its map, replaced by a value)
    return all(k in node and _owned_entirely(node[k], v) for k, v in actual.items())


def stale_keys(last: Mapping[str, Any], desired: Any, actual: Any) -> dict[str, Any]:
    """A merge-patch fragment setting to null each key the operator set last time.

    `last` is the key tree recorded at the previous apply, `desired` the new managed
    view, `actual` the object in the cluster. Only keys that `actual` still holds
    and `desired` no longer has are deleted. A dropped map is deleted whole when it
    holds only the operator's keys; when another actor added keys to it, only the
    operator's keys inside it are deleted and the map stays with the others.
    Keys the operator never set are never touched.
    """
    out: dict[str, Any] = {}
    if not isinstance(actual, Mapping):
        return out
    for key, node in last.items():
        if key not in actual:
            continue
        have = actual[key]
        if isinstance(desired, Mapping) and key in desired:
            want = desired[key]
            if isinstance(node, Mapping) and isinstance(want, Mapping):
                nested = stale_keys(node, want, have)
                if nested:
                    out[key] = nested
            continue  # still desired: the patch sets its value
        if _owned_entirely(node, have):
            out[key] = None
        elif isinstance(node, Mapping):
            nested = stale_keys(node, None, have)
            if nested:
                out[key] = nested
    return out


def _merge_into(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with the fragment `extra` merged in (maps recursively; `extra` wins otherwise)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge_into(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _tracked_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The managed view whose keys are recorded: without our annotation and untracked fields."""
    view = _managed_view(obj)
    for key in _UNTRACKED.get(str(obj.get("kind")), ()):
        view.pop(key, None)
    annotations = view["metadata"].get("annotations")
    if isinstance(annotations, Mapping) and LAST_APPLIED_ANNOTATION in annotations:
        rest = {k: v for k, v in annotations.items() if k != LAST_APPLIED_ANNOTATION}
        if rest:
            view["metadata"]["annotations"] = rest
        else:
            view["metadata"].pop("annotations")
    return view


def with_last_applied(desired: Mapping[str, Any]) -> dict[str, Any]:
    """`desired` with the annotation recording its own managed keys (what is created/patched)."""
    out = dict(desired)
    meta = dict(out.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    annotations[LAST_APPLIED_ANNOTATION] = encode_managed_keys(managed_keys(_tracked_view(desired)))
    meta["annotations"] = annotations
    out["metadata"] = meta
    return out


def plan_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch that brings `actual` to `desired`, or None when it has not drifted.

    The patch holds the managed view of `desired` (labels, annotations, owner
    references and everything outside metadata), the `promdemo.dev/last-applied`
    annotation for this apply, and `null` for each key the previous apply set that
    `desired` dropped. Drift is: a managed field differs, a dropped key is still
    there, or the annotation differs; the annotation depends on `desired` only, so
    once written it matches and a resync patches nothing.
    """
    desired = with_last_applied(_normalize_secret(dict(desired)))
    kind = desired["kind"]
    wanted = _managed_view(desired)
    annotations = (actual.get("metadata") or {}).get("annotations") or {}
    last = decode_managed_keys(annotations.get(LAST_APPLIED_ANNOTATION))
    for key in _UNTRACKED.get(kind, ()):  # even from an annotation edited by hand
        last.pop(key, None)
    # Against the whole view: it holds our annotation, so that one is never "dropped".
    stale = stale_keys(last, wanted, actual)
    if kind == "Secret" and actual.get("data"):
        # Created once; only keys that are missing are added, none is rewritten.
        have = actual.get("data") or {}
        missing = {k: v for k, v in (wanted.get("data") or {}).items() if k not in have}
        wanted.pop("stringData", None)
        if missing:
            wanted["data"] = missing
        else:
            wanted.pop("data", None)
    if not stale and is_subset(wanted, actual):
        return None
    return _merge_into(wanted, stale)


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
        """Make the object in the cluster match `desired`: create, patch, or nothing.

        What is created carries the `promdemo.dev/last-applied` annotation, so a key a
        later `desired` drops is deleted by that later patch (`plan_patch`).
        """
        desired = with_last_applied(_normalize_secret(dict(desired)))
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
        patch = plan_patch(desired, actual)
        if patch is None:
            return ApplyResult(kind, meta["name"], "unchanged", actual)
        patched = self.merge_patch(kind, meta["namespace"], meta["name"], patch)
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
