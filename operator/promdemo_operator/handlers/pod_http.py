"""The HTTP client every heal loop shares: one per process, built on first use.

Each heal loop used to build its own client (a TLS context and a connection pool
each, ~1 MiB and ~40 ms of CPU). Here there is one `heal.podhttp.PodHttp` (an
aiohttp session with one bounded pool, reads capped on their decoded size),
built on kopf's event loop by the first heal loop that needs it and closed at
the operator's cleanup. It reaches pods by IP over plain http (podAccess
`podIP`) and through the API server's pod proxy (`apiProxy`): only requests
under the API server's URL carry the kubeconfig's credentials, and its TLS
context is built at the first proxied request, so an in-cluster operator that
reaches pods by IP never builds one.
"""

from __future__ import annotations

from promdemo_operator.heal.podhttp import ApiServerAuth, PodHttp
from promdemo_operator.kube import Kube

#: Timeout of one request to a pod (connect to last byte), seconds.
POD_TIMEOUT_SECONDS = 2.0
#: Requests in flight in the whole process: enough for every pod of a large demo
#: in one check (each engine takes at most its own share, 64 by default).
POOL_CONNECTIONS = 128


class PodHttpClients:
    """The process's pod client (see the module docstring)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._client: PodHttp | None = None

    def _shared(self) -> PodHttp:
        if self._client is None:
            # The one HTTP client of all heal loops is built here.
            auth = ApiServerAuth.from_kube_configuration(self.kube.api.configuration)
            self._client = PodHttp(max_connections=POOL_CONNECTIONS, api_server=auth)
        return self._client

    def direct(self) -> PodHttp:
        """The client for pod IPs (plain http)."""
        return self._shared()

    def proxy(self) -> tuple[PodHttp, str]:
        """The client for the API server's pod proxy, and the API server's URL."""
        client = self._shared()
        assert client.api_server_url is not None
        return client, client.api_server_url

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        self._client = None
