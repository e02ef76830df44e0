"""An emulated API server on 127.0.0.1 and the real operator, for the benchmarks only.

No test uses it any more: the operator tier of record is the real control plane
(tests/cluster, docs/testing.md). What still imports it is bench/bench_operator.py
(`--api kmock`), bench/bench_operator_hostile.py and bench/profile_operator_memory.py;
it goes, with tests/support/kmock_emulator.py, when they run on the real control plane.

`KmockCluster` serves a `StrictEmulator` (tests/support/kmock_emulator.py) from a
background thread and writes a kubeconfig that points at it with a bearer token
(the emulator answers 401 without it). It declares kmock's bundled built-in
resources, every CRD of crds/ (schemas and defaults read from the files at start),
and, unless told otherwise, monitoring.coreos.com/v1 servicemonitors and
prometheusrules; it creates the namespaces a test names (`demo` by default) plus
the ones every cluster has; with `prometheus=True`, monitoring.coreos.com/v1
prometheuses too. Tests talk to it over HTTP like any client (`create`,
`get`, `patch`, `delete`, `list`, which raise `ApiStatusError` on a refusal), read
the emulator's records (`history`, `stored`, `api_calls`, `refusals`), and start
the REAL operator process (`start_operator`: `promdemo operator --all-namespaces`
with KUBECONFIG) through `tests.support.processes.ManagedProcess`; `close()` stops
every operator first, then the server.

The API server's service proxy reaches real processes: `route_service(ns, name, port,
"http://127.0.0.1:PORT")` makes the Service's port answer from that process (the
Service object must exist, as in a cluster), and `service_proxy_path(ns, name, port)`
is the path a client calls (see kmock_emulator.py for the answers without a route).
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import importlib.resources
import json
import secrets
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import kmock

from promdemo_operator.core.names import selector_for
from tests.support import api_schemas
from tests.support.kmock_emulator import (
    HARNESS_USER_AGENT,
    ApiCall,
    Refusal,
    StrictEmulator,
    match_selector,
    merge_patch,
    verb_of,
)
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess, wait_http_ok

T = TypeVar("T")

PROMDEMOS = "promdemo.dev/v1alpha1/promdemos"
DEPLOYMENTS = "apps/v1/deployments"
SERVICES = "v1/services"
SECRETS = "v1/secrets"
EVENTS = "v1/events"
PODS = "v1/pods"
NAMESPACES = "v1/namespaces"
SERVICEMONITORS = "monitoring.coreos.com/v1/servicemonitors"
PROMETHEUSRULES = "monitoring.coreos.com/v1/prometheusrules"
PROMETHEUSES = "monitoring.coreos.com/v1/prometheuses"
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
    "Prometheus": PROMETHEUSES,
    "Namespace": NAMESPACES,
    "CustomResourceDefinition": CRDS,
}

#: Namespaces every cluster has.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

# The names the operator tier's tests imported before the emulator had its own module.
PromDemoEmulator = StrictEmulator
_match_selector = match_selector
_merge_patch = merge_patch
_verb = verb_of


class ApiStatusError(RuntimeError):
    """A request the emulated API server refused: `status` and its `Status` body."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        try:
            self.body: dict[str, Any] = response.json()
        except ValueError:
            self.body = {"message": response.text}
        self.reason = str(self.body.get("reason", ""))
        super().__init__(
            f"{response.request.method} {response.request.url}: {self.status} "
            f"{self.reason}: {str(self.body.get('message', ''))[:500]}"
        )


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


def service_proxy_path(
    namespace: str, name: str, port: str | int | None = None, *, scheme: str | None = None
) -> str:
    """The API server's proxy path of Service `namespace/name` (`[scheme:]name[:port]`).

    Append the process's own path: `service_proxy_path("monitoring", "prometheus-operated",
    "web") + "/api/v1/targets"`.
    """
    ident = name if port is None else f"{name}:{port}"
    if scheme:
        ident = f"{scheme}:{name}:{'' if port is None else port}"
    return f"/api/v1/namespaces/{namespace}/services/{ident}/proxy"


