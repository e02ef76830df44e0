"""Read what `promdemo doctor` needs from the API server, and ask each selecting Prometheus.

Credentials are found as kubectl finds them: `--kubeconfig`, else `$KUBECONFIG`,
else `~/.kube/config`, else the pod's service account (in-cluster). The
`kubernetes` package reads them (contexts, client certificates, exec plugins,
token refresh); one `httpx.AsyncClient` then carries them for every request, the
object reads and the service proxy alike, so that they run concurrently.

What one run reads (the user needs these verbs; docs/selection.md lists them):

- `GET /apis/monitoring.coreos.com/v1` (discovery: are the CRDs installed?);
- PromDemos: list in the namespace (or every namespace), or get one by name;
- its children, by the label every child carries: list Deployments (whole
  objects: replicas) and Services, Secrets, ServiceMonitors, PrometheusRules as
  metadata only (`PartialObjectMetadataList`: no Secret data is fetched);
- Prometheus objects: list in every namespace; namespaces: get (or list);
- per Prometheus that selects at least one PromDemo: `GET .../services/
  prometheus-operated:web/proxy/api/v1/targets` and `.../api/v1/rules`, whatever
  the number of PromDemos (plus a get of its Service when `spec.serviceName` is set).

A read the user may not make (403) is a fact to report, not an error: the
children of that kind are "not checked". Only the PromDemos themselves must be
readable (`ReadError` otherwise).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from promdemo_operator.core.names import (
    GROUP,
    MANAGED_BY,
    MONITORING_GROUP,
    MONITORING_VERSION,
    PLURAL,
    VERSION,
)
from promdemo_operator.prometheus.chain import PROMETHEUS, ClusterFacts, PrometheusAnswer
from promdemo_operator.prometheus.client import PrometheusAPI
from promdemo_operator.prometheus.parse import PromAPIError
from promdemo_operator.runtime.apiserver import (
    Connection,
    PrometheusPlace,
    ReadError,
    get_json,
    locate_prometheus,
    proxy_path,
)

__all__ = [
    "Connection",
    "CredentialsError",
    "PrometheusPlace",
    "ReadError",
    "ask_prometheus",
    "ask_url",
    "connect",
    "kubeconfig_namespace",
    "locate_prometheus",
    "proxy_path",
    "read_facts",
]

#: The service account's namespace in a pod (in-cluster credentials).
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
#: Metadata only (kube-apiserver's partial object metadata), or the whole list.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"
CHILD_SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"

#: kind → (API path prefix, plural, metadata only?) of the children.
CHILDREN: dict[str, tuple[str, str, bool]] = {
    "Deployment": ("/apis/apps/v1", "deployments", False),
    "Service": ("/api/v1", "services", True),
    "Secret": ("/api/v1", "secrets", True),
    "ServiceMonitor": (f"/apis/{MONITORING_GROUP}/{MONITORING_VERSION}", "servicemonitors", True),
    "PrometheusRule": (f"/apis/{MONITORING_GROUP}/{MONITORING_VERSION}", "prometheusrules", True),
}
MONITORING = f"/apis/{MONITORING_GROUP}/{MONITORING_VERSION}"
PROMDEMOS = f"/apis/{GROUP}/{VERSION}"


class CredentialsError(Exception):
    """No usable kubeconfig or in-cluster credentials; one line."""


# --------------------------------------------------------------------------- credentials


def _kubeconfig_files(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    from_env = os.environ.get("KUBECONFIG", "")
    if any(Path(p).is_file() for p in from_env.split(os.pathsep) if p):
        return from_env
    home = Path.home() / ".kube" / "config"
    return str(home) if home.is_file() else None


#: What reading a kubeconfig raises: the client's own error, an unreadable file, text
#: that is no YAML, YAML that is no kubeconfig.
_KUBECONFIG_ERRORS = (
    k8s_config.ConfigException,
    OSError,
    ValueError,
    TypeError,
    AttributeError,
    KeyError,
    yaml.YAMLError,
)


def _one_line(where: str, exc: BaseException) -> CredentialsError:
    if isinstance(exc, k8s_config.ConfigException):
        return CredentialsError(f"{where}: {exc}")
    text = " ".join(str(exc).split())  # one line, whatever the parser's message
    return CredentialsError(f"{where}: {type(exc).__name__}: {text}")


def connect(kubeconfig: str | None = None, context: str | None = None) -> Connection:
    """The connection kubectl would use; CredentialsError (one line) when there is none."""
    configuration = k8s_client.Configuration()
    files = _kubeconfig_files(kubeconfig)
    if files is None and context:
        raise CredentialsError(f"--context {context}: no kubeconfig to find it in")
    try:
        if files is not None:
            k8s_config.load_kube_config(
                config_file=files,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
            namespace = _context_namespace(files, context)
        else:
            k8s_config.load_incluster_config(client_configuration=configuration)
            namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except k8s_config.ConfigException as exc:
        if files is None:
            raise CredentialsError(
                "no kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not in a cluster"
            ) from exc
        raise _one_line(files, exc) from exc
    except _KUBECONFIG_ERRORS as exc:
        raise _one_line(files or "in-cluster", exc) from exc
    return Connection(configuration.host.rstrip("/"), namespace, configuration)


def _context_namespace(files: str, context: str | None) -> str:
    """The namespace of the context `context` (default: the current one) of the
    kubeconfig `files` ("default" when it names none), as kubectl reads it."""
    contexts, active = k8s_config.list_kube_config_contexts(config_file=files)
    chosen = next((c for c in contexts if c.get("name") == context), active) or {}
    if context and chosen.get("name") != context:
        raise k8s_config.ConfigException(f"context {context!r} is not in the kubeconfig")
    return (chosen.get("context") or {}).get("namespace") or "default"


def kubeconfig_namespace(kubeconfig: str | None = None, context: str | None = None) -> str | None:
    """The namespace kubectl would use for a namespace-less object: the kubeconfig
    context's (`--kubeconfig`, else $KUBECONFIG, else ~/.kube/config; `--context`,
    else the current one), "default" when the context names none. Reads the contexts
    only: no credentials are loaded, no exec plugin runs. None when there is no
    kubeconfig; CredentialsError (one line) when it cannot be read or lacks `context`.
    """
    files = _kubeconfig_files(kubeconfig)
    if files is None:
        if context:
            raise CredentialsError(f"--context {context}: no kubeconfig to find it in")
        return None
    try:
        return _context_namespace(files, context)
    except _KUBECONFIG_ERRORS as exc:
        raise _one_line(files, exc) from exc


# --------------------------------------------------------------------------- reads


def _scoped(prefix: str, plural: str, namespace: str | None) -> str:
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"


def _why(error: ReadError) -> str:
    return {401: "unauthorized", 403: "forbidden"}.get(error.status, str(error))


async def _monitoring_kinds(client: httpx.AsyncClient) -> frozenset[str]:
    try:
        body = await get_json(client, MONITORING)
    except ReadError as exc:
        if exc.status == 404:
            return frozenset()
        raise
    return frozenset(
        str(r.get("kind"))
        for r in body.get("resources") or []
        if isinstance(r, Mapping) and "/" not in str(r.get("name", ""))
    )


async def read_lease(
    client: httpx.AsyncClient, namespace: str, name: str
) -> tuple[dict[str, Any] | None, str | None]:
    """The operator's leader-election Lease (None when there is none), or why it is unreadable."""
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
    try:
        return await get_json(client, path), None
    except ReadError as exc:
        if exc.status == 404:
            return None, None
        return None, _why(exc)


