"""kube-proxy's part for one port of one Service, for the cluster tier (which has no
kube-proxy: Service cluster IPs lead nowhere).

`ServiceProxy(cp, namespace, service, port_name)` listens on 127.0.0.1 and sends each new
TCP connection to one of the Service's *ready* endpoints, read from its EndpointSlices
at that moment, as kube-proxy does: a connection is balanced once and then kept (every
request on a kept-alive connection goes to the same pod). The choice is round robin
over the endpoints sorted by address (IPVS's `rr`; iptables mode picks at random), and
`send_next_to(ip)` makes the next connection go to a given endpoint, so a test can put
the case it is about (a standby's answer) first instead of waiting for chance.
`connections` lists the endpoint of each connection, in order.
"""

from __future__ import annotations

import socket
import threading
import urllib.parse

from tests.support.controlplane import ControlPlane
from tests.support.relay import Relay


class ServiceProxy(Relay):
    """A listener on 127.0.0.1 balancing connections over a Service port's ready endpoints."""

    #: A forwarded connection idle this long is closed (the proxy holds nothing for ever).
    idle_seconds = 60.0

    def __init__(self, cp: ControlPlane, namespace: str, service: str, port_name: str) -> None:
        super().__init__("127.0.0.1", name="service-proxy")
        self.cp = cp
        self.namespace = namespace
        self.service = service
        self.port_name = port_name
        self.connections: list[str] = []
        self._next = 0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def endpoints(self) -> list[tuple[str, int]]:
        """The ready endpoints (address, port) of the Service's port, sorted by address."""
        selector = urllib.parse.quote(f"kubernetes.io/service-name={self.service}")
        slices = self.cp.request(
            "GET",
            f"/apis/discovery.k8s.io/v1/namespaces/{self.namespace}/endpointslices"
            f"?labelSelector={selector}",
            timeout=5,
        )
        found = set()
        for item in slices.get("items") or []:
            ports = [p["port"] for p in item.get("ports") or [] if p.get("name") == self.port_name]
            for endpoint in item.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready") is False:
                    continue
                found.update((address, port) for address in endpoint["addresses"] for port in ports)
        return sorted(found)

    def send_next_to(self, address: str) -> None:
        """The next connection goes to the endpoint at `address` (then round robin on)."""
        with self._lock:
            addresses = [a for a, _ in self.endpoints()]
            self._next = addresses.index(address)

    def _pick(self) -> tuple[str, int] | None:
        endpoints = self.endpoints()
        if not endpoints:
            return None
        with self._lock:
            chosen = endpoints[self._next % len(endpoints)]
            self._next += 1
            self.connections.append(chosen[0])
        return chosen

    def _forward(self, client: socket.socket) -> None:
        try:
            target = self._pick()
        except OSError:
            target = None
        if target is None:
            return  # no ready endpoint: the connection is closed, as kube-proxy rejects it
        self.relay(client, target)
