"""Who may reset the inventory (`POST /inventory/reset`), decided once at start-up.

- A token is set (`PROMDEMO_RESET_TOKEN` or `_FILE`): requests carrying it,
  compared in constant time.
- No token, listening on loopback only (127.0.0.0/8, ::1, localhost): anyone on
  this machine; a laptop demo needs no secret.
- No token, `PROMDEMO_RESET_OPEN=true`: anyone who can reach the port, chosen
  explicitly.
- Otherwise (the image's default: 0.0.0.0 and no token): nobody, answered 403.

The server logs which of these is in force at start-up (`describe_reset_policy`).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Mapping
from enum import Enum

from promdemo_app.settings import Settings, SettingsError, read_token_file

log = logging.getLogger("promdemo_app.reset")

# How often the token file is looked at (one stat) when a reset comes in.
TOKEN_FILE_CHECK_SECONDS = 1.0

# The Kubernetes API server strips `Authorization` when it forwards a request
# through the pod proxy (kubernetes/kubernetes#38775), so an operator running
# outside the cluster sends the same token in this header instead.
RESET_TOKEN_HEADER = "X-Promdemo-Reset-Token"  # noqa: S105 - a header name, not a secret

# The pod's UID (from the downward API) goes back on `GET /metrics` in
# POD_UID_HEADER, and a reset carrying EXPECTED_POD_UID_HEADER is refused (409)
# when it names another pod: a pod IP is reused as soon as its pod is gone, so a
# reset decided for a deleted pod must not reach the pod that got its address.
POD_UID_HEADER = "X-Promdemo-Pod-Uid"
EXPECTED_POD_UID_HEADER = "X-Promdemo-Expected-Pod-Uid"

DISABLED_REASON = (
    "no reset token is set and the service listens on {host}; set PROMDEMO_RESET_TOKEN "
    "(or PROMDEMO_RESET_TOKEN_FILE), or PROMDEMO_RESET_OPEN=true to allow anyone"
)


class ResetPolicy(Enum):
    TOKEN = "token"  # noqa: S105 - a policy name
    OPEN_ON_LOOPBACK = "open on loopback"
    OPEN_BY_SETTING = "open by setting"
    DISABLED = "disabled"


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (a name other than localhost is not)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def reset_policy(settings: Settings) -> ResetPolicy:
    if settings.reset_token is not None:
        return ResetPolicy.TOKEN
    if is_loopback(settings.host):
        return ResetPolicy.OPEN_ON_LOOPBACK
    if settings.reset_open:
        return ResetPolicy.OPEN_BY_SETTING
    return ResetPolicy.DISABLED


def describe_reset_policy(settings: Settings) -> str:
    """The start-up log line saying who may reset."""
    policy = reset_policy(settings)
    if policy is ResetPolicy.TOKEN:
        return "inventory reset: needs the reset token (Authorization: Bearer <token>)"
    if policy is ResetPolicy.OPEN_ON_LOOPBACK:
        return f"inventory reset: open without a token (listening on {settings.host}: loopback)"
    if policy is ResetPolicy.OPEN_BY_SETTING:
        return (
            "inventory reset: OPEN to anyone who can reach this port "
            "(PROMDEMO_RESET_OPEN=true, no token)"
        )
    return f"inventory reset: disabled (answers 403): {DISABLED_REASON.format(host=settings.host)}"


def token_matches(headers: Mapping[str, str], token: str) -> bool:
    """Whether the request's `Authorization: Bearer` (or the proxy header) carries `token`."""
    scheme, _, given = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        given = headers.get(RESET_TOKEN_HEADER, "")
        if not given:
            return False
    # Constant time, so the answer's timing does not reveal how much matched.
    return hmac.compare_digest(given.strip().encode(), token.encode())


def other_pod_expected(headers: Mapping[str, str], own_uid: str) -> str | None:
    """The UID a reset expects, when it is not this pod's; None when the reset may go on.

    Only a pod that knows its UID (Kubernetes set it) and a request that names one
    are compared: the app outside Kubernetes, or a caller that does not know the
    pod, is not refused. The answer quotes the expected UID clipped to a few
    characters more than a UID can have, so a huge header is never echoed.
    """
    expected = headers.get(EXPECTED_POD_UID_HEADER, "").strip()
    if not own_uid or not expected or hmac.compare_digest(expected.encode(), own_uid.encode()):
        return None
    return expected[: len(own_uid) + 8]


class ResetToken:
    """The token a reset must carry; from a file, re-read when the file changes.

    Rotating the token means replacing the Secret: the kubelet then swaps the
    mounted file (an atomic symlink change) in every pod, and the operator
    uses the new token at once. Read once at start-up, the app would answer
    every reset with 401 from then on, and healing would stop. So the file
    is looked at (one `stat`, at most once a second, when a reset comes in)
    and re-read when its identity, size or time changed. A file that cannot
    be read or holds no token keeps the token in force (said once in the log).
    """

    def __init__(self, token: str, path: str | None = None) -> None:
        self._token = token
        self._path = path
        self._seen = self._identity() if path else None
        self._next_check = time.monotonic() + TOKEN_FILE_CHECK_SECONDS
        self._lock = threading.Lock()
        self._warned = False

    def _identity(self) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(self._path or "")
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def current(self) -> str:
        if self._path is None or time.monotonic() < self._next_check:
            return self._token
        with self._lock:
            now = time.monotonic()
            if now < self._next_check:
                return self._token
            self._next_check = now + TOKEN_FILE_CHECK_SECONDS
            identity = self._identity()
            if identity is None or identity == self._seen:
                return self._token
            try:
                token = read_token_file(self._path)
            except SettingsError as e:
                if not self._warned:
                    log.warning("keeping the reset token in force: %s", e)
                    self._warned = True
                return self._token
            self._seen, self._warned = identity, False
            if token != self._token:
                self._token = token
                log.info("reset token: re-read %s, which changed (a rotated Secret)", self._path)
            return self._token
