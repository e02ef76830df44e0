"""An emulated Kubernetes API (kmock) for the operator tier, and the real operator against it.

`KmockCluster` serves a `PromDemoEmulator` on 127.0.0.1 from a background thread,
writes a kubeconfig pointing at it, declares the built-in resources, `promdemos`
(namespaced, status + scale subresources) and, unless told otherwise, the
`monitoring.coreos.com/v1` servicemonitors and prometheusrules. Tests talk to it
over HTTP like any client (`create`, `get`, `patch`, `delete`, `list`), read the
emulator's records (`history`, `api_calls`), and start the REAL operator process
(`start_operator`: `promdemo operator --all-namespaces` with KUBECONFIG) through
`tests.support.processes.ManagedProcess`; `close()` stops every operator first,
then the server.

`PromDemoEmulator` is kmock 0.8's `KubernetesEmulator` with the gaps that kept
kopf from working filled in, plus what the tests need:

- on create: namespace from the URL, uid, creationTimestamp, generation 1,
  a fresh resourceVersion, `generateName`; status dropped where the resource has
  a status subresource; 404 for resources the server does not serve; 409 on a
  name clash;
- on patch (JSON patch, or an RFC 7386 merge patch whose `null` deletes a key, as
  the operator's pruning of dropped keys needs): a fresh resourceVersion when
  something changed (none for a no-op, like a real API server),
  `metadata.generation` bumped when anything outside metadata/status changed,
  the status subresource honoured (the main resource ignores `status`,
  `/status` only takes `status`), a JSON
  patch `test` mismatch or a stale `metadata.resourceVersion` answers 409;
- on delete: finalizers honoured (deletionTimestamp first), and a minimal garbage
  collector: objects owned (ownerReferences) by a deleted object are deleted too;
- `GET /api/v1/namespaces` parses (kmock's path parser failed on it);
- `labelSelector` filters lists and watches (equality, inequality, existence);
- every request is recorded as an `ApiCall` (verb, group, resource[/subresource]),
  which the RBAC coverage test compares with manifests/base/rbac.yaml.

Still not emulated: controllers (a Deployment gets no pods and no status unless a
test writes it), schema validation and defaulting, PUT, fieldSelector,
`timeoutSeconds` on watches, strategic-merge semantics (treated as merge patch).
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import gzip
import importlib.resources
import itertools
import json
import secrets
import string
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import attrs
import httpx
import jsonpatch
import jsonpointer
import kmock
import pytest
from kmock._internal import parsing as kmock_parsing
from kmock._internal.k8s import KubernetesError

from tests.support.ports import free_port
from tests.support.processes import ManagedProcess, wait_http_ok

T = TypeVar("T")

PROMDEMOS = "promdemo.dev/v1alpha1/promdemos"
DEPLOYMENTS = "apps/v1/deployments"
SERVICES = "v1/services"
SECRETS = "v1/secrets"
EVENTS = "v1/events"
PODS = "v1/pods"
SERVICEMONITORS = "monitoring.coreos.com/v1/servicemonitors"
PROMETHEUSRULES = "monitoring.coreos.com/v1/prometheusrules"
CRDS = "apiextensions.k8s.io/v1/customresourcedefinitions"

#: kind → resource, for `KmockCluster.create(obj)`.
RESOURCE_OF_KIND = {
    "PromDemo": PROMDEMOS,
    "Deployment": DEPLOYMENTS,
    "Service": SERVICES,
    "Secret": SECRETS,
    "Pod": PODS,
    "Event": EVENTS,
    "ServiceMonitor": SERVICEMONITORS,
    "PrometheusRule": PROMETHEUSRULES,
    "Namespace": "v1/namespaces",
    "CustomResourceDefinition": CRDS,
}

#: The User-Agent of KmockCluster's own client: its requests are not the operator's.
HARNESS_USER_AGENT = "promdemo-tests-kmock-cluster"

ALL_VERBS = {"create", "get", "list", "watch", "patch", "update", "delete", "deletecollection"}


# --------------------------------------------------------------------------- kmock fixes


def _parse_path(path: str) -> kmock_parsing.ParsedPath:
    """kmock's parser, except that the cluster-scoped `namespaces` resource parses."""
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and (len(parts) <= 4 or parts[4:] in (
        ["status"], ["finalize"],
    )):  # fmt: skip
        return kmock_parsing.ParsedPath(
            group="",
            version="v1",
            plural="namespaces",
            namespace=None,
            name=parts[3] if len(parts) >= 4 else None,
            subresource=parts[4] if len(parts) >= 5 else None,
        )
    return _original_parse_path(path)


