"""The HTTP clients every heal loop shares: one per way of reaching pods, one per process.

Each heal loop used to build its own client (a TLS context and a connection pool
each, ~1 MiB and ~40 ms of CPU). Here there are at most two, built on first use
on kopf's event loop and closed at the operator's cleanup:

- `direct()`: pod IPs over plain http (podAccess `podIP`). No CA bundle is loaded
  (pods answer plain http); connections are kept alive between checks, so a pod is
  read over the same connection every interval;
- `proxy()`: the API server's pod proxy (podAccess `apiProxy`), carrying the
  kubeconfig's credentials (token or client certificate) and its CA.

Both have a bounded pool (`POOL_CONNECTIONS`). Each `HealEngine` gets one of them
as `client=`; the engine does not close a client it was given.
"""

from __future__ import annotations

import ssl

import httpx

from promdemo_operator.kube import Kube

#: Timeout of one request to a pod (connect, read, write, pool), seconds.
POD_TIMEOUT_SECONDS = 2.0
#: Connections kept per client: enough for every pod of a large demo in one check.
POOL_CONNECTIONS = 128
#: Idle connections live longer than the longest usual interval, so checks reuse them.
KEEPALIVE_SECONDS = 60.0


def _limits() -> httpx.Limits:
    return httpx.Limits(
        max_connections=POOL_CONNECTIONS,
        max_keepalive_connections=POOL_CONNECTIONS,
        keepalive_expiry=KEEPALIVE_SECONDS,
    )


def proxy_auth(kube: Kube) -> tuple[dict[str, str], ssl.SSLContext | bool, str]:
    """Headers, TLS settings and the URL of the API server, from the client's configuration."""
    cfg = kube.api.configuration
    if cfg.refresh_api_key_hook is not None:
        cfg.refresh_api_key_hook(cfg)
    headers = {}
    auth = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
        "authorization"
    )
    if auth:
        headers["Authorization"] = auth if " " in auth else f"Bearer {auth}"
    verify: ssl.SSLContext | bool = False
    if cfg.verify_ssl:
        verify = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
    if cfg.cert_file:
        if not isinstance(verify, ssl.SSLContext):
            verify = ssl.create_default_context()
            verify.check_hostname = False
            verify.verify_mode = ssl.CERT_NONE
        verify.load_cert_chain(cfg.cert_file, cfg.key_file)
    return headers, verify, cfg.host


class PodHttpClients:
    """The process's pod clients (see the module docstring)."""

    def __init__(self, kube: Kube, *, timeout: float = POD_TIMEOUT_SECONDS) -> None:
        self.kube = kube
        self.timeout = timeout
        self._direct: httpx.AsyncClient | None = None
        self._proxy: httpx.AsyncClient | None = None
        self._api_server: str | None = None

    def direct(self) -> httpx.AsyncClient:
        """The client for pod IPs (plain http), built once."""
        if self._direct is None:
            # The shared HTTP client of the heal loops (podIP access) is built here.
            # verify=False: pods answer plain http, so no CA bundle is loaded for nothing.
            self._direct = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                limits=_limits(),
                verify=False,  # noqa: S501 - plain http only, see above
            )
        return self._direct

    def proxy(self) -> tuple[httpx.AsyncClient, str]:
        """The client for the API server's pod proxy, and the API server's URL; built once."""
        if self._proxy is None:
            headers, verify, host = proxy_auth(self.kube)
            self._proxy = httpx.AsyncClient(
                headers=headers,
                verify=verify,
                timeout=httpx.Timeout(self.timeout),
                limits=_limits(),
            )
            self._api_server = host
        assert self._api_server is not None
        return self._proxy, self._api_server

    async def aclose(self) -> None:
        for client in (self._direct, self._proxy):
            if client is not None:
                await client.aclose()
        self._direct = self._proxy = None
