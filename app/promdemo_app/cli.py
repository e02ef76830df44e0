"""`promdemo-app --host H --port P`: run the order service until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence

from promdemo_app import __version__
from promdemo_app.settings import SettingsError, load_settings

PROG = "promdemo-app"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "The promdemo order service: an instrumented Flask shop for learning Prometheus. "
            "Every other setting is a PROMDEMO_* environment variable (see docs/app.md)."
        ),
    )
    # Strings, validated with the environment's rules so a bad flag gets the
    # same one-line message as a bad variable.
    parser.add_argument("--host", help="address to listen on (default: $PROMDEMO_HOST or 0.0.0.0)")
    parser.add_argument("--port", help="port to listen on (default: $PROMDEMO_PORT or 8080)")
    parser.add_argument(
        "--probe-port",
        help="a port of its own for /healthz and /readyz (default: $PROMDEMO_PROBE_PORT, or none)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the service; returns the process's exit code (2: bad settings)."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(
            os.environ, host=args.host, port=args.port, probe_port=args.probe_port
        )
        _resolve(settings.host, "--host" if args.host is not None else "PROMDEMO_HOST")
    except SettingsError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Imported here: the settings check above must not pay for Flask and gunicorn.
    from promdemo_app.server import serve

    try:
        return serve(settings)
    except OSError as e:
        # Typically the port is taken or the address is not on this machine.
        reason = e.strerror or str(e)
        where = f"{settings.host}:{settings.port}"
        if settings.probe_port is not None:
            where += f" (or the probe port {settings.probe_port})"
        print(f"{PROG}: cannot listen on {where}: {reason}", file=sys.stderr)
        return 1


def _resolve(host: str, name: str) -> None:
    """Refuse (SettingsError) a host that is not an address and does not resolve to one."""
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise SettingsError(
            f"{name}={host!r} is not valid: expected an address to listen on, "
            f"e.g. 0.0.0.0 or 127.0.0.1 (it does not resolve: {reason})"
        ) from None
