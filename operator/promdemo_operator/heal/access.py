"""How the heal engine reaches a pod: by its IP, or through the API server's pod proxy.

Pure string work, no Kubernetes client: the adapter gives pod names, IPs and the
API server's address; the engine only ever sees a base URL per pod.

* `podIP` — ``http://<status.podIP>:<port>``: the operator runs in the cluster
  (pod IPs are routable from it).
* `apiProxy` — ``<api-server>/api/v1/namespaces/<ns>/pods/<name>:<port>/proxy``:
  the operator runs outside (``promdemo operator`` on a laptop against kind) and
  the API server forwards. The HTTP client must then carry the API server's
  credentials, and the API server strips the caller's ``Authorization`` header
  before forwarding, so the reset token travels in `PROXY_TOKEN_HEADER` too.
* `auto` — `podIP` when running in a cluster (``KUBERNETES_SERVICE_HOST`` is set,
  as the kubelet does in every pod), `apiProxy` otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote

POD_IP = "podIP"
API_PROXY = "apiProxy"
AUTO = "auto"
MODES = (AUTO, POD_IP, API_PROXY)

# The app's reset token header when `Authorization` cannot reach it (pod proxy).
PROXY_TOKEN_HEADER = "X-Promdemo-Reset-Token"  # noqa: S105 - a header name

DEFAULT_APP_PORT = 8080


def resolve_access(mode: str | None, environ: Mapping[str, str] | None = None) -> str:
    """`podIP` or `apiProxy` for a `spec.autoHeal.podAccess` value (`auto` decides by env)."""
    mode = mode or AUTO
    if mode not in MODES:
        raise ValueError(f"podAccess must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != AUTO:
        return mode
    env = os.environ if environ is None else environ
    return POD_IP if env.get("KUBERNETES_SERVICE_HOST") else API_PROXY


def pod_ip_url(pod_ip: str, port: int = DEFAULT_APP_PORT, scheme: str = "http") -> str:
    """Base URL of a pod reached directly by IP (IPv6 addresses get brackets)."""
    host = f"[{pod_ip}]" if ":" in pod_ip and not pod_ip.startswith("[") else pod_ip
    return f"{scheme}://{host}:{port}"


def pod_proxy_url(
    api_server: str, namespace: str, pod: str, port: int | str = DEFAULT_APP_PORT
) -> str:
    """Base URL of a pod through the API server: ``…/pods/<name>:<port>/proxy``."""
    base = api_server.rstrip("/")
    ns = quote(namespace, safe="")
    name = quote(f"{pod}:{port}", safe=":")
    return f"{base}/api/v1/namespaces/{ns}/pods/{name}/proxy"


def pod_base_url(
    access: str,
    *,
    namespace: str,
    pod: str,
    pod_ip: str | None,
    port: int = DEFAULT_APP_PORT,
    api_server: str | None = None,
) -> str | None:
    """The base URL for one pod under a resolved `access`; None when it cannot be reached."""
    if access == POD_IP:
        return pod_ip_url(pod_ip, port) if pod_ip else None
    if access == API_PROXY:
        if not api_server:
            raise ValueError("apiProxy access needs the API server's address")
        return pod_proxy_url(api_server, namespace, pod, port)
    raise ValueError(f"unresolved access mode {access!r} (call resolve_access first)")
