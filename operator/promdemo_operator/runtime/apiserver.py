"""Reaching the API server from Python with the kubernetes client's credentials (an httpx
client, refreshed tokens included), and where a Prometheus object answers through the
API server's service proxy. The operator's Prometheus observation and `promdemo doctor`
share it."""

from __future__ import annotations

import ssl
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from kubernetes import client as k8s_client

from promdemo_operator import __version__

USER_AGENT = f"promdemo-doctor/{__version__}"
#: prometheus-operator's governing Service and web port of a Prometheus without
#: spec.serviceName (pkg/prometheus/server/statefulset.go, pkg/prometheus/common.go).
GOVERNING_SERVICE = "prometheus-operated"
DEFAULT_PORT_NAME = "web"
PROMETHEUS_PORT = 9090


class ReadError(Exception):
    """A read the API server refused or could not answer: its status (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}" if status else message)
        self.status = status
        self.message = message


class _KubeAuth(httpx.Auth):
    """The kubernetes client's credentials on each request (refreshed tokens included)."""

    def __init__(self, configuration: k8s_client.Configuration) -> None:
        self._configuration = configuration

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # What the kubernetes client's own ApiClient sends; reading it runs the refresh
        # hook (exec plugins, an expired token, the in-cluster token file).
        for setting in self._configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                request.headers[setting["key"]] = setting["value"]
        yield request


@dataclass(frozen=True)
class Connection:
    """Where the API server is, how to authenticate, and the default namespace."""

    host: str
    namespace: str
    configuration: k8s_client.Configuration

    def client(self, timeout: float, *, user_agent: str = USER_AGENT) -> httpx.AsyncClient:
        """An HTTP client for the API server carrying these credentials (refreshed per request)."""
        cfg = self.configuration
        verify: ssl.SSLContext | bool = False
        if cfg.verify_ssl:
            verify = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
            if cfg.cert_file:
                verify.load_cert_chain(cfg.cert_file, cfg.key_file)
        return httpx.AsyncClient(
            base_url=self.host,
            auth=_KubeAuth(cfg),
            verify=verify,
            proxy=cfg.proxy or None,
            timeout=timeout,
            headers={"User-Agent": user_agent, "Accept": "application/json"},
        )


async def get_json(
    client: httpx.AsyncClient,
    path: str,
    params: Mapping[str, str] | None = None,
    *,
    accept: str | None = None,
) -> dict[str, Any]:
    headers = {"Accept": accept} if accept else None
    try:
        response = await client.get(path, params=params, headers=headers)
    except httpx.HTTPError as exc:  # no answer: name the server, as kubectl does
        server = str(client.base_url).rstrip("/")
        raise ReadError(0, f"{server} did not answer: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400:
        raise ReadError(response.status_code, _status_message(response))
    try:
        body = response.json()
    except ValueError as exc:
        raise ReadError(response.status_code, "the answer is not JSON") from exc
    if not isinstance(body, dict):
        raise ReadError(response.status_code, "the answer is not a JSON object")
    return body


async def _service_port(
    client: httpx.AsyncClient, namespace: str, service: str, port_name: str
) -> str:
    """The port of a custom governing Service that leads to Prometheus's `port_name`."""
    try:
        body = await get_json(client, f"/api/v1/namespaces/{namespace}/services/{service}")
    except ReadError:
        return port_name  # the proxy call will say what is wrong
    ports = [p for p in (body.get("spec") or {}).get("ports") or [] if isinstance(p, Mapping)]
    for port in ports:
        if port.get("targetPort") == port_name or port.get("name") == port_name:
            return str(port.get("name") or port.get("port"))
    for port in ports:
        if port.get("port") == PROMETHEUS_PORT or port.get("targetPort") == PROMETHEUS_PORT:
            return str(port.get("name") or port.get("port"))
    return port_name


def _shared(prometheus: Mapping[str, Any], every: Iterable[Mapping[str, Any]]) -> int:
    """How many Prometheus objects answer behind the same default governing Service."""
    namespace = (prometheus.get("metadata") or {}).get("namespace")
    return sum(
        1
        for p in every
        if (p.get("metadata") or {}).get("namespace") == namespace
        and not (p.get("spec") or {}).get("serviceName")
    )


def proxy_path(prometheus: Mapping[str, Any], port: str | None = None) -> str:
    """The API server path under which Prometheus object `prometheus` answers its HTTP API.

    `/api/v1/namespaces/NS/services/[https:]SERVICE:PORT/proxy[ROUTE_PREFIX]`: the
    Service is prometheus-operator's governing one (`spec.serviceName`, else
    `prometheus-operated`), the port `spec.portName` (`web` by default) unless
    `port` names the custom Service's; https when `spec.web.tlsConfig` is set; the
    path starts with `spec.routePrefix`. Append `/api/v1/targets` and so on.
    """
    meta = prometheus.get("metadata") or {}
    spec = prometheus.get("spec") or {}
    service = str(spec.get("serviceName") or GOVERNING_SERVICE)
    port = port or str(spec.get("portName") or DEFAULT_PORT_NAME)
    scheme = "https" if (spec.get("web") or {}).get("tlsConfig") else ""
    ident = f"{scheme}:{service}:{port}" if scheme else f"{service}:{port}"
    prefix = str(spec.get("routePrefix") or "/").rstrip("/")
    return f"/api/v1/namespaces/{meta.get('namespace')}/services/{ident}/proxy{prefix}"


@dataclass(frozen=True)
class PrometheusPlace:
    """Where one Prometheus object answers through the API server, and what qualifies it.

    `path` is `proxy_path` (append `/api/v1/targets`); `namespace`/`service` the Service
    it is asked through; `notes` say when the answer may be another's or a shard's.
    """

    prometheus: str  # namespace/name
    path: str
    namespace: str
    service: str
    notes: tuple[str, ...] = ()


async def locate_prometheus(
    client: httpx.AsyncClient,
    prometheus: Mapping[str, Any],
    every: Iterable[Mapping[str, Any]],
) -> PrometheusPlace:
    """Where Prometheus object `prometheus` answers (a GET of its Service with spec.serviceName).

    `every` is every Prometheus object: those sharing its governing Service make
    the answer ambiguous, which the notes say (as they say a sharded one).
    """
    meta = prometheus.get("metadata") or {}
    spec = prometheus.get("spec") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    notes: list[str] = []
    port = None
    service = str(spec.get("serviceName") or GOVERNING_SERVICE)
    if spec.get("serviceName"):
        port_name = str(spec.get("portName") or DEFAULT_PORT_NAME)
        port = await _service_port(client, namespace, service, port_name)
    else:
        shared = _shared(prometheus, every)
        if shared > 1:
            notes.append(
                f"asked through {service}, which serves all {shared} Prometheus of namespace"
                f" {namespace}: the answer may be another's; use --prometheus-url to choose"
            )
    shards = spec.get("shards")
    if isinstance(shards, int) and shards > 1:
        notes.append(f"{shards} shards: one shard answered, with its part of the targets")
    return PrometheusPlace(
        f"{namespace}/{name}", proxy_path(prometheus, port), namespace, service, tuple(notes)
    )


def _status_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, Mapping) and body.get("message"):
        return str(body["message"])
    return response.reason_phrase