_original_parse_path = kmock_parsing.parse_path
if getattr(kmock_parsing.parse_path, "__name__", "") != "_parse_path":
    kmock_parsing.parse_path = _parse_path


@dataclass(frozen=True)
class ApiCall:
    """One request the emulator served, as RBAC sees it."""

    verb: str  # get list watch create patch update delete deletecollection
    group: str  # "" for the core group
    resource: str  # plural, or plural/subresource
    namespace: str | None
    name: str | None
    client: str = "operator"  # "harness" for KmockCluster's own requests

    @property
    def rbac_key(self) -> tuple[str, str, str]:
        return (self.group, self.resource, self.verb)


def _user_agent(request: kmock.Request) -> str:
    return next((v for k, v in request.headers.items() if k.lower() == "user-agent"), "")


def _verb(method: str, name: str | None, params: Mapping[str, str]) -> str:
    method = method.upper()
    if method == "GET":
        if params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if name else "list"
    return {
        "POST": "create",
        "PATCH": "patch",
        "PUT": "update",
        "DELETE": "delete" if name else "deletecollection",
    }.get(method, method.lower())


def _match_selector(selector: str, labels: Mapping[str, str]) -> bool:
    """Equality-based label selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, comma = AND."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _essence(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What `metadata.generation` tracks: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (null deletes; lists and scalars replace)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


@attrs.define(kw_only=True)
class PromDemoEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with server-set metadata, generations, subresources, GC, selectors."""

    api_calls: list[ApiCall] = attrs.field(factory=list, init=False)
    #: Route object-API requests through kmock's reaction DSL (slow; for tests that add reactions).
    dsl_reactions: bool = False
    _rv_counter: Iterator[int] = attrs.field(factory=lambda: itertools.count(1000), init=False)

    def _declared(self, resource: Any) -> kmock.ResourceInfo | None:
        for declared in self.resources:
            if (declared.group, declared.version, declared.plural) == (
                resource.group, resource.version, resource.plural,
            ):  # fmt: skip
                return self.resources[declared]
        return None

    def _next_rv(self) -> str:
        return str(next(self._rv_counter))

    async def _handle(self, request: kmock.Request) -> Any:
        resource = request.resource
        is_object_api = resource is not None and bool(resource.plural)
        if is_object_api:
            sub = f"/{request.subresource}" if request.subresource else ""
            call = ApiCall(
                verb=_verb(str(request.method.value), request.name, request.params),
                group=resource.group or "",
                resource=f"{resource.plural}{sub}",
                namespace=request.namespace,
                name=request.name,
                client="harness" if _user_agent(request) == HARNESS_USER_AGENT else "operator",
            )
            self.api_calls.append(call)

        gc_key = None
        if is_object_api:
            info = self._declared(resource)
            if info is None:
                raise kmock.KubernetesResourceNotFoundError()
            async with self._lock:
                if request.action == kmock.action.CREATE:
                    await self._create(request, info)
                elif request.action == kmock.action.UPDATE and request.name is not None:
                    gc_key = await self._update(request, info)
                elif request.action == kmock.action.DELETE and request.name is not None:
                    gc_key = await self._delete(request)
        try:
            if is_object_api and not self.dsl_reactions:
                fast = await self._serve_directly(request)
                if fast is not None:
                    return fast
            # Skip KubernetesEmulator._handle (its state changes are done above, better).
            return await super(kmock.KubernetesEmulator, self)._handle(request)
        finally:
            if gc_key is not None:
                async with self._lock:
                    await self._finally_delete(gc_key)

    async def _serve_directly(self, request: kmock.Request) -> aiohttp.web.StreamResponse | None:
        """Answer an object-API request from the store, without kmock's reaction DSL.

        kmock matches each request against views over every request seen so far,
        which grows quadratically (a 100-PromDemo run spent minutes there). The
        emulator's own fallbacks are all an object API needs; tests that add kmock
        reactions set `dsl_reactions = True` to route requests through them again.
        """
        action = request.action
        if action == kmock.action.WATCH:
            response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request._raw_request)
            async for item in self._serve_watch(request):
                if isinstance(item, bytes | str):
                    continue
                await response.write(json.dumps(item).encode() + b"\n")
            return response  # pragma: no cover - watches end by disconnection
        serve = {
            kmock.action.LIST: self._serve_list,
            kmock.action.FETCH: self._serve_fetch,
            kmock.action.CREATE: self._serve_create,
            kmock.action.UPDATE: self._serve_update,
            kmock.action.DELETE: self._serve_delete,
        }.get(action)
        if serve is None:
            return None
        return aiohttp.web.json_response(await serve(request))

    # -- mutations (under self._lock) -------------------------------------------------

    async def _create(self, request: kmock.Request, info: kmock.ResourceInfo) -> None:
        if not isinstance(request.data, dict):
            raise KubernetesError(400, "BadRequest", "the body must be a JSON object")
        obj = copy.deepcopy(request.data)
        meta = obj.setdefault("metadata", {})
        if request.namespace:
            meta["namespace"] = request.namespace
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(
                secrets.choice(string.ascii_lowercase + string.digits) for _ in "12345"
            )
            meta["name"] = f"{meta['generateName']}{suffix}"
        if not meta.get("name"):
            raise KubernetesError(422, "Invalid", "metadata.name: Required value")
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        meta["resourceVersion"] = self._next_rv()
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(key, None)
        if "status" in info.subresources:
            obj.pop("status", None)
        key = (request.resource, meta.get("namespace"), meta["name"])
        if key in self._objects and not self._objects[key].deleted:
            raise KubernetesError(409, "AlreadyExists", f"{meta['name']!r} already exists")
        if key in self._objects:
            self._objects[key].create(obj)
        else:
            self._objects[key] = obj
        # kmock's _serve_create finds the object by the request's body: make them agree.
        request.data.clear()
        request.data.update(copy.deepcopy(obj))
        await self._buses[request.resource].put({"type": "ADDED", "object": copy.deepcopy(obj)})

    async def _update(self, request: kmock.Request, info: kmock.ResourceInfo) -> Any:
        key = (request.resource, request.namespace, request.name)
        if key not in self._objects or self._objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        old = copy.deepcopy(self._objects[key].raw)
        sub = request.subresource
        has_status = "status" in info.subresources
        patch = request.data
        try:
            if isinstance(patch, list):
                ops = [op for op in patch if isinstance(op, dict)]
                if sub == "status" and has_status:
                    ops = [op for op in ops if op.get("op") == "test" or
                           str(op.get("path", "")).startswith("/status")]  # fmt: skip
                elif sub is None and has_status:
                    ops = [op for op in ops if not str(op.get("path", "")).startswith("/status")]
                new = jsonpatch.apply_patch(copy.deepcopy(old), ops, in_place=False)
            elif isinstance(patch, dict):
                wanted_rv = (patch.get("metadata") or {}).get("resourceVersion")
                if wanted_rv is not None and wanted_rv != old["metadata"].get("resourceVersion"):
                    raise KubernetesError(409, "Conflict", "the object has been modified")
                if sub == "status" and has_status:
                    patch = {"status": patch.get("status")}
                elif sub == "scale":
                    replicas = (patch.get("spec") or {}).get("replicas")
                    patch = {"spec": {"replicas": replicas}} if replicas is not None else {}
                elif sub is None and has_status:
                    patch = {k: v for k, v in patch.items() if k != "status"}
                new = _merge_patch(old, patch)
            else:
                raise KubernetesError(400, "BadRequest", "the patch must be a JSON object or list")
        except (jsonpatch.JsonPatchConflict, jsonpatch.JsonPatchTestFailed) as e:
            raise KubernetesError(409, "Conflict", f"the object has been modified: {e}") from e
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
            raise KubernetesError(422, "Invalid", f"invalid patch: {e}") from e
        meta = new.setdefault("metadata", {})
        for immutable in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            if immutable in old["metadata"]:
                meta[immutable] = old["metadata"][immutable]
            else:
                meta.pop(immutable, None)
        meta["resourceVersion"] = old["metadata"].get("resourceVersion")
        if new == old:
            return None  # a no-op patch: no new version, no event (as a real API server)
        if _essence(new) != _essence(old):
            meta["generation"] = int(old["metadata"].get("generation") or 0) + 1
        meta["resourceVersion"] = self._next_rv()
        self._objects[key].history.append(new)
        await self._buses[request.resource].put({"type": "MODIFIED", "object": copy.deepcopy(new)})
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return key
        return None

    async def _delete(self, request: kmock.Request) -> Any:
        key = (request.resource, request.namespace, request.name)
        if key not in self._objects or self._objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        obj = copy.deepcopy(self._objects[key].raw)
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return None
        if meta.get("finalizers"):
            meta["deletionTimestamp"] = _now()
            meta["deletionGracePeriodSeconds"] = 0
            meta["resourceVersion"] = self._next_rv()
            self._objects[key].history.append(obj)
            await self._buses[request.resource].put({"type": "MODIFIED", "object": obj})
            return None
        return key  # deleted after the response, so that the response shows the object

    async def _finally_delete(self, key: Any) -> None:
        if key not in self._objects or self._objects[key].deleted:
            return
        raw = copy.deepcopy(self._objects[key].raw)
        raw["metadata"]["resourceVersion"] = self._next_rv()
        self._objects[key].history.append(raw)
        self._objects[key].delete()
        await self._buses[key[0]].put({"type": "DELETED", "object": raw})
        # Garbage collection (background propagation): delete what this object owned.
        uid = raw["metadata"].get("uid")
        dependents = [
            k
            for k, o in self._objects.items()
            if not o.deleted
            and any(
                r.get("uid") == uid for r in (o.get("metadata") or {}).get("ownerReferences") or []
            )
        ]
        for dep in dependents:
            meta = self._objects[dep].raw.get("metadata") or {}
            if meta.get("finalizers"):
                obj = copy.deepcopy(self._objects[dep].raw)
                obj["metadata"]["deletionTimestamp"] = _now()
                obj["metadata"]["resourceVersion"] = self._next_rv()
                self._objects[dep].history.append(obj)
                await self._buses[dep[0]].put({"type": "MODIFIED", "object": obj})
            else:
                await self._finally_delete(dep)

    # -- reads with labelSelector ---------------------------------------------------------

    async def _serve_list(self, request: kmock.Request) -> Any:
        result = await super()._serve_list(request)
        selector = request.params.get("labelSelector")
        if selector:
            result["items"] = [
                item
                for item in result["items"]
                if _match_selector(selector, (item.get("metadata") or {}).get("labels") or {})
            ]
        result["metadata"] = {"resourceVersion": self._next_rv()}
        return result

    async def _serve_watch(self, request: kmock.Request) -> Any:
        selector = request.params.get("labelSelector")
        async for item in super()._serve_watch(request):
            if selector and isinstance(item, dict):
                labels = ((item.get("object") or {}).get("metadata") or {}).get("labels") or {}
                if not _match_selector(selector, labels):
                    continue
            yield item


