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

With leader election (`promdemo operator --leader-elect`) the client is fenced:
a request that changes a pod (the reset's POST) leaves the process only while
the operator's Lease is fresh (renewed within the renew deadline). A leader
stopped (SIGSTOP, a frozen VM) past its deadline sends nothing when it wakes,
even in the instant before its watchdog ends the process. And before a reset
leaves, the pod's cooldown is written to the PromDemo's status (`reset_journal.py`):
a leader killed between the two leaves the next leader that cooldown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from promdemo_operator.heal.pod_client import ApiServerAuth, PodAnswer, PodHttp, PodReadError, Sink
from promdemo_operator.runtime.kube import Kube

#: Timeout of one request to a pod (connect to last byte), seconds.
POD_TIMEOUT_SECONDS = 2.0
#: Requests in flight in the whole process: enough for every pod of a large demo
#: in one check (each engine takes at most its own share, 64 by default).
POOL_CONNECTIONS = 128


#: What the fenced client answers instead of sending (counted as a reset not sent).
NOT_LEADER = "not sent: this operator is no longer the leader (its Lease is not fresh)"


#: `await journal(url)` before a request other than GET: None to send it, else why not.
Journal = Callable[[str], Awaitable[str | None]]


class FencedPodHttp(PodHttp):
    """A `PodHttp` that sends a request other than GET only while `allowed()` says so,
    and (with a `journal`) once the journal recorded it."""

    def __init__(
        self,
        *,
        allowed: Callable[[], bool],
        on_fenced: Callable[[], None] = lambda: None,
        journal: Journal | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.allowed = allowed
        self.on_fenced = on_fenced
        self.journal = journal

    def _fence(self) -> None:
        if not self.allowed():
            self.on_fenced()
            # sent=False: the pod saw nothing (its cooldown starts only from the journal).
            raise PodReadError("unreachable", NOT_LEADER, sent=False)

    async def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
        sink: Sink | None = None,
    ) -> PodAnswer:
        if method.upper() != "GET":
            self._fence()
            if self.journal is not None:
                problem = await self.journal(url)
                if problem is not None:
                    raise PodReadError("unreachable", f"not sent: {problem}", sent=False)
                self._fence()  # the write may have outlasted the Lease
        return await super().request(
            method, url, timeout=timeout, max_bytes=max_bytes, headers=headers, sink=sink
        )


class PodHttpClients:
    """The process's pod client (see the module docstring).

    `fence`: with leader election, the question asked before each reset is sent
    (True while the Lease is fresh); `on_fenced` counts the ones not sent;
    `journal` records the reset's cooldown before it is sent (`reset_journal.py`).
    """

    def __init__(
        self,
        kube: Kube,
        *,
        fence: Callable[[], bool] | None = None,
        on_fenced: Callable[[], None] = lambda: None,
        journal: Journal | None = None,
    ) -> None:
        self.kube = kube
        self.fence = fence
        self.on_fenced = on_fenced
        self.journal = journal
        self._client: PodHttp | None = None

    def _shared(self) -> PodHttp:
        if self._client is None:
            # The one HTTP client of all heal loops is built here.
            auth = ApiServerAuth.from_kube_configuration(self.kube.api.configuration)
            if self.fence is None:
                self._client = PodHttp(max_connections=POOL_CONNECTIONS, api_server=auth)
            else:
                self._client = FencedPodHttp(
                    allowed=self.fence,
                    on_fenced=self.on_fenced,
                    journal=self.journal,
                    max_connections=POOL_CONNECTIONS,
                    api_server=auth,
                )
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
