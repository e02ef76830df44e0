"""`promdemo-app`: flags, one-line errors, exit codes."""

from __future__ import annotations

import pytest

from promdemo_app import cli
from promdemo_app.settings import Settings


def test_bad_environment_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROMDEMO_INITIAL_INVENTORY", "lots")
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("promdemo-app: PROMDEMO_INITIAL_INVENTORY='lots' is not valid")


def test_bad_flag_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--port", "http"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "promdemo-app: --port='http' is not valid: "
        "expected a port from 1 to 65535 (0: any free port)\n"
    )


def test_flags_reach_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[Settings] = []

    def fake_serve(settings: Settings) -> int:
        served.append(settings)
        return 0

    monkeypatch.setattr("promdemo_app.server.serve", fake_serve)
    monkeypatch.setenv("PROMDEMO_PORT", "1234")
    assert cli.main(["--host", "127.0.0.1", "--port", "8081"]) == 0
    assert (served[0].host, served[0].port) == ("127.0.0.1", 8081)


def test_a_port_that_cannot_be_bound_exits_1_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(settings: Settings) -> int:
        raise OSError(98, "Address already in use")

    monkeypatch.setattr("promdemo_app.server.serve", fail)
    assert cli.main(["--host", "127.0.0.1", "--port", "8081"]) == 1
    err = capsys.readouterr().err
    assert err == "promdemo-app: cannot listen on 127.0.0.1:8081: Address already in use\n"