async def _promdemos(
    client: httpx.AsyncClient, namespace: str | None, name: str | None
) -> list[dict[str, Any]]:
    if name is not None:
        try:
            return [await get_json(client, f"{_scoped(PROMDEMOS, PLURAL, namespace)}/{name}")]
        except ReadError as exc:
            if exc.status == 404:
                return []
            raise
    return list((await get_json(client, _scoped(PROMDEMOS, PLURAL, namespace))).get("items") or [])


async def _children(
    client: httpx.AsyncClient, namespace: str | None, served: frozenset[str]
) -> tuple[dict[tuple[str, str, str], dict[str, Any]], dict[str, str]]:
    kinds = [k for k in CHILDREN if k in ("Deployment", "Service", "Secret") or k in served]

    async def one(kind: str) -> list[dict[str, Any]]:
        prefix, plural, metadata_only = CHILDREN[kind]
        body = await get_json(
            client,
            _scoped(prefix, plural, namespace),
            {"labelSelector": CHILD_SELECTOR},
            accept=METADATA_ONLY if metadata_only else None,
        )
        return list(body.get("items") or [])

    results = await asyncio.gather(*(one(k) for k in kinds), return_exceptions=True)
    objects: dict[tuple[str, str, str], dict[str, Any]] = {}
    unreadable: dict[str, str] = {}
    for kind, result in zip(kinds, results, strict=True):
        if isinstance(result, ReadError):
            unreadable[kind] = _why(result)
            continue
        if isinstance(result, BaseException):
            raise result
        for item in result:
            meta = item.get("metadata") or {}
            objects[(kind, str(meta.get("namespace")), str(meta.get("name")))] = item
    return objects, unreadable


