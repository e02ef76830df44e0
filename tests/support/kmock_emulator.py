"""An emulated Kubernetes API server: kmock 0.8's KubernetesEmulator, made strict.

`StrictEmulator` answers the object API (create, get, list, watch, patch, delete)
from its own store and refuses what kube-apiserver refuses:

- 401 Unauthorized unless the request carries `Authorization: Bearer <token>`
  with the emulator's token (every request, discovery included, as a server
  started with `--anonymous-auth=false`);
- 404 for a resource the server does not serve, an object that does not exist,
  or a namespaced create in a namespace that does not exist;
- 403 Forbidden for a create in a Terminating namespace (NamespaceLifecycle
  admission; patches and deletes still pass, so finalizers can be released);
- 400 when the body's apiVersion/kind differ from the URL's, or a field is not
  declared in the schema; 422 for a value the schema refuses, a failed JSON-patch
  `test` (kube-apiserver answers every JSON-patch application error with 422) and
  duplicate keys in a `x-kubernetes-list-type: map` list. Schemas and defaults are
  tests/support/api_schemas.py's (CRDs from crds/, core kinds, monitoring.coreos.com);
- 409 for a name clash on create, or a merge patch whose metadata.resourceVersion
  is stale.

And sets what a server sets: namespace from the URL, uid, creationTimestamp,
generation (bumped when anything outside metadata/status changes), a fresh
resourceVersion on every change (none for a no-op patch), `generateName`, CRD
defaults; create answers 201. Subresources: `status` (the main resource ignores
`status`, `/status` only takes it) and `scale` (spec.replicas). Deletion honours
finalizers (deletionTimestamp first); a minimal garbage collector deletes what a
deleted object owned; a deleted namespace turns Terminating, its objects are
deleted, and it goes once they are gone. `labelSelector` filters lists and watches.
Every authenticated object-API request is recorded as an `ApiCall` (for the RBAC
coverage test; a patch that changed metadata.ownerReferences says so), and every
refusal (but a GET of a missing object) as a `Refusal`.

The service proxy, `/api/v1/namespaces/NS/services/[SCHEME:]NAME[:PORT]/proxy/PATH`,
forwards to a real process: `route_service(ns, name, port, "http://127.0.0.1:PORT")`
plays the Service's endpoints. It answers as kube-apiserver's service REST storage
(pkg/registry/core/service/storage/storage.go `ResourceLocation`) does: 400 for an
id that is not `name`, `name:port` or `http(s):name:port`; a port number is looked up
in the Service's ports (404 without the Service, 503 "no service port N found");
without the Service a named port is 404 `endpoints "NAME" not found`; 503 "no
endpoints available" when nothing is routed or no route has that port; 503 "error
trying to reach service" when the process does not answer. The scheme is the id's
(`http` by default), the path and query string are forwarded as sent, the answer
comes back as the process gave it, and the request is recorded as an `ApiCall`
on `services/proxy` (GET: verb get, POST: create ...), as RBAC sees it.

Still not emulated: controllers (a Deployment gets no pods and no status unless a
test writes it), core defaulting, PUT, fieldSelector, `timeoutSeconds` on watches,
strategic-merge semantics (treated as merge patch), authorization (RBAC).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import hmac
import itertools
import json
import re
import secrets
import string
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
from kmock._internal import parsing as kmock_parsing

from tests.support import api_schemas
from tests.support.api_schemas import Kind, Rejected
from tests.support.merge_patch import merge_patch

#: The User-Agent of the test harness's own client: its requests are not the operator's.
HARNESS_USER_AGENT = "promdemo-tests-kmock-cluster"

ALL_VERBS = {"create", "get", "list", "watch", "patch", "update", "delete", "deletecollection"}
NAMESPACES = "v1/namespaces"
SERVICES = "v1/services"

#: RBAC verbs of proxy requests (apiserver's RequestInfoFactory: HEAD is a get).
PROXY_VERBS = {
    "GET": "get",
    "HEAD": "get",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
#: Where the proxied path starts in a service-proxy URL (the raw, still-encoded path).
_SERVICE_PROXY_PATH = re.compile(r"^/api/v1/namespaces/[^/]+/services/[^/]+/proxy(?P<rest>/.*)?$")
#: A proxied request gets this long to be answered (kube-apiserver sets no shorter bound).
PROXY_TIMEOUT_SECONDS = 60.0
#: Request headers passed on to the process (never the client's Authorization).
_FORWARDED_HEADERS = ("accept", "accept-encoding", "content-type", "user-agent")


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


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ApiCall:
    """One authenticated request the emulator received, as RBAC sees it."""

    verb: str  # get list watch create patch update delete deletecollection
    group: str  # "" for the core group
    resource: str  # plural, or plural/subresource
    namespace: str | None
    name: str | None
    client: str = "operator"  # "harness" for the test harness's own requests
    #: A patch that changed metadata.ownerReferences (OwnerReferencesPermissionEnforcement
    #: then also requires `delete` on the resource).
    owner_references_changed: bool = False
    #: The path a service-proxy request asked the process for (`/api/v1/targets`).
    proxied_path: str | None = None

    @property
    def rbac_key(self) -> tuple[str, str, str]:
        return (self.group, self.resource, self.verb)


@dataclass(frozen=True)
class Refusal:
    """One request the emulator refused, with the answer a client saw."""

    code: int
    reason: str
    method: str
    path: str
    message: str
    client: str

    def __str__(self) -> str:
        return (
            f"{self.code} {self.reason}: {self.method} {self.path} ({self.client}): {self.message}"
        )


class ApiError(Exception):
    """An answer with a Kubernetes `Status` body (4xx)."""

    def __init__(
        self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})

    def response(self) -> aiohttp.web.Response:
        body = {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }
        return aiohttp.web.json_response(body, status=self.code)


def _not_found(resource: Any, name: str | None) -> ApiError:
    group = f".{resource.group}" if resource.group else ""
    return ApiError(
        404,
        "NotFound",
        f'{resource.plural}{group} "{name}" not found',
        {"name": name, "group": resource.group or "", "kind": resource.plural},
    )


# --------------------------------------------------------------------------- helpers


def user_agent(request: kmock.Request) -> str:
    return next((v for k, v in request.headers.items() if k.lower() == "user-agent"), "")


def bearer_token(request: kmock.Request) -> str | None:
    header = next((v for k, v in request.headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def verb_of(method: str, name: str | None, params: Mapping[str, str]) -> str:
    """The RBAC verb of an HTTP request."""
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


def match_selector(selector: str, labels: Mapping[str, str]) -> bool:
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


def split_scheme_name_port(ident: str) -> tuple[str, str, str] | None:
    """`[scheme:]name[:port]` as apimachinery's SplitSchemeNamePort reads it; None if invalid."""
    parts = ident.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, (name, port) = "", parts
    elif len(parts) == 3:
        scheme, name, port = parts
    else:
        return None
    if not name or scheme not in ("", "http", "https"):
        return None
    return scheme, name, port


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _essence(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What `metadata.generation` tracks: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _api_version(resource: Any) -> str:
    return f"{resource.group}/{resource.version}" if resource.group else resource.version


def _is_service_proxy(request: kmock.Request) -> bool:
    """A request on the `proxy` subresource of a core Service in a namespace."""
    resource = request.resource
    sub = request.subresource or ""
    return (
        resource is not None
        and not resource.group
        and resource.plural == "services"
        and bool(request.namespace)
        and bool(request.name)
        and (sub == "proxy" or sub.startswith("proxy/"))
    )


# --------------------------------------------------------------------------- the emulator


@attrs.define(kw_only=True)
class StrictEmulator(kmock.KubernetesEmulator):
    """kmock's emulator, answering the object API itself and refusing what a server refuses."""

    #: The bearer token every request must carry; None turns authentication off.
    token: str | None = None
    api_calls: list[ApiCall] = attrs.field(factory=list, init=False)
    refusals: list[Refusal] = attrs.field(factory=list, init=False)
    #: Resources with a schema (CRDs, monitoring.coreos.com), by (group, version, plural).
    kinds: dict[tuple[str, str, str], Kind] = attrs.field(factory=dict, init=False)
    _rv_counter: Iterator[int] = attrs.field(factory=lambda: itertools.count(1000), init=False)
    #: Ids of the requests being served whose patch changed metadata.ownerReferences.
    _owner_changes: set[int] = attrs.field(factory=set, init=False)
    #: The service proxy's endpoints: (namespace, service) → {port name or number: host:port}.
    service_routes: dict[tuple[str, str], dict[str, str]] = attrs.field(factory=dict, init=False)

    # -- what is served ----------------------------------------------------------------

    def serve(self, kind: Kind) -> None:
        """Serve a custom resource (as if its CRD were established), checked by its schema."""
        self.kinds[(kind.group, kind.version, kind.plural)] = kind
        self.resources[f"{kind.api_version}/{kind.plural}"] = kmock.ResourceInfo(
            namespaced=kind.namespaced,
            kind=kind.kind,
            singular=kind.singular or kind.kind.lower(),
            shortnames=set(kind.shortnames),
            categories=set(kind.categories),
            verbs=ALL_VERBS,
            subresources=set(kind.subresources),
        )

    def _declared(self, resource: Any) -> kmock.ResourceInfo | None:
        for declared in self.resources:
            if (declared.group, declared.version, declared.plural) == (
                resource.group, resource.version, resource.plural,
            ):  # fmt: skip
                return self.resources[declared]
        return None

    def _next_rv(self) -> str:
        return str(next(self._rv_counter))

    # -- the service proxy's endpoints ----------------------------------------------------

    def route_service(self, namespace: str, name: str, port: str | int, url: str) -> None:
        """Proxy requests to Service `namespace/name`'s `port` (its name or number) to `url`.

        `url` is where the process listens (`http://127.0.0.1:9090`; only its host and
        port count: the scheme is the proxy request's, as for a real endpoint).
        """
        netloc = urllib.parse.urlsplit(url if "//" in url else f"//{url}").netloc
        if not netloc:
            raise ValueError(f"route_service: {url!r} names no host:port")
        self.service_routes.setdefault((namespace, name), {})[str(port)] = netloc

    def unroute_service(self, namespace: str, name: str, port: str | int | None = None) -> None:
        """Remove one port's route (or every route of the Service): as if its pods went away."""
        routes = self.service_routes.get((namespace, name))
        if routes is None:
            return
        if port is None:
            routes.clear()
        else:
            routes.pop(str(port), None)
        if not routes:
            del self.service_routes[(namespace, name)]

    # -- the entry point ---------------------------------------------------------------

    async def _handle(self, request: kmock.Request) -> Any:
        client = "harness" if user_agent(request) == HARNESS_USER_AGENT else "operator"
        try:
            self._authenticate(request)
            resource = request.resource
            if resource is None or not resource.plural:
                # Discovery (/api, /apis, /version): kmock's scaffold answers it.
                return await super(kmock.KubernetesEmulator, self)._handle(request)
            if _is_service_proxy(request):
                return await self._proxy_service(request, client)
            sub = f"/{request.subresource}" if request.subresource else ""
            call = ApiCall(
                verb=verb_of(str(request.method.value), request.name, request.params),
                group=resource.group or "",
                resource=f"{resource.plural}{sub}",
                namespace=request.namespace,
                name=request.name,
                client=client,
            )
            index = len(self.api_calls)
            self.api_calls.append(call)  # now: a watch never ends
            info = self._declared(resource)
            if info is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            try:
                return await self._serve(request, info)
            finally:
                if request.id in self._owner_changes:
                    self._owner_changes.discard(request.id)
                    self.api_calls[index] = dataclasses.replace(call, owner_references_changed=True)
        except ApiError as e:
            self._refused(request, client, e.code, e.reason, e.message)
            return e.response()
        except Rejected as e:
            self._refused(request, client, e.code, e.reason, e.message)
            kind = (request.data or {}).get("kind") if isinstance(request.data, dict) else None
            details = {
                "name": request.name,
                "kind": kind,
                "causes": [c.as_dict() for c in e.causes],
            }
            return ApiError(e.code, e.reason, e.message, details).response()

    def _refused(
        self, request: kmock.Request, client: str, code: int, reason: str, message: str
    ) -> None:
        if code == 404 and request.method.value == "GET":
            return  # reading a missing object is an answer, not a refusal
        self.refusals.append(
            Refusal(code, reason, str(request.method.value), request.url.path, message, client)
        )

    def _authenticate(self, request: kmock.Request) -> None:
        if self.token is None:
            return
        given = bearer_token(request)
        if given is None or not hmac.compare_digest(given, self.token):
            raise ApiError(401, "Unauthorized", "Unauthorized")

    async def _serve(self, request: kmock.Request, info: kmock.ResourceInfo) -> Any:
        action = request.action
        if action == kmock.action.WATCH:
            response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request._raw_request)
            async for item in self._serve_watch(request):
                if isinstance(item, bytes | str):
                    continue
                await response.write(json.dumps(item).encode() + b"\n")
            return response  # pragma: no cover - watches end by disconnection
        if action == kmock.action.LIST:
            return aiohttp.web.json_response(await self._serve_list(request))
        if action == kmock.action.FETCH:
            async with self._lock:
                return aiohttp.web.json_response(self._fetch(request))
        gc_key = None
        async with self._lock:
            if action == kmock.action.CREATE:
                body = await self._create(request, info)
                return aiohttp.web.json_response(body, status=201)
            if action == kmock.action.UPDATE and request.name is not None:
                body, gc_key = await self._update(request, info)
            elif action == kmock.action.DELETE and request.name is not None:
                body, gc_key = await self._delete(request)
            else:
                raise ApiError(405, "MethodNotAllowed", f"{request.method.value} is not supported")
        try:
            return aiohttp.web.json_response(body)
        finally:
            if gc_key is not None:
                async with self._lock:
                    await self._finally_delete(gc_key)

    # -- the service proxy ---------------------------------------------------------------

    async def _proxy_service(self, request: kmock.Request, client: str) -> aiohttp.web.Response:
        """Forward a service-proxy request as kube-apiserver would (see the module's doc)."""
        namespace = request.namespace or ""
        ident = urllib.parse.unquote(request.name or "")
        method = str(request.method.value).upper()
        match = _SERVICE_PROXY_PATH.match(request.url.raw_path)
        path = (match.group("rest") if match else None) or "/"
        self.api_calls.append(
            ApiCall(
                verb=PROXY_VERBS.get(method, method.lower()),
                group="",
                resource="services/proxy",
                namespace=namespace,
                name=ident,
                client=client,
                proxied_path=path,
            )
        )
        target = await self._service_endpoint(namespace, ident)
        query = request.url.raw_query_string
        url = f"{target}{path}" + (f"?{query}" if query else "")
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED_HEADERS}
        timeout = aiohttp.ClientTimeout(total=PROXY_TIMEOUT_SECONDS)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session,
                session.request(
                    method,
                    url,  # already encoded: requoting leaves it as sent
                    data=request.body or None,
                    headers=headers,
                    allow_redirects=False,
                ) as answer,
            ):
                body = await answer.read()
                passed = {
                    k: v
                    for k, v in answer.headers.items()
                    if k.lower() in ("content-type", "content-encoding", "location")
                }
                return aiohttp.web.Response(status=answer.status, body=body, headers=passed)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise ApiError(
                503, "ServiceUnavailable", f"error trying to reach service: {reason}"
            ) from exc

    async def _service_endpoint(self, namespace: str, ident: str) -> str:
        """`scheme://host:port` of the routed endpoint for `ident`, or the server's ApiError."""
        parsed = split_scheme_name_port(ident)
        if parsed is None:
            raise ApiError(400, "BadRequest", f'invalid service request "{ident}"')
        scheme, name, port = parsed
        async with self._lock:
            key = (kmock.resource(SERVICES), namespace, name)
            exists = key in self._objects and not self._objects[key].deleted
            service = copy.deepcopy(self._objects[key].raw) if exists else None
        ports = [p for p in ((service or {}).get("spec") or {}).get("ports") or [] if p]
        try:
            number: int | None = int(port)
        except ValueError:
            number = None
        if number is not None:
            # A port number names the Service's port with that number.
            if service is None:
                raise _not_found(kmock.resource(SERVICES), name)
            by_number = [p for p in ports if p.get("port") == number]
            if not by_number:
                raise ApiError(
                    503,
                    "ServiceUnavailable",
                    f'no service port {number} found for service "{name}"',
                )
            port = by_number[0].get("name") or ""
        if service is None:
            # The Endpoints object is what the server reads for a named port.
            details = {"name": name, "kind": "endpoints"}
            raise ApiError(404, "NotFound", f'endpoints "{name}" not found', details)
        routes = self.service_routes.get((namespace, name)) or {}
        if not routes:
            raise ApiError(
                503, "ServiceUnavailable", f'no endpoints available for service "{name}"'
            )
        service_port = next((p for p in ports if (p.get("name") or "") == port), None)
        netloc = None
        if service_port is not None:
            netloc = routes.get(port) if port else None
            netloc = netloc or routes.get(str(service_port.get("port")))
        if netloc is None:
            raise ApiError(
                503, "ServiceUnavailable", f'no endpoints available for service "{ident}"'
            )
        return f"{scheme or 'http'}://{netloc}"

    # -- reads ---------------------------------------------------------------------------

    def _fetch(self, request: kmock.Request) -> dict[str, Any]:
        key = (request.resource, request.namespace, request.name)
        if key not in self._objects or self._objects[key].deleted:
            raise _not_found(request.resource, request.name)
        return copy.deepcopy(self._objects[key].raw)

    async def _serve_list(self, request: kmock.Request) -> Any:
        async with self._lock:
            items = [
                copy.deepcopy(obj.raw)
                for (res, ns, _), obj in self._objects.items()
                if res == request.resource
                and not obj.deleted
                and (request.namespace is None or ns == request.namespace)
            ]
            selector = request.params.get("labelSelector")
            if selector:
                items = [
                    item
                    for item in items
                    if match_selector(selector, (item.get("metadata") or {}).get("labels") or {})
                ]
            return {"metadata": {"resourceVersion": self._next_rv()}, "items": items}

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        selector = request.params.get("labelSelector")
        async for item in super()._serve_watch(request):
            if selector and isinstance(item, dict):
                labels = ((item.get("object") or {}).get("metadata") or {}).get("labels") or {}
                if not match_selector(selector, labels):
                    continue
            yield item

    # -- admission -----------------------------------------------------------------------

    def _namespace_phase(self, name: str) -> str | None:
        """Active, Terminating, or None when the namespace does not exist."""
        key = (kmock.resource(NAMESPACES), None, name)
        if key not in self._objects or self._objects[key].deleted:
            return None
        meta = self._objects[key].raw.get("metadata") or {}
        return "Terminating" if meta.get("deletionTimestamp") else "Active"

    def _admit_namespace(self, request: kmock.Request, kind: str, name: str) -> None:
        """NamespaceLifecycle: no create in a missing or Terminating namespace."""
        if not request.namespace:
            return
        phase = self._namespace_phase(request.namespace)
        if phase is None:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{request.namespace}" not found',
                {"name": request.namespace, "kind": "namespaces"},
            )
        if phase == "Terminating":
            raise ApiError(
                403,
                "Forbidden",
                f'{request.resource.plural} "{name}" is forbidden: unable to create new content '
                f"in namespace {request.namespace} because it is being terminated",
                {
                    "name": name,
                    "kind": request.resource.plural,
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {request.namespace} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )

    def _check(self, resource: Any, obj: dict[str, Any]) -> dict[str, Any]:
        """`obj` defaulted and validated as the server stores it (Rejected otherwise)."""
        kind = self.kinds.get((resource.group or "", resource.version, resource.plural))
        return api_schemas.check(
            kind, obj.get("apiVersion") or "", obj.get("kind") or "", resource.plural, obj
        )

    # -- mutations (under self._lock) ----------------------------------------------------

    async def _create(self, request: kmock.Request, info: kmock.ResourceInfo) -> dict[str, Any]:
        if not isinstance(request.data, dict):
            raise ApiError(400, "BadRequest", "the body must be a JSON object")
        resource = request.resource
        obj = copy.deepcopy(request.data)
        # The body's type must be the URL's (filled in from the URL when absent).
        want = (_api_version(resource), info.kind)
        got = (obj.setdefault("apiVersion", want[0]), obj.setdefault("kind", want[1]))
        if got != want:
            raise ApiError(
                400,
                "BadRequest",
                f"the API version and kind in the data ({got[0]}, {got[1]}) do not match "
                f"the expected ones ({want[0]}, {want[1]})",
            )
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        if request.namespace:
            if meta.get("namespace") not in (None, "", request.namespace):
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request",
                )
            meta["namespace"] = request.namespace
        if not meta.get("name") and meta.get("generateName"):
            alphabet = string.ascii_lowercase + string.digits
            meta["name"] = meta["generateName"] + "".join(secrets.choice(alphabet) for _ in "12345")
        self._admit_namespace(request, info.kind or resource.plural, meta.get("name") or "")
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(key, None)
        if "status" in info.subresources:
            obj.pop("status", None)
        if resource.plural == "namespaces" and not resource.group:
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        obj = self._check(resource, obj)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        key = (resource, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if key in self._objects and not self._objects[key].deleted:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{resource.plural} "{key[2]}" already exists',
                {"name": key[2], "kind": resource.plural},
            )
        if key in self._objects:
            self._objects[key].create(obj)
        else:
            self._objects[key] = obj
        await self._buses[resource].put({"type": "ADDED", "object": copy.deepcopy(obj)})
        return copy.deepcopy(obj)

    def _patched(self, request: kmock.Request, info: kmock.ResourceInfo, old: dict) -> dict:
        """The object after the request's patch, as the subresource allows it."""
        sub = request.subresource
        has_status = "status" in info.subresources
        patch = request.data
        if isinstance(patch, list):
            ops = [op for op in patch if isinstance(op, dict)]
            if sub == "status" and has_status:
                ops = [op for op in ops if op.get("op") == "test" or
                       str(op.get("path", "")).startswith("/status")]  # fmt: skip
            elif sub is None and has_status:
                ops = [op for op in ops if not str(op.get("path", "")).startswith("/status")]
            try:
                return jsonpatch.apply_patch(copy.deepcopy(old), ops, in_place=False)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
                # kube-apiserver answers every JSON-patch application error, a failed
                # `test` included, with 422 (kopf relies on it for its finalizer patch).
                raise ApiError(422, "Invalid", f"the server rejected our request: {e}") from e
        if isinstance(patch, dict):
            wanted_rv = (patch.get("metadata") or {}).get("resourceVersion")
            if wanted_rv is not None and wanted_rv != old["metadata"].get("resourceVersion"):
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {request.resource.plural} "{request.name}":'
                    " the object has been modified; please apply your changes to the latest "
                    "version and try again",
                )
            if sub == "status" and has_status:
                patch = {"status": patch.get("status")}
            elif sub == "scale":
                replicas = (patch.get("spec") or {}).get("replicas")
                patch = {"spec": {"replicas": replicas}} if replicas is not None else {}
            elif sub is None and has_status:
                patch = {k: v for k, v in patch.items() if k != "status"}
            return merge_patch(old, patch)
        raise ApiError(400, "BadRequest", "the patch must be a JSON object or list")

    async def _update(self, request: kmock.Request, info: kmock.ResourceInfo) -> tuple[dict, Any]:
        key = (request.resource, request.namespace, request.name)
        if key not in self._objects or self._objects[key].deleted:
            raise _not_found(request.resource, request.name)
        old = copy.deepcopy(self._objects[key].raw)
        new = self._patched(request, info, old)
        meta = new.setdefault("metadata", {})
        for immutable in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            if immutable in old["metadata"]:
                meta[immutable] = old["metadata"][immutable]
            else:
                meta.pop(immutable, None)
        if old["metadata"].get("deletionTimestamp"):
            meta["deletionTimestamp"] = old["metadata"]["deletionTimestamp"]
        meta["resourceVersion"] = old["metadata"].get("resourceVersion")
        for field in ("apiVersion", "kind"):
            new[field] = old.get(field)
        new = self._check(request.resource, new)
        if new == old:
            return new, None  # a no-op patch: no new version, no event (as a real API server)
        if _essence(new) != _essence(old):
            new["metadata"]["generation"] = int(old["metadata"].get("generation") or 0) + 1
        new["metadata"]["resourceVersion"] = self._next_rv()
        if new["metadata"].get("ownerReferences") != old["metadata"].get("ownerReferences"):
            self._owner_changes.add(request.id)
        self._objects[key].history.append(new)
        await self._buses[request.resource].put({"type": "MODIFIED", "object": copy.deepcopy(new)})
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return copy.deepcopy(new), key
        return copy.deepcopy(new), None

    async def _delete(self, request: kmock.Request) -> tuple[dict, Any]:
        key = (request.resource, request.namespace, request.name)
        if key not in self._objects or self._objects[key].deleted:
            raise _not_found(request.resource, request.name)
        if request.resource.plural == "namespaces" and not request.resource.group:
            return await self._terminate_namespace(key), None
        gc_key = await self._mark_deleted(key)
        return copy.deepcopy(self._objects[key].raw), gc_key

    async def _mark_deleted(self, key: Any) -> Any:
        """Start deleting `key`: a deletionTimestamp while finalizers hold it, else the key."""
        if self._objects[key].deleted:
            return None
        obj = copy.deepcopy(self._objects[key].raw)
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return None
        if meta.get("finalizers"):
            meta["deletionTimestamp"] = _now()
            meta["deletionGracePeriodSeconds"] = 0
            meta["resourceVersion"] = self._next_rv()
            self._objects[key].history.append(obj)
            await self._buses[key[0]].put({"type": "MODIFIED", "object": copy.deepcopy(obj)})
            return None
        return key  # deleted after the response, so that the response shows the object

    async def _terminate_namespace(self, key: Any) -> dict[str, Any]:
        """The namespace controller: Terminating, its content deleted, then it goes."""
        obj = copy.deepcopy(self._objects[key].raw)
        if not obj["metadata"].get("deletionTimestamp"):
            obj["metadata"]["deletionTimestamp"] = _now()
            obj["metadata"]["resourceVersion"] = self._next_rv()
            obj["status"] = {"phase": "Terminating"}
            self._objects[key].history.append(obj)
            await self._buses[key[0]].put({"type": "MODIFIED", "object": copy.deepcopy(obj)})
        answer = copy.deepcopy(self._objects[key].raw)
        for inner in [k for k, o in self._objects.items() if k[1] == key[2] and not o.deleted]:
            gc_key = await self._mark_deleted(inner)
            if gc_key is not None:
                await self._finally_delete(gc_key)
        await self._finish_namespace(key[2])
        return answer

    async def _finish_namespace(self, name: str) -> None:
        """Remove a Terminating namespace once nothing is left in it."""
        if self._namespace_phase(name) != "Terminating":
            return
        if any(k[1] == name and not o.deleted for k, o in self._objects.items()):
            return
        await self._finally_delete((kmock.resource(NAMESPACES), None, name))

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
            gc_key = await self._mark_deleted(dep)
            if gc_key is not None:
                await self._finally_delete(gc_key)
        if key[1] is not None:
            await self._finish_namespace(key[1])
