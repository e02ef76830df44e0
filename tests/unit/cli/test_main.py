"""`promdemo`'s dispatch: one module per subcommand, imported only when used."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from promdemo_operator.cli import main as cli
from promdemo_operator.core import cliargs
from tests.support.console import promdemo

SAMPLES = Path(__file__).resolve().parents[3] / "manifests" / "samples"


def test_version_and_help() -> None:
    assert promdemo("--version").stdout.strip() == "promdemo 0.1.0"
    result = promdemo("--help")
    assert result.returncode == 0
    for command in ("operator", "render", "load", "local"):
        assert command in result.stdout
    for command in ("render", "load", "local"):
        assert promdemo(command, "--help").returncode == 0


def test_no_command_is_a_usage_error() -> None:
    assert promdemo().returncode == 2


@pytest.mark.parametrize(
    ("argv", "prog"),
    [
        (["load", "http://127.0.0.1:1", "--nope"], "promdemo load"),
        (["local", "--replicas", "zero"], "promdemo local"),
        (["render"], "promdemo render"),
        (["operator", "--workers", "0"], "promdemo operator"),
        (["operator", "--metrics-port", "70000"], "promdemo operator"),
        (["operator", "--resync-seconds", "soon"], "promdemo operator"),
        (["operator", "--prometheus-interval", "500ms"], "promdemo operator"),
        (["nope"], "promdemo"),
    ],
)
def test_a_usage_error_is_one_line_naming_the_command(argv: list[str], prog: str) -> None:
    result = promdemo(*argv)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{prog}: ")
    assert lines[0].endswith(f"(see {prog} --help)")


def _modules_after(*argv: str) -> tuple[int, set[str]]:
    """In a new interpreter: main(argv)'s exit code, and the promdemo/kopf modules it imported."""
    code = (
        "import sys\n"
        "from promdemo_operator.cli.main import main\n"
        f"rc = main({list(argv)!r})\n"
        "print(rc, *[m for m in sys.modules if m.startswith(('promdemo_operator.', 'kopf'))])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    rc, *modules = out.strip().splitlines()[-1].split()
    return int(rc), set(modules)


LIBRARIES = (
    "promdemo_operator.cli.commands.",
    "promdemo_operator.cli.local",
    "promdemo_operator.cli.load",
)


def test_help_imports_no_subcommand_module() -> None:
    rc, modules = _modules_after("--help")
    assert rc == 0
    assert not {
        m
        for m in modules
        if m.startswith((*LIBRARIES, "promdemo_operator.runtime.startup", "kopf"))
    }


def test_a_subcommand_imports_only_its_own_module() -> None:
    rc, modules = _modules_after("load", "--help")
    assert rc == 0
    assert "promdemo_operator.cli.commands.load" in modules
    assert not {m for m in modules if m.startswith(("promdemo_operator.cli.local", "kopf"))}


def test_a_missing_module_breaks_only_its_own_subcommand(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(
        cli.COMMANDS, "local", cli._Command("no_such_module_here", "the local demo")
    )
    assert cli.main(["local", "--with-load"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("promdemo local: unavailable (ModuleNotFoundError")
    assert len(err.strip().splitlines()) == 1
    assert cli.main(["--help"]) == 0
    capsys.readouterr()
    assert cli.main(["local", "--help"]) == 0
    assert "unavailable" in capsys.readouterr().out
    path = str(SAMPLES / "minimal.yaml")
    assert cli.main(["render", "-f", path, "--token", "x"]) == 0


def test_subcommands_dispatch_to_their_module(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    fake = types.ModuleType("promdemo_operator.fake_cmd")
    fake.add_arguments = lambda parser: parser.add_argument("--flag", action="store_true")  # type: ignore[attr-defined]
    fake.run = lambda args: calls.append(args.flag) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "promdemo_operator.fake_cmd", fake)
    monkeypatch.setitem(cli.COMMANDS, "load", cli._Command("fake_cmd", "fake"))
    assert cli.main(["load", "--flag"]) == 7
    assert calls == [True]
    assert cli.main(["load", "--nope"]) == 2


def test_ctrl_c_in_a_command_is_exit_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    fake = types.ModuleType("promdemo_operator.fake_cmd")
    fake.add_arguments = lambda parser: None  # type: ignore[attr-defined]
    fake.run = interrupted  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "promdemo_operator.fake_cmd", fake)
    monkeypatch.setitem(cli.COMMANDS, "load", cli._Command("fake_cmd", "fake"))
    assert cli.main(["load"]) == 130


def test_operator_options_take_durations_and_ports_like_every_command() -> None:
    from promdemo_operator.runtime import options as run

    parser = cliargs.CommandParser(prog="promdemo operator")
    run.add_arguments(parser)
    options = run.options_from_args(
        parser.parse_args(["--resync-seconds", "1h", "--metrics-port", "0", "--workers", "4"])
    )
    assert (options.resync_seconds, options.metrics_port, options.workers) == (3600.0, 0, 4)
    assert run.default_options().resync_seconds == run.DEFAULT_RESYNC_SECONDS
