"""The emulated API server's service proxy forwards to real processes, as kube-apiserver does.

`GET /api/v1/namespaces/NS/services/[SCHEME:]NAME[:PORT]/proxy/PATH` reaches the
process a test routed the Service's port to (`KmockCluster.route_service`), and every
answer without one is the API server's own (kube-apiserver's service REST storage,
`ResourceLocation`): the status code, reason and message a client sees. The backend
is a recording HTTP server (what was forwarded, exactly) and, for the path a
Prometheus client takes, a real Prometheus.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from tests.support.kmock_cluster import (
    SERVICES,
    ApiCall,
    KmockCluster,
    service_proxy_path,
)
from tests.support.ports import free_port
from tests.support.prometheus import run_prometheus

pytestmark = pytest.mark.operator

NS = "monitoring"
SERVICE = "prometheus-operated"


class Recorder:
    """An HTTP server on 127.0.0.1 that answers every request with what it received."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": self.rfile.read(length).decode() if length else "",
                }
                recorder.seen.append(seen)
                status = 418 if self.path.startswith("/teapot") else 200
                body = json.dumps(seen).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmockCluster]:
    with KmockCluster(
        tmp_path_factory.mktemp("proxy"), namespaces=(NS,), prometheus=True
    ) as cluster:
        yield cluster


@pytest.fixture
def backend(cluster: KmockCluster) -> Iterator[Recorder]:
    """The governing Service of a Prometheus, its `web` port routed to a recorder."""
    recorder = Recorder()
    if cluster.get(SERVICES, NS, SERVICE) is None:
        cluster.add_prometheus(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "Prometheus",
                "metadata": {"name": "k8s", "namespace": NS},
                "spec": {"serviceMonitorSelector": {}},
            }
        )
    cluster.route_service(NS, SERVICE, "web", recorder.url)
    yield recorder
    cluster.unroute_service(NS, SERVICE)
    recorder.close()


def proxy_calls(cluster: KmockCluster) -> list[ApiCall]:
    return [c for c in cluster.api_calls() if c.resource == "services/proxy"]


