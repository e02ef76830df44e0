"""Every endpoint and error path of the order service, through Flask's test client."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from promdemo_app.lifecycle import Lifecycle
from promdemo_app.settings import Settings, load_settings
from promdemo_app.simulation import Simulation, SimulationConfig
from promdemo_app.web import create_app


def make_app(**overrides: object) -> Flask:
    # The simulation is off unless a test turns it on: no sleeps, no failures.
    settings = Settings(**{"simulation": False, **overrides})  # type: ignore[arg-type]
    return create_app(settings, CollectorRegistry())


def value(app: Flask, name: str, labels: dict[str, str] | None = None) -> float | None:
    registry = app.extensions["promdemo"].registry
    return registry.get_sample_value(name, labels or {})


@pytest.fixture
def app() -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def assert_json_error(response, status: int) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert isinstance(body["error"], str)
    assert body["error"]
    return body["error"]


def test_index_lists_the_endpoints(client: FlaskClient) -> None:
    body = client.get("/").get_json()
    assert body["service"] == "promdemo order service"
    assert set(body["endpoints"]) == {
        "GET /",
        "POST /order",
        "GET /inventory",
        "POST /inventory/reset",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
    }


def test_head_is_answered_like_get(client: FlaskClient) -> None:
    response = client.head("/inventory")
    assert response.status_code == 200
    assert response.data == b""


def test_order_without_a_body_succeeds_with_a_generated_id(client: FlaskClient) -> None:
    first = client.post("/order")
    second = client.post("/order")
    assert first.status_code == 200
    assert first.get_json() == {"order_id": 1, "status": "success"}
    assert second.get_json()["order_id"] == 2


def test_order_echoes_the_given_id(client: FlaskClient) -> None:
    response = client.post("/order", json={"order_id": 42, "user_id": 7, "amount": 19.99})
    assert response.get_json() == {"order_id": 42, "status": "success"}


def test_body_is_read_whatever_the_content_type(client: FlaskClient) -> None:
    # curl -d sends application/x-www-form-urlencoded.
    response = client.post("/order", data=b'{"order_id": 5}')
    assert response.get_json() == {"order_id": 5, "status": "success"}


@pytest.mark.parametrize(
    "body",
    [b"{}", b"  ", b'{"amount": 0}', b'{"amount": 1000000}', b'{"order_id": 0, "extra": 1}'],
)
def test_acceptable_bodies(client: FlaskClient, body: bytes) -> None:
    assert client.post("/order", data=body).status_code == 200


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[" * 100_00 + b"]" * 100_00, "not valid JSON"),
        (b'{"amount": NaN}', "NaN is not a JSON number"),
        (b'{"amount": Infinity}', "Infinity is not a JSON number"),
        (b"[1, 2]", "must be a JSON object, not array"),
        (b'"order"', "must be a JSON object, not string"),
        (b"42", "must be a JSON object, not number"),
        (b"null", "must be a JSON object, not null"),
        (b'{"order_id": "42"}', "order_id must be an integer"),
        (b'{"order_id": -1}', "order_id must be an integer"),
        (b'{"order_id": true}', "order_id must be an integer"),
        (b'{"order_id": 1.5}', "order_id must be an integer"),
        (b'{"order_id": 9007199254740992}', "order_id must be an integer"),
        (b'{"order_id": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"user_id": null}', "user_id must be an integer"),
        (b'{"user_id": [1]}', "user_id must be an integer"),
        (b'{"amount": "10"}', "amount must be a number"),
        (b'{"amount": -0.01}', "amount must be a number"),
        (b'{"amount": false}', "amount must be a number"),
        (b'{"amount": 1e400}', "amount must be a number"),
        (b'{"amount": 1000000.5}', "amount must be a number"),
    ],
)
def test_bad_bodies_are_400_json(client: FlaskClient, body: bytes, fragment: str) -> None:
    error = assert_json_error(client.post("/order", data=body), 400)
    assert fragment in error


def test_a_bad_body_is_not_an_order(app: Flask, client: FlaskClient) -> None:
    client.post("/order", data=b"{")
    assert value(app, "orders_total", {"result": "failed"}) == 0
    assert app.extensions["promdemo"].inventory.level == 100


def test_body_over_the_limit_is_413_json() -> None:
    client = make_app(max_body_bytes=100).test_client()
    assert client.post("/order", data=b" " * 100).status_code == 200
    error = assert_json_error(client.post("/order", data=b" " * 101), 413)
    assert "100 bytes" in error


def test_out_of_stock_is_409() -> None:
    app = make_app(initial_inventory=1)
    client = app.test_client()
    assert client.post("/order").status_code == 200
    response = client.post("/order", json={"order_id": 3})
    assert_json_error(response, 409)
    assert response.get_json()["order_id"] == 3
    assert response.get_json()["status"] == "failed"
    assert value(app, "order_failures_total", {"reason": "out_of_stock"}) == 1
    assert value(app, "orders_total", {"result": "failed"}) == 1
    assert value(app, "product_inventory") == 0


@pytest.mark.parametrize("oversell", [True, False])
def test_dependency_failure_is_502_and_keeps_the_stock(oversell: bool) -> None:
    simulation = Simulation(
        SimulationConfig(dependency_failure_rate=1.0), sleep=lambda seconds: None
    )
    settings = Settings(oversell=oversell)
    app = create_app(settings, CollectorRegistry(), simulation=simulation)
    response = app.test_client().post("/order")
    assert_json_error(response, 502)
    assert value(app, "dependency_errors_total") == 1
    assert value(app, "dependency_call_seconds_count") == 1
    assert value(app, "order_failures_total", {"reason": "dependency_error"}) == 1
    assert value(app, "orders_total", {"result": "failed"}) == 1
    assert value(app, "product_inventory") == 100
    assert app.extensions["promdemo"].inventory.level == 100


def test_inventory_follows_orders(client: FlaskClient) -> None:
    client.post("/order")
    assert client.get("/inventory").get_json() == {"inventory": 99, "initial": 100}


def test_reset_without_a_token_is_open_on_a_loopback_address() -> None:
    app = make_app(host="127.0.0.1")
    client = app.test_client()
    client.post("/order")
    assert client.post("/inventory/reset").get_json() == {"inventory": 100}
    assert value(app, "inventory_resets_total") == 1
    assert value(app, "product_inventory") == 100


def test_reset_without_a_token_on_a_public_address_is_refused_403() -> None:
    app = make_app(host="0.0.0.0")
    client = app.test_client()
    client.post("/order")
    response = client.post("/inventory/reset", headers={"Authorization": "Bearer anything"})
    error = assert_json_error(response, 403)
    assert "PROMDEMO_RESET_TOKEN" in error
    assert "PROMDEMO_RESET_OPEN=true" in error
    assert value(app, "inventory_resets_total") == 0
    assert app.extensions["promdemo"].inventory.level == 99
    labels = {"method": "POST", "route": "/inventory/reset", "status": "403"}
    assert value(app, "http_requests_total", labels) == 1


def test_reset_open_by_setting_on_a_public_address() -> None:
    app = make_app(host="0.0.0.0", reset_open=True)
    assert app.test_client().post("/inventory/reset").get_json() == {"inventory": 100}
    assert value(app, "inventory_resets_total") == 1


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong", "Bearer", "Basic czNjcmV0", "s3cret", "Bearer s3cret-and-more"],
)
def test_reset_refuses_a_missing_or_wrong_token(header: str | None) -> None:
    app = make_app(reset_token="s3cret")
    headers = {"Authorization": header} if header else {}
    response = app.test_client().post("/inventory/reset", headers=headers)
    assert_json_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert value(app, "inventory_resets_total") == 0


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_reset_with_the_right_token(scheme: str) -> None:
    app = make_app(reset_token="s3cret", initial_inventory=7)
    client = app.test_client()
    client.post("/order")
    response = client.post("/inventory/reset", headers={"Authorization": f"{scheme} s3cret"})
    assert response.status_code == 200
    assert response.get_json() == {"inventory": 7}


def test_reset_token_in_the_pod_proxy_header() -> None:
    # The API server's pod proxy drops Authorization; the operator sends this instead.
    app = make_app(reset_token="s3cret", initial_inventory=7)
    client = app.test_client()
    wrong = client.post("/inventory/reset", headers={"X-Promdemo-Reset-Token": "nope"})
    assert_json_error(wrong, 401)
    ok = client.post("/inventory/reset", headers={"X-Promdemo-Reset-Token": "s3cret"})
    assert ok.status_code == 200
    assert ok.get_json() == {"inventory": 7}
    assert value(app, "inventory_resets_total") == 1


def test_reset_token_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("mounted-secret\n")
    settings = load_settings(
        {"PROMDEMO_RESET_TOKEN_FILE": str(tmp_path / "token"), "PROMDEMO_SIMULATION": "off"}
    )
    client = create_app(settings, CollectorRegistry()).test_client()
    assert client.post("/inventory/reset").status_code == 401
    ok = client.post("/inventory/reset", headers={"Authorization": "Bearer mounted-secret"})
    assert ok.status_code == 200


def mount_secret(folder: Path, token: str, version: int) -> Path:
    """Write `token` as the kubelet updates a Secret volume: a new directory, then
    an atomic swap of the `..data` symlink that `token` points through."""
    data = folder / f"..v{version}"
    data.mkdir()
    (data / "token").write_text(token + "\n")
    link = folder / "..data_tmp"
    link.symlink_to(data.name)
    link.rename(folder / "..data")
    if not (folder / "token").is_symlink():
        (folder / "token").symlink_to("..data/token")
    return folder / "token"


def test_a_rotated_token_file_is_used_without_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("promdemo_app.reset.TOKEN_FILE_CHECK_SECONDS", 0.0)
    path = mount_secret(tmp_path, "first-token", 1)
    settings = load_settings({"PROMDEMO_RESET_TOKEN_FILE": str(path), "PROMDEMO_SIMULATION": "off"})
    client = create_app(settings, CollectorRegistry()).test_client()

    def reset(token: str) -> int:
        return client.post(
            "/inventory/reset", headers={"Authorization": f"Bearer {token}"}
        ).status_code

    assert reset("first-token") == 200
    mount_secret(tmp_path, "second-token", 2)  # the Secret was replaced
    assert reset("second-token") == 200
    assert reset("first-token") == 401  # the old token stops working
    # A file the kubelet is midway through (or a broken mount) keeps the token in force.
    (tmp_path / "..v3").mkdir()
    (tmp_path / "..v3" / "token").write_text("")
    (tmp_path / "..data_tmp").symlink_to("..v3")
    (tmp_path / "..data_tmp").rename(tmp_path / "..data")
    assert reset("second-token") == 200


def test_probes(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_readyz_is_503_while_draining() -> None:
    lifecycle = Lifecycle()
    app = create_app(Settings(simulation=False), CollectorRegistry(), lifecycle=lifecycle)
    client = app.test_client()
    lifecycle.start_draining()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "draining"}
    # Liveness is unaffected: the process is fine, it is leaving.
    assert client.get("/healthz").status_code == 200


def test_unknown_path_is_404_json(client: FlaskClient) -> None:
    assert_json_error(client.get("/nope"), 404)
    assert_json_error(client.post("/order/"), 404)
    # (The test client reads "//x" as a host name; tests/integration sends it for real.)


def test_wrong_method_is_405_json_with_allow(client: FlaskClient) -> None:
    response = client.get("/order")
    error = assert_json_error(response, 405)
    assert "POST" in error
    assert response.headers["Allow"] == "POST"
    assert_json_error(client.open("/inventory", method="BREW"), 405)
    assert_json_error(client.options("/order"), 405)


def test_a_crash_is_500_json_without_a_traceback() -> None:
    class Broken(Simulation):
        def call_dependency(self) -> bool:
            raise RuntimeError("secret internals")

    app = create_app(
        Settings(oversell=False), CollectorRegistry(), simulation=Broken(SimulationConfig())
    )
    response = app.test_client().post("/order")
    error = assert_json_error(response, 500)
    assert "secret internals" not in error
    assert "Traceback" not in response.get_data(as_text=True)
    # The atomic path gave the reserved unit back.
    assert app.extensions["promdemo"].inventory.level == 100
    labels = {"method": "POST", "route": "/order", "status": "500"}
    assert value(app, "http_requests_total", labels) == 1


def test_random_paths_are_all_json(client: FlaskClient) -> None:
    rng = random.Random(7)
    for _ in range(50):
        path = "/x" + "/".join(
            "".join(rng.choice("abc%.-_~") for _ in range(rng.randint(0, 6)))
            for _ in range(rng.randint(1, 3))
        )
        response = client.open(path, method=rng.choice(["GET", "POST", "DELETE", "PURGE"]))
        assert response.status_code in {404, 405}, path
        json.loads(response.get_data())


def metric_names(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def test_metrics_name_filter_answers_only_the_named_metrics(client: FlaskClient) -> None:
    # What the operator's heal check asks for: the gauge alone, not 215 samples.
    response = client.get("/metrics?name[]=product_inventory")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    assert metric_names(response.get_data(as_text=True)) == {"product_inventory"}
    assert "product_inventory 100.0" in response.get_data(as_text=True)

    both = client.get("/metrics?name[]=product_inventory&name[]=inventory_resets_total")
    assert metric_names(both.get_data(as_text=True)) == {
        "product_inventory",
        "inventory_resets_total",
    }
    # Without the parameter: every metric, as before.
    assert len(metric_names(client.get("/metrics").get_data(as_text=True))) > 20


def test_metrics_name_filter_with_unknown_names_is_an_empty_page(client: FlaskClient) -> None:
    response = client.get("/metrics?name[]=no_such_metric")
    assert response.status_code == 200
    assert response.get_data() == b""


def test_metrics_name_filter_is_bounded(client: FlaskClient) -> None:
    query = "&".join(["name[]=product_inventory"] * 64)
    assert client.get(f"/metrics?{query}").status_code == 200
    error = assert_json_error(client.get(f"/metrics?{query}&name[]=x"), 400)
    assert "at most 64" in error