def _bundled_resources() -> bytes:
    """kmock's bundled built-in resources (what `load_bundled()` reads, without its warning)."""
    blob = importlib.resources.files("kmock._internal").joinpath("resources.json.gz")
    return gzip.decompress(blob.read_bytes())


def _monitoring_crd(kind: api_schemas.Kind) -> dict[str, Any]:
    """The CRD object kopf sees when the monitoring resources appear."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{kind.group}"},
        "spec": {
            "group": kind.group,
            "names": {"kind": kind.kind, "plural": kind.plural, "singular": kind.singular},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": kind.version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }


@dataclass
class OperatorProcess:
    """A running `promdemo operator` and where it answers."""

    process: ManagedProcess
    metrics_url: str
    health_url: str
    #: The refusals of the emulated API server, for failure messages.
    refusals: Callable[[], list[Refusal]] = field(default=list, repr=False)

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
    """The strict emulator on 127.0.0.1 in a background thread, a client, the operator."""

    def __init__(
        self,
        workdir: Path,
        *,
        monitoring: bool = True,
        namespaces: Iterable[str] = ("demo",),
        token: str | None = None,
        prometheus: bool = False,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.monitoring = monitoring
        #: Serve monitoring.coreos.com/v1 prometheuses too (with the monitoring kinds).
        self.prometheus = prometheus
        self.namespaces = tuple(namespaces)
        #: The bearer token of the kubeconfig; the emulator refuses requests without it.
        self.token = token or secrets.token_urlsafe(24)
        self.url = ""
        self.kubeconfig = self.workdir / "kubeconfig"
        self.emulator: StrictEmulator | None = None
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
            base_url=self.url,
            timeout=60.0,
            headers={"User-Agent": HARNESS_USER_AGENT, "Authorization": f"Bearer {self.token}"},
        )
        for ns in (*SYSTEM_NAMESPACES, *self.namespaces):
            self.ensure_namespace(ns)
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
        async with StrictEmulator(token=self.token) as k, kmock.Server(k) as server:
            k.resources.load_data(_bundled_resources())
            for kind in api_schemas.crd_kinds():
                k.serve(kind)
            if self.monitoring:
                for kind in self._monitoring_kinds():
                    k.serve(kind)
            self.emulator = k
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
            "users": [{"name": "kmock", "user": {"token": self.token}}],
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

    def call(self, fn: Callable[[StrictEmulator], T]) -> T:
        """Run `fn(emulator)` on the emulator's loop, holding its lock; return the result."""
        assert self._loop is not None
        assert self.emulator is not None
        emulator = self.emulator

        async def locked() -> T:
            async with emulator._lock:
                return fn(emulator)

        return asyncio.run_coroutine_threadsafe(locked(), self._loop).result(timeout=30)

    def api_calls(self) -> list[ApiCall]:
        """Every authenticated object-API request served so far (a copy)."""
        return self.call(lambda k: list(k.api_calls))

    def refusals(self, client: str | None = None) -> list[Refusal]:
        """Every request the emulator refused so far (of `client` only, if given)."""
        return [r for r in self.call(lambda k: list(k.refusals)) if client in (None, r.client)]

    def history(self, resource: str, namespace: str | None, name: str) -> list[dict | None]:
        """Every stored version of an object (None marks a deletion); [] if never created."""

        def read(k: StrictEmulator) -> list[dict | None]:
            key = (kmock.resource(resource), namespace, name)
            if key not in k.objects:
                return []
            return [None if v is None else copy.deepcopy(v.raw) for v in k.objects[key].history]

        return self.call(read)

    def stored(self, resource: str, namespace: str | None = None) -> list[dict]:
        """The current (not deleted) objects of a resource, straight from the store."""

        def read(k: StrictEmulator) -> list[dict]:
            res = kmock.resource(resource)
            return [
                copy.deepcopy(o.raw)
                for (r, ns, _), o in k.objects.items()
                if r == res and not o.deleted and (namespace is None or ns == namespace)
            ]

        return self.call(read)

    def _monitoring_kinds(self) -> list[api_schemas.Kind]:
        kinds = api_schemas.monitoring_kinds()
        if self.prometheus:
            kinds += api_schemas.prometheus_kinds()
        return kinds

    def install_monitoring_crds(self) -> None:
        """Serve monitoring.coreos.com/v1, as if the Prometheus Operator CRDs were applied."""
        kinds = self._monitoring_kinds()

        def declare(k: StrictEmulator) -> None:
            for kind in kinds:
                k.serve(kind)

        self.call(declare)
        self.monitoring = True
        for kind in kinds:
            self.create(_monitoring_crd(kind))

    # -- the service proxy's endpoints ----------------------------------------------------

    def route_service(self, namespace: str, name: str, port: str | int, url: str) -> None:
        """Answer the service proxy of `namespace/name`'s `port` (name or number) from `url`.

        `url` is a real process (`http://127.0.0.1:PORT`): the Service's endpoint.
        """
        self.call(lambda k: k.route_service(namespace, name, port, url))

    def unroute_service(self, namespace: str, name: str, port: str | int | None = None) -> None:
        """Take a route away (every port's when `port` is None): no endpoint any more."""
        self.call(lambda k: k.unroute_service(namespace, name, port))

    def add_prometheus(self, prometheus: Mapping[str, Any], url: str | None = None) -> dict:
        """Create a Prometheus object and what prometheus-operator makes for it to be reached.

        prometheus-operator (pkg/prometheus/server/operator.go, pkg/prometheus/common.go
        `BuildStatefulSetService`) gives every Prometheus without `spec.serviceName` the
        governing Service `prometheus-operated` of its namespace (headless, port
        `spec.portName` or `web` = 9090, selecting every Prometheus pod there). With
        `url`, that port's proxy answers from the process at `url`. Needs `prometheus=True`.
        """
        created = self.create(prometheus)
        meta = created["metadata"]
        spec = created.get("spec") or {}
        port_name = spec.get("portName") or "web"
        service = spec.get("serviceName") or "prometheus-operated"
        if not spec.get("serviceName") and self.get(SERVICES, meta["namespace"], service) is None:
            self.create(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {
                        "name": service,
                        "namespace": meta["namespace"],
                        "labels": {"operated-prometheus": "true"},
                    },
                    "spec": {
                        "clusterIP": "None",
                        "ports": [{"name": port_name, "port": 9090, "targetPort": port_name}],
                        "selector": {"app.kubernetes.io/name": "prometheus"},
                    },
                }
            )
        if url is not None:
            self.route_service(meta["namespace"], service, port_name, url)
        return created

    def ensure_namespace(self, name: str) -> None:
        """Create namespace `name` unless it exists."""
        if self.get(NAMESPACES, None, name) is None:
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    # -- a plain HTTP client --------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A raw request with the harness's credentials (tests of the emulator itself)."""
        assert self._http is not None, "start() the cluster first"
        return self._http.request(method, path, **kwargs)

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            raise ApiStatusError(response)
        return response.json()

    def create(self, obj: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        resource = RESOURCE_OF_KIND[obj["kind"]]
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        return self._json(self.request("POST", resource_path(resource, ns), json=dict(obj)))

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        response = self.request("GET", resource_path(resource, namespace, name))
        if response.status_code == 404:
            return None
        return self._json(response)

    def list(
        self, resource: str, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        response = self.request("GET", resource_path(resource, namespace), params=params)
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
        response = self.request(
            "PATCH",
            resource_path(resource, namespace, name, subresource),
            content=json.dumps(patch),
            headers={"Content-Type": content_type},
        )
        return self._json(response)

    def delete(self, resource: str, namespace: str | None, name: str) -> bool:
        response = self.request("DELETE", resource_path(resource, namespace, name))
        if response.status_code == 404:
            return False
        self._json(response)
        return True

    def store_pod(
        self, namespace: str, promdemo: str, pod: str, url: str, *, ready: bool = True
    ) -> None:
        """Play the kubelet (kmock runs none): a Running pod of PromDemo `promdemo`, its
        `podIP` and `http` container port those of `url` (an app process on 127.0.0.x)."""
        host, port = url.removeprefix("http://").split(":")
        self.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod, "namespace": namespace, "labels": selector_for(promdemo)},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "ghcr.io/promdemo/promdemo:0.1.0",
                            "ports": [{"name": "http", "containerPort": int(port)}],
                        }
                    ]
                },
            }
        )
        status = {
            "phase": "Running",
            "podIP": host,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }
        self.patch(PODS, namespace, pod, {"status": status}, subresource="status")

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

    def operator_env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        return {
            "KUBECONFIG": str(kubeconfig or self.kubeconfig),
            "KUBERNETES_SERVICE_HOST": "",  # never take in-cluster credentials
            "KUBERNETES_SERVICE_PORT": "",
            "PYTHONUNBUFFERED": "1",
        }

    def operator_argv(self, *args: str) -> list[str]:
        """argv of `promdemo operator ARGS` with this interpreter."""
        launcher = "import sys; from promdemo_operator.cli.main import main; sys.exit(main())"
        return [sys.executable, "-c", launcher, "operator", *args]

    def start_operator(
        self,
        *extra: str,
        resync_seconds: float = 1.0,
        scope: tuple[str, ...] = ("--all-namespaces",),
        log_name: str | None = None,
        wait: bool = True,
        kubeconfig: Path | None = None,
    ) -> OperatorProcess:
        """Start the real operator process against this cluster (stopped by `close()`).

        `kubeconfig` replaces the cluster's own (e.g. one without its token).
        """
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
        env = self.operator_env(kubeconfig)
        proc = ManagedProcess(self.operator_argv(*args), log_path=log, env=env)
        op = OperatorProcess(
            process=proc,
            metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
            health_url=f"http://127.0.0.1:{health_port}/healthz",
            refusals=lambda: self.refusals("operator"),
        )
        self._operators.append(op)
        if wait:
            try:
                wait_http_ok(op.health_url, proc=proc, timeout=60)
                wait_http_ok(op.metrics_url, proc=proc, timeout=30)
            except (TimeoutError, RuntimeError) as e:
                raise RuntimeError(f"{e}\n{operator_log_tail(op)}") from e
        return op

    def stop_operator(self, op: OperatorProcess) -> int | None:
        code = op.stop()
        if op in self._operators:
            self._operators.remove(op)
        return code


def operator_log_tail(op: OperatorProcess, lines: int = 80) -> str:
    """The end of an operator's log and the API's refusals of it, for assertion messages."""
    text = "\n".join(op.process.log().splitlines()[-lines:])
    try:
        refused = op.refusals()
    except Exception:  # a message helper must not hide the real failure
        refused = []
    if refused:
        shown = "\n".join(str(r) for r in refused[-20:])
        text += f"\n--- requests of the operator the emulated API refused ({len(refused)}) ---\n"
        text += shown
    return text


__all__ = [
    "CRDS",
    "DEPLOYMENTS",
    "EVENTS",
    "NAMESPACES",
    "PODS",
    "PROMDEMOS",
    "PROMETHEUSES",
    "PROMETHEUSRULES",
    "SECRETS",
    "SERVICEMONITORS",
    "SERVICES",
    "ApiCall",
    "ApiStatusError",
    "KmockCluster",
    "OperatorProcess",
    "PromDemoEmulator",
    "Refusal",
    "StrictEmulator",
    "operator_log_tail",
    "resource_path",
    "service_proxy_path",
]
