"""The order service's settings, read from `PROMDEMO_*` environment variables.

Names, defaults and accepted values are the contract in docs/architecture.md:
the operator renders these variables, so a rename here breaks it. A bad value
raises `SettingsError` whose message is one line naming the variable, the value
and what it accepts; the CLI prints that line and exits 2.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
LOG_LEVELS = ("debug", "info", "warning", "error")

# A token file is a mounted Secret: a few bytes. Refusing anything larger
# catches a wrong path (a log file, a device) before it is read into memory.
MAX_TOKEN_FILE_BYTES = 4096
_DECIMAL = re.compile(r"-?[0-9]{1,12}")
# A number of seconds or a fraction: plain ASCII digits with an optional
# fraction. float() would also take "1_0", "١٥", "inf", "1e3" and "  +.5".
_REAL = re.compile(r"[0-9]{1,12}(\.[0-9]{1,12})?|\.[0-9]{1,12}")


class SettingsError(ValueError):
    """A setting has a value the service cannot run with (one-line message)."""


@dataclass(frozen=True)
class Settings:
    """Everything the order service can be told at start-up."""

    host: str = "0.0.0.0"
    port: int = 8080
    # /healthz and /readyz on a port of their own (probes.py); None: only on `port`.
    probe_port: int | None = None
    initial_inventory: int = 100
    oversell: bool = True
    simulation: bool = True
    dependency_min_seconds: float = 0.05
    dependency_max_seconds: float = 1.5
    dependency_failure_rate: float = 0.1
    processing_min_seconds: float = 0.1
    processing_max_seconds: float = 0.5
    # Never printed: the dataclass repr ends up in logs and test output.
    reset_token: str | None = field(default=None, repr=False)
    # Where reset_token came from, if a file: re-read when it changes (reset.py).
    reset_token_file: str | None = None
    # Without a token, allow anyone to reset even on a non-loopback address.
    reset_open: bool = False
    # This pod's UID (the downward API's metadata.uid); empty outside Kubernetes.
    pod_uid: str = ""
    metrics: bool = True
    threads: int = 300
    shutdown_timeout_seconds: float = 25.0
    max_body_bytes: int = 65536
    log_level: str = "info"


def _invalid(name: str, raw: str, accepts: str) -> SettingsError:
    return SettingsError(f"{name}={raw!r} is not valid: expected {accepts}")


def _integer(name: str, raw: str, low: int, high: int, accepts: str | None = None) -> int:
    accepts = accepts or f"an integer from {low} to {high}"
    text = raw.strip()
    # int() also takes "1_000", "+5" and non-ASCII digits; a plain decimal is all
    # the docs promise.
    if not _DECIMAL.fullmatch(text):
        raise _invalid(name, raw, accepts)
    value = int(text)
    if not low <= value <= high:
        raise _invalid(name, raw, accepts)
    return value


def _number(name: str, raw: str, low: float, high: float, accepts: str) -> float:
    text = raw.strip()
    if not _REAL.fullmatch(text):
        raise _invalid(name, raw, accepts)
    value = float(text)
    if not math.isfinite(value) or not low <= value <= high:
        raise _invalid(name, raw, accepts)
    return value


def _switch(name: str, raw: str, words: tuple[str, str]) -> bool:
    text = raw.strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise _invalid(name, raw, f"{words[0]} or {words[1]}")


def _host(name: str, raw: str) -> str:
    text = raw.strip()
    if not text or any(c.isspace() for c in text) or len(text) > 255:
        raise _invalid(name, raw, "an address to listen on, e.g. 0.0.0.0 or 127.0.0.1")
    return text


def read_token_file(raw: str) -> str:
    """The token in the file `raw` (trailing newline dropped); SettingsError (one line) if none."""
    name = "PROMDEMO_RESET_TOKEN_FILE"
    path = Path(raw)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as e:
        raise SettingsError(f"{name}={raw!r} cannot be read: {e.strerror or e}") from None
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise SettingsError(f"{name}={raw!r} is larger than {MAX_TOKEN_FILE_BYTES} bytes")
    try:
        # A Secret written by `echo` ends with a newline that is not part of the token.
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SettingsError(f"{name}={raw!r} does not hold UTF-8 text") from None
    if not token:
        raise SettingsError(f"{name}={raw!r} is empty: expected a file holding the token")
    return token


def _reset_token(env: Mapping[str, str]) -> str | None:
    # An empty variable counts as unset: that is how a Deployment says "none".
    token = env.get("PROMDEMO_RESET_TOKEN", "").strip()
    token_file = env.get("PROMDEMO_RESET_TOKEN_FILE", "").strip()
    if token and token_file:
        raise SettingsError(
            "PROMDEMO_RESET_TOKEN and PROMDEMO_RESET_TOKEN_FILE are both set: set one of them"
        )
    if token_file:
        return read_token_file(token_file)
    if token and any(c.isspace() for c in token):
        raise SettingsError("PROMDEMO_RESET_TOKEN is not valid: expected a token without spaces")
    return token or None


#: The longest pod UID accepted (Kubernetes writes a 36-character UUID).
MAX_POD_UID_CHARS = 128
_POD_UID = re.compile(r"[A-Za-z0-9._-]+")


def _pod_uid(raw: str) -> str:
    uid = raw.strip()
    if len(uid) > MAX_POD_UID_CHARS or not _POD_UID.fullmatch(uid):
        raise _invalid(
            "PROMDEMO_POD_UID",
            raw[:MAX_POD_UID_CHARS],
            f"at most {MAX_POD_UID_CHARS} letters, digits, '.', '_' or '-' (a pod's metadata.uid)",
        )
    return uid


def load_settings(
    environ: Mapping[str, str],
    *,
    host: str | None = None,
    port: str | int | None = None,
    probe_port: str | int | None = None,
) -> Settings:
    """Settings from `environ` (`PROMDEMO_*`); `host`/`port`/`probe_port` are CLI flags and win.

    Raises SettingsError (one line) on the first bad value.
    """
    env = {k: v for k, v in environ.items() if k.startswith("PROMDEMO_")}
    values: dict[str, object] = {}

    def given(name: str) -> str | None:
        raw = env.get(name)
        return raw if raw is not None and raw.strip() != "" else None

    if host is not None:
        values["host"] = _host("--host", host)
    elif (raw := given("PROMDEMO_HOST")) is not None:
        values["host"] = _host("PROMDEMO_HOST", raw)

    port_accepts = "a port from 1 to 65535 (0: any free port)"
    if port is not None:
        values["port"] = _integer("--port", str(port), 0, 65535, port_accepts)
    elif (raw := given("PROMDEMO_PORT")) is not None:
        values["port"] = _integer("PROMDEMO_PORT", raw, 0, 65535, port_accepts)
    if probe_port is not None:
        values["probe_port"] = _integer("--probe-port", str(probe_port), 0, 65535, port_accepts)
    elif (raw := given("PROMDEMO_PROBE_PORT")) is not None:
        values["probe_port"] = _integer("PROMDEMO_PROBE_PORT", raw, 0, 65535, port_accepts)
    if values.get("probe_port") and values.get("probe_port") == values.get("port", 8080):
        raise SettingsError(
            f"PROMDEMO_PROBE_PORT={values['probe_port']} is not valid: "
            "expected a port other than PROMDEMO_PORT's"
        )

    integers = {
        "PROMDEMO_INITIAL_INVENTORY": ("initial_inventory", 0, 1_000_000),
        "PROMDEMO_THREADS": ("threads", 1, 2000),
        "PROMDEMO_MAX_BODY_BYTES": ("max_body_bytes", 1, 16 * 1024 * 1024),
    }
    for name, (attr, low, high) in integers.items():
        if (raw := given(name)) is not None:
            values[attr] = _integer(name, raw, low, high)

    switches = {
        "PROMDEMO_OVERSELL": ("oversell", ("true", "false")),
        "PROMDEMO_SIMULATION": ("simulation", ("on", "off")),
        "PROMDEMO_METRICS": ("metrics", ("on", "off")),
        "PROMDEMO_RESET_OPEN": ("reset_open", ("true", "false")),
    }
    for name, (attr, words) in switches.items():
        if (raw := given(name)) is not None:
            values[attr] = _switch(name, raw, words)

    seconds = "a number of seconds from 0 to 60"
    for stage in ("dependency", "processing"):
        for bound in ("min", "max"):
            name = f"PROMDEMO_{stage.upper()}_{bound.upper()}_SECONDS"
            if (raw := given(name)) is not None:
                values[f"{stage}_{bound}_seconds"] = _number(name, raw, 0.0, 60.0, seconds)

    if (raw := given("PROMDEMO_DEPENDENCY_FAILURE_RATE")) is not None:
        values["dependency_failure_rate"] = _number(
            "PROMDEMO_DEPENDENCY_FAILURE_RATE", raw, 0.0, 1.0, "a fraction from 0 to 1"
        )
    if (raw := given("PROMDEMO_SHUTDOWN_TIMEOUT")) is not None:
        values["shutdown_timeout_seconds"] = _number(
            "PROMDEMO_SHUTDOWN_TIMEOUT", raw, 0.0, 3600.0, "a number of seconds from 0 to 3600"
        )
    if (raw := given("PROMDEMO_LOG_LEVEL")) is not None:
        level = raw.strip().lower()
        if level not in LOG_LEVELS:
            raise _invalid("PROMDEMO_LOG_LEVEL", raw, "one of " + ", ".join(LOG_LEVELS))
        values["log_level"] = level

    if (raw := given("PROMDEMO_POD_UID")) is not None:
        values["pod_uid"] = _pod_uid(raw)
    values["reset_token"] = _reset_token(env)
    if values["reset_token"] is not None and (path := given("PROMDEMO_RESET_TOKEN_FILE")):
        values["reset_token_file"] = path.strip()
    if values["reset_token"] is not None and values.get("reset_open"):
        raise SettingsError(
            "PROMDEMO_RESET_OPEN=true and a reset token are both set: "
            "unset one of them (the token would make the reset closed)"
        )
    settings = Settings(**values)  # type: ignore[arg-type]

    for stage in ("dependency", "processing"):
        low = getattr(settings, f"{stage}_min_seconds")
        high = getattr(settings, f"{stage}_max_seconds")
        if high < low:
            min_name = f"PROMDEMO_{stage.upper()}_MIN_SECONDS"
            max_name = f"PROMDEMO_{stage.upper()}_MAX_SECONDS"
            # Blame the variable that was set: the other one may be a default.
            if given(max_name) is None:
                raise SettingsError(
                    f"{min_name}={low:g} is not valid: expected at most {max_name} ({high:g})"
                )
            raise SettingsError(
                f"{max_name}={high:g} is not valid: expected at least {min_name} ({low:g})"
            )
    return settings