def status_of(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert body["kind"] == "Status", body
    return response.status_code, body["reason"], body["message"]


def test_a_get_is_forwarded_with_its_path_and_query_and_answered_as_the_process_answers(
    cluster: KmockCluster, backend: Recorder
) -> None:
    path = service_proxy_path(NS, SERVICE, "web") + "/api/v1/targets"
    response = cluster.request("GET", path, params={"state": "active", "q": 'up{job="a b"}'})
    assert response.status_code == 200
    seen = response.json()
    assert seen["method"] == "GET"
    # The query arrives as sent (httpx spells a space "+" or "%20" by version: compare decoded).
    path_seen, _, query_seen = seen["path"].partition("?")
    assert path_seen == "/api/v1/targets"
    assert parse_qsl(query_seen) == [("state", "active"), ("q", 'up{job="a b"}')]
    # The client's credentials stay with the API server.
    assert "authorization" not in seen["headers"]
    calls = proxy_calls(cluster)
    assert calls[-1].rbac_key == ("", "services/proxy", "get")
    assert (calls[-1].namespace, calls[-1].name) == (NS, f"{SERVICE}:web")


@pytest.mark.parametrize(
    "ident",
    [f"{SERVICE}:web", f"http:{SERVICE}:web", f"{SERVICE}:9090", f"http:{SERVICE}:9090"],
)
def test_every_form_of_the_service_id_reaches_the_port(
    cluster: KmockCluster, backend: Recorder, ident: str
) -> None:
    response = cluster.request("GET", f"/api/v1/namespaces/{NS}/services/{ident}/proxy/x")
    assert response.status_code == 200, response.text
    assert response.json()["path"] == "/x"


def test_a_post_is_forwarded_with_its_body_and_recorded_as_create(
    cluster: KmockCluster, backend: Recorder
) -> None:
    path = service_proxy_path(NS, SERVICE, "web") + "/-/reload"
    response = cluster.request("POST", path, content=b'{"a": 1}')
    assert response.status_code == 200
    assert response.json()["body"] == '{"a": 1}'
    assert proxy_calls(cluster)[-1].rbac_key == ("", "services/proxy", "create")


def test_an_error_status_of_the_process_comes_back_as_it_is(
    cluster: KmockCluster, backend: Recorder
) -> None:
    response = cluster.request("GET", service_proxy_path(NS, SERVICE, "web") + "/teapot")
    assert response.status_code == 418
    assert response.json()["path"] == "/teapot"
    # The process's answer, not a refusal of the API server.
    assert not any("teapot" in r.path for r in cluster.refusals())


def test_a_request_without_the_token_is_401_and_never_forwarded(
    cluster: KmockCluster, backend: Recorder
) -> None:
    url = cluster.url + service_proxy_path(NS, SERVICE, "web") + "/api/v1/targets"
    response = httpx.get(url, timeout=10)
    assert response.status_code == 401
    assert backend.seen == []


def test_a_service_without_endpoints_is_503(cluster: KmockCluster, backend: Recorder) -> None:
    cluster.unroute_service(NS, SERVICE)
    response = cluster.request("GET", service_proxy_path(NS, SERVICE, "web") + "/api/v1/rules")
    assert status_of(response) == (
        503,
        "ServiceUnavailable",
        f'no endpoints available for service "{SERVICE}"',
    )
    assert backend.seen == []
    # Still a request on services/proxy for RBAC: authorization comes before the lookup.
    assert proxy_calls(cluster)[-1].rbac_key == ("", "services/proxy", "get")


def test_a_port_the_endpoints_do_not_have_is_503_naming_the_id(
    cluster: KmockCluster, backend: Recorder
) -> None:
    response = cluster.request("GET", service_proxy_path(NS, SERVICE, "http-web") + "/")
    assert status_of(response) == (
        503,
        "ServiceUnavailable",
        f'no endpoints available for service "{SERVICE}:http-web"',
    )


def test_a_port_number_the_service_does_not_have_is_503(
    cluster: KmockCluster, backend: Recorder
) -> None:
    response = cluster.request("GET", service_proxy_path(NS, SERVICE, 8080) + "/")
    assert status_of(response) == (
        503,
        "ServiceUnavailable",
        f'no service port 8080 found for service "{SERVICE}"',
    )


def test_a_missing_service_is_404_as_the_server_words_it(cluster: KmockCluster) -> None:
    # A named port: the server reads the Endpoints object; a number: the Service.
    named = cluster.request("GET", service_proxy_path(NS, "nothing", "web") + "/")
    assert status_of(named) == (404, "NotFound", 'endpoints "nothing" not found')
    numbered = cluster.request("GET", service_proxy_path(NS, "nothing", 9090) + "/")
    assert status_of(numbered) == (404, "NotFound", 'services "nothing" not found')


@pytest.mark.parametrize("ident", [f"ftp:{SERVICE}:web", f"a:{SERVICE}:web:x", ":web"])
def test_an_id_the_server_cannot_read_is_400(cluster: KmockCluster, ident: str) -> None:
    response = cluster.request("GET", f"/api/v1/namespaces/{NS}/services/{ident}/proxy/")
    assert status_of(response) == (400, "BadRequest", f'invalid service request "{ident}"')


def test_a_process_that_does_not_answer_is_503_error_trying_to_reach_service(
    cluster: KmockCluster, backend: Recorder
) -> None:
    cluster.route_service(NS, SERVICE, "web", f"http://127.0.0.1:{free_port()}")
    code, reason, message = status_of(
        cluster.request("GET", service_proxy_path(NS, SERVICE, "web") + "/")
    )
    assert (code, reason) == (503, "ServiceUnavailable")
    assert message.startswith("error trying to reach service: ")


def test_https_to_a_plain_http_process_fails_as_a_tls_handshake_would(
    cluster: KmockCluster, backend: Recorder
) -> None:
    response = cluster.request("GET", service_proxy_path(NS, SERVICE, "web", scheme="https") + "/")
    code, reason, message = status_of(response)
    assert (code, reason) == (503, "ServiceUnavailable")
    assert message.startswith("error trying to reach service: ")
    assert backend.seen == []  # a TLS handshake is no HTTP request


def test_a_real_prometheus_answers_its_api_through_the_proxy(
    cluster: KmockCluster, tmp_path: Path
) -> None:
    with run_prometheus(tmp_path / "prom", [], wait_up=False) as prom:
        cluster.route_service(NS, SERVICE, 9090, prom.url)
        try:
            base = service_proxy_path(NS, SERVICE, "web")
            response = cluster.request("GET", base + "/api/v1/status/buildinfo")
            assert response.status_code == 200
            assert response.json()["status"] == "success"
            assert response.json()["data"]["version"].startswith("2.")
            bad = cluster.request("GET", base + "/api/v1/query", params={"query": "sum("})
            assert bad.status_code == 400
            assert bad.json()["errorType"] == "bad_data"
        finally:
            cluster.unroute_service(NS, SERVICE)