async def _prometheuses(
    client: httpx.AsyncClient, served: frozenset[str]
) -> tuple[list[dict[str, Any]] | None, str | None]:
    if PROMETHEUS not in served:
        return [], None
    try:
        body = await get_json(client, f"{MONITORING}/prometheuses")
    except ReadError as exc:
        return None, _why(exc)
    return list(body.get("items") or []), None


async def _namespace_labels(
    client: httpx.AsyncClient, names: Iterable[str], every: bool
) -> tuple[dict[str, dict[str, str]], str | None]:
    """Labels of the namespaces `names` (one list when `every`, else one get each)."""
    names = sorted(set(names))
    try:
        if every:
            items = (await get_json(client, "/api/v1/namespaces")).get("items") or []
        else:
            items = await asyncio.gather(
                *(get_json(client, f"/api/v1/namespaces/{n}") for n in names)
            )
    except ReadError as exc:
        return {}, _why(exc)
    labels = {}
    for item in items:
        meta = item.get("metadata") or {}
        labels[str(meta.get("name"))] = {
            str(k): str(v) for k, v in (meta.get("labels") or {}).items()
        }
    return labels, None


async def read_facts(
    client: httpx.AsyncClient, namespace: str | None, name: str | None
) -> ClusterFacts:
    """Every object the chains need; `namespace` None reads every namespace.

    ReadError when the PromDemos cannot be read (or discovery fails but for 404).
    """
    served, promdemos = await asyncio.gather(
        _monitoring_kinds(client), _promdemos(client, namespace, name)
    )
    children, (prometheuses, prom_why), (labels, ns_why) = await asyncio.gather(
        _children(client, namespace, served),
        _prometheuses(client, served),
        _namespace_labels(
            client,
            [str((pd.get("metadata") or {}).get("namespace")) for pd in promdemos],
            every=namespace is None,
        ),
    )
    objects, unreadable = children
    if prom_why is not None:
        unreadable[PROMETHEUS] = prom_why
    if ns_why is not None:
        unreadable["Namespace"] = ns_why
    return ClusterFacts(
        promdemos=promdemos,
        objects=objects,
        monitoring_kinds=served,
        prometheuses=prometheuses,
        namespace_labels=labels,
        unreadable=unreadable,
    )


# --------------------------------------------------------------------------- Prometheus


async def ask_prometheus(
    client: httpx.AsyncClient,
    prometheus: Mapping[str, Any],
    every: Iterable[Mapping[str, Any]],
    *,
    timeout: float,
) -> PrometheusAnswer:
    """GET /api/v1/targets and /api/v1/rules of one Prometheus object, through the proxy.

    `every` is every Prometheus object (see `locate_prometheus`).
    """
    place = await locate_prometheus(client, prometheus, every)
    base = str(client.base_url).rstrip("/") + place.path
    answer = await _ask(PrometheusAPI(base, client=client, timeout=timeout), place.prometheus)
    return PrometheusAnswer(
        prometheus=answer.prometheus,
        targets=answer.targets,
        rules=answer.rules,
        errors=answer.errors,
        namespace=place.namespace,
        service=place.service,
        notes=place.notes,
    )


async def ask_url(url: str, *, timeout: float) -> PrometheusAnswer:
    """GET /api/v1/targets and /api/v1/rules of the Prometheus at `url` (no Kubernetes token)."""
    async with PrometheusAPI(url, timeout=timeout) as api:
        return await _ask(api, url.rstrip("/"))


async def _ask(api: PrometheusAPI, who: str) -> PrometheusAnswer:
    targets, rules = await asyncio.gather(api.targets(), api.rules(), return_exceptions=True)
    parts: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for part, result in (("targets", targets), ("rules", rules)):
        if isinstance(result, PromAPIError):
            errors[part] = str(result)
        elif isinstance(result, BaseException):
            raise result
        else:
            parts[part] = result
    return PrometheusAnswer(prometheus=who, errors=errors, **parts)
