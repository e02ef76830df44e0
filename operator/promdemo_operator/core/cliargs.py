"""Exit codes and option validators shared by every `promdemo` command.

One rule per kind of value, so that an option means the same in every command:

- a duration is what `duration.parse_duration` reads (`500ms`, `15s`, `5m`,
  `1m30s`) or a bare number, which is seconds (`15`, `0.5`): `load --pause 15`
  and `local --load-pause 15s` both mean fifteen seconds;
- a port is 1..65535 (`port_or_off`: 0 turns a server off);
- a count is an integer in a stated range; a number is finite (no `nan`, `inf`);
- a URL of a server (`http_url`) is http(s) with a host; a trailing slash is dropped.

A bad value is one line on stderr and exit status 2 (`EXIT_USAGE`), never the
usage text: `CommandParser` is the `argparse.ArgumentParser` that does that.

Adopting it in a command module (`add_arguments(parser)` / `run(args) -> int`):

    from promdemo_operator import cliargs

    parser.add_argument("--pause", type=cliargs.duration, default=0.0)
    parser.add_argument("--port", type=cliargs.port, default=8080)
    parser.add_argument("--workers", type=cliargs.int_range(1, 1000), default=16)
    ...
    return cliargs.EXIT_OK
"""

from __future__ import annotations

import argparse
import math
import sys
import urllib.parse
from collections.abc import Callable
from typing import NoReturn

from promdemo_operator.core.duration import DurationError, parse_duration

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandParser",
    "duration",
    "finite_float",
    "http_url",
    "int_range",
    "port",
    "port_or_off",
    "positive_duration",
    "positive_int",
    "program",
    "usage_error",
]

#: The command did what it was asked (also: stopped by Ctrl-C/SIGTERM when stopping is its job).
EXIT_OK = 0
#: It ran and failed: a target unreachable, a child process that did not start.
EXIT_FAILED = 1
#: A bad option or input file, a busy port: one line on stderr, nothing done (argparse's code).
EXIT_USAGE = 2
#: Interrupted (Ctrl-C) in the middle of something that does not treat it as a normal stop.
EXIT_INTERRUPTED = 130

#: Below this a duration is 0 once written for Prometheus (`format_seconds` keeps milliseconds).
SMALLEST_DURATION_SECONDS = 0.001


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line and exit status 2.

    argparse prints the whole usage before the error, which for `promdemo local`
    is a screen of options; the one line names the option and points at --help.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def duration(text: str) -> float:
    """Seconds ≥ 0 from `15s`, `1m30s`, `500ms` or a bare number of seconds (`15`, `0.5`)."""
    seconds = _finite(text)
    if seconds is None:
        try:
            seconds = parse_duration(text.strip())
        except DurationError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a duration: write seconds (15, 0.5) or with a unit "
                "(500ms, 15s, 5m, 1m30s)"
            ) from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration cannot be negative")
    return seconds


def positive_duration(text: str) -> float:
    """A `duration` of at least 1 ms (an interval, a timeout, a run time)."""
    seconds = duration(text)
    if seconds < SMALLEST_DURATION_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1ms")
    return seconds


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """A validator of integers in low..high (no upper bound when `high` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            bounds = f"{low}..{high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


#: A count of at least 1 (orders, rounds, replicas...).
positive_int = int_range(1)


def port(text: str) -> int:
    """A TCP port, 1..65535."""
    return _port(text, low=1)


def port_or_off(text: str) -> int:
    """A TCP port, or 0 for "do not listen at all" (an optional server)."""
    return _port(text, low=0)


def _port(text: str, *, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not low <= value <= 65535:
        off = " (0: off)" if low == 0 else ""
        raise argparse.ArgumentTypeError(f"a port is {low}..65535{off}, got {value}")
    return value


def finite_float(text: str) -> float:
    """Any finite number (a threshold): `nan` and `inf` are refused."""
    value = _finite(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    return value


def http_url(text: str) -> str:
    """An http(s) URL with a host (a Prometheus: `http://127.0.0.1:9090`), without a final `/`."""
    parts = urllib.parse.urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http(s) URL with a host (e.g. http://127.0.0.1:9090)"
        )
    return text.strip().rstrip("/")


def program(args: argparse.Namespace, default: str) -> str:
    """What a command's messages start with: its parser's name ("promdemo doctor", or
    "kubectl promdemo doctor" from the kubectl plugin); `default` without a parser."""
    parser = getattr(args, "command_parser", None)
    return parser.prog if isinstance(parser, argparse.ArgumentParser) else default


def usage_error(prog: str, message: str) -> int:
    """Print the one line of a usage error found after parsing; return EXIT_USAGE."""
    print(f"{prog}: {message}", file=sys.stderr)
    return EXIT_USAGE