# --------------------------------------------------------------------------- the cluster


def resource_path(
    resource: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """URL path of `group/version/plural` (or `v1/plural`) in a namespace or cluster-wide."""
    parts = resource.split("/")
    if len(parts) == 2:
        prefix, plural = f"/api/{parts[0]}", parts[1]
    else:
        prefix, plural = f"/apis/{parts[0]}/{parts[1]}", parts[2]
    path = prefix + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


def _bundled_resources() -> bytes:
    """kmock's bundled built-in resources (what `load_bundled()` reads, without its warning)."""
    blob = importlib.resources.files("kmock._internal").joinpath("resources.json.gz")
    return gzip.decompress(blob.read_bytes())


def _promdemo_resource_info() -> kmock.ResourceInfo:
    return kmock.ResourceInfo(
        namespaced=True,
        kind="PromDemo",
        singular="promdemo",
        shortnames={"pd"},
        categories={"all"},
        verbs=ALL_VERBS,
        subresources={"status", "scale"},
    )


def _monitoring_infos() -> dict[str, kmock.ResourceInfo]:
    return {
        SERVICEMONITORS: kmock.ResourceInfo(
            namespaced=True, kind="ServiceMonitor", singular="servicemonitor",
            shortnames={"smon"}, verbs=ALL_VERBS,
        ),
        PROMETHEUSRULES: kmock.ResourceInfo(
            namespaced=True, kind="PrometheusRule", singular="prometheusrule",
            shortnames={"promrule"}, verbs=ALL_VERBS,
        ),
    }  # fmt: skip


@dataclass
class OperatorProcess:
    """A running `promdemo operator` and where it answers."""

    process: ManagedProcess
    metrics_url: str
    health_url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def metrics_text(self) -> str:
        return httpx.get(self.metrics_url, timeout=5).text

    def metric_value(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """A sample's value from the operator's /metrics (0 when absent)."""
        want = ",".join(f'{k}="{v}"' for k, v in sorted((labels or {}).items()))
        for line in self.metrics_text().splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            sname, _, slabels = series.partition("{")
            if sname != name:
                continue
            got = ",".join(sorted(p for p in slabels.rstrip("}").split(",") if p))
            if got == want:
                return float(value)
        return 0.0

    def stop(self) -> int | None:
        return self.process.stop(timeout=20)


class KmockCluster:
    """kmock on 127.0.0.1 in a background thread, with a sync client and operator control."""

    def __init__(self, workdir: Path, *, monitoring: bool = True) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.monitoring = monitoring
        self.url = ""
        self.kubeconfig = self.workdir / "kubeconfig"
        self.emulator: PromDemoEmulator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._http: httpx.Client | None = None
        self._operators: list[OperatorProcess] = []

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> KmockCluster:
        self._thread = threading.Thread(target=self._main, name="kmock", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"kmock did not start: {self._error!r}")
        self._write_kubeconfig()
        self._http = httpx.Client(
            base_url=self.url, timeout=60.0, headers={"User-Agent": HARNESS_USER_AGENT}
        )
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:
            self._error = e
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with PromDemoEmulator() as k, kmock.Server(k) as server:
            k.resources.load_data(_bundled_resources())
            k.resources[PROMDEMOS] = _promdemo_resource_info()
            if self.monitoring:
                for res, info in _monitoring_infos().items():
                    k.resources[res] = info
            self.emulator = k
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
            "users": [{"name": "kmock", "user": {"token": "kmock-test-token"}}],
            "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
            "current-context": "kmock",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))

    def close(self) -> None:
        for op in self._operators:
            op.stop()
        self._operators.clear()
        if self._http is not None:
            self._http.close()
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> KmockCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running code on the emulator's loop -----------------------------------------------

    def call(self, fn: Callable[[PromDemoEmulator], T]) -> T:
        """Run `fn(emulator)` on the emulator's loop, holding its lock; return the result."""
        assert self._loop is not None
        assert self.emulator is not None
        emulator = self.emulator

        async def locked() -> T:
            async with emulator._lock:
                return fn(emulator)

        return asyncio.run_coroutine_threadsafe(locked(), self._loop).result(timeout=30)

    def api_calls(self) -> list[ApiCall]:
        """Every request served so far (a copy)."""
        return self.call(lambda k: list(k.api_calls))

    def history(self, resource: str, namespace: str | None, name: str) -> list[dict | None]:
        """Every stored version of an object (None marks a deletion); [] if never created."""

        def read(k: PromDemoEmulator) -> list[dict | None]:
            key = (kmock.resource(resource), namespace, name)
            if key not in k.objects:
                return []
            return [None if v is None else copy.deepcopy(v.raw) for v in k.objects[key].history]

        return self.call(read)

    def stored(self, resource: str, namespace: str | None = None) -> list[dict]:
        """The current (not deleted) objects of a resource, straight from the store."""

        def read(k: PromDemoEmulator) -> list[dict]:
            res = kmock.resource(resource)
            return [
                copy.deepcopy(o.raw)
                for (r, ns, _), o in k.objects.items()
                if r == res and not o.deleted and (namespace is None or ns == namespace)
            ]

        return self.call(read)

    def install_monitoring_crds(self) -> None:
        """Serve monitoring.coreos.com/v1, as if the Prometheus Operator CRDs were applied."""

        def declare(k: PromDemoEmulator) -> None:
            for res, info in _monitoring_infos().items():
                k.resources[res] = info

        self.call(declare)
        self.monitoring = True
        for plural, kind in (("servicemonitors", "ServiceMonitor"),
                             ("prometheusrules", "PrometheusRule")):  # fmt: skip
            self.create({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.monitoring.coreos.com"},
                "spec": {
                    "group": "monitoring.coreos.com",
                    "names": {"kind": kind, "plural": plural},
                    "scope": "Namespaced",
                    "versions": [{"name": "v1", "served": True, "storage": True}],
                },
            })  # fmt: skip

    # -- a plain HTTP client --------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        assert self._http is not None, "start() the cluster first"
        return self._http.request(method, path, **kwargs)

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            raise RuntimeError(f"{response.request.method} {response.request.url}: "
                               f"{response.status_code} {response.text[:500]}")  # fmt: skip
        return response.json()

    def create(self, obj: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        resource = RESOURCE_OF_KIND[obj["kind"]]
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        return self._json(self._request("POST", resource_path(resource, ns), json=dict(obj)))

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        response = self._request("GET", resource_path(resource, namespace, name))
        if response.status_code == 404:
            return None
        return self._json(response)

    def list(
        self, resource: str, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        response = self._request("GET", resource_path(resource, namespace), params=params)
        return self._json(response).get("items", [])

    def patch(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any] | list,
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        content_type = (
            "application/json-patch+json" if isinstance(patch, list)
            else "application/merge-patch+json"
        )  # fmt: skip
        response = self._request(
            "PATCH",
            resource_path(resource, namespace, name, subresource),
            content=json.dumps(patch),
            headers={"Content-Type": content_type},
        )
        return self._json(response)

    def delete(self, resource: str, namespace: str | None, name: str) -> bool:
        response = self._request("DELETE", resource_path(resource, namespace, name))
        if response.status_code == 404:
            return False
        self._json(response)
        return True

    def events_for(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """Events (core v1 and events.k8s.io) whose involved/regarding object is `name`."""
        found = []
        for res in (EVENTS, "events.k8s.io/v1/events"):
            for ev in self.stored(res, namespace):
                ref = ev.get("involvedObject") or ev.get("regarding") or {}
                if ref.get("name") == name:
                    found.append(ev)
        return found

    # -- the operator ---------------------------------------------------------------------

    def operator_env(self) -> dict[str, str]:
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "KUBERNETES_SERVICE_HOST": "",  # never take in-cluster credentials
            "KUBERNETES_SERVICE_PORT": "",
            "PYTHONUNBUFFERED": "1",
        }

    def operator_argv(self, *args: str) -> list[str]:
        """argv of `promdemo operator ARGS` with this interpreter."""
        launcher = "import sys; from promdemo_operator.cli import main; sys.exit(main())"
        return [sys.executable, "-c", launcher, "operator", *args]

    def start_operator(
        self,
        *extra: str,
        resync_seconds: float = 1.0,
        scope: tuple[str, ...] = ("--all-namespaces",),
        log_name: str | None = None,
        wait: bool = True,
    ) -> OperatorProcess:
        """Start the real operator process against this cluster (stopped by `close()`)."""
        metrics_port, health_port, webhook_port = free_port(), free_port(), free_port()
        args = [
            *scope,
            "--bind", "127.0.0.1",
            "--metrics-port", str(metrics_port),
            "--health-port", str(health_port),
            "--webhook-port", str(webhook_port),
            "--resync-seconds", str(resync_seconds),
            *extra,
        ]  # fmt: skip
        log = self.workdir / (log_name or f"operator-{len(self._operators) + 1}.log")
        proc = ManagedProcess(self.operator_argv(*args), log_path=log, env=self.operator_env())
        op = OperatorProcess(
            process=proc,
            metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
            health_url=f"http://127.0.0.1:{health_port}/healthz",
        )
        self._operators.append(op)
        if wait:
            wait_http_ok(op.health_url, proc=proc, timeout=60)
            wait_http_ok(op.metrics_url, proc=proc, timeout=30)
        return op

    def stop_operator(self, op: OperatorProcess) -> int | None:
        code = op.stop()
        if op in self._operators:
            self._operators.remove(op)
        return code


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def kmock_cluster(tmp_path: Path) -> Iterator[KmockCluster]:
    """A started KmockCluster with the monitoring CRDs served; stopped (operators first)."""
    with KmockCluster(tmp_path / "kmock") as cluster:
        yield cluster


@pytest.fixture
def kmock_cluster_factory(tmp_path: Path) -> Iterator[Callable[..., KmockCluster]]:
    """`factory(monitoring=False)` → another started KmockCluster; all closed at teardown."""
    clusters: list[KmockCluster] = []

    def make(*, monitoring: bool = True) -> KmockCluster:
        cluster = KmockCluster(tmp_path / f"kmock-{len(clusters) + 1}", monitoring=monitoring)
        clusters.append(cluster)
        return cluster.start()

    yield make
    for cluster in clusters:
        cluster.close()


def operator_log_tail(op: OperatorProcess, lines: int = 80) -> str:
    """The end of an operator's log, for assertion messages."""
    return "\n".join(op.process.log().splitlines()[-lines:])


__all__ = [
    "CRDS",
    "DEPLOYMENTS",
    "EVENTS",
    "PODS",
    "PROMDEMOS",
    "PROMETHEUSRULES",
    "SECRETS",
    "SERVICEMONITORS",
    "SERVICES",
    "ApiCall",
    "KmockCluster",
    "OperatorProcess",
    "PromDemoEmulator",
    "kmock_cluster",
    "kmock_cluster_factory",
    "operator_log_tail",
    "resource_path",
]
