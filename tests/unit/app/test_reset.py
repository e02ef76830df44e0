"""Who may reset: the policy chosen at start-up, and the line that says which it is."""

from __future__ import annotations

import pytest

from promdemo_app.reset import ResetPolicy, describe_reset_policy, is_loopback, reset_policy
from promdemo_app.settings import Settings


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("shop.example", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("settings", "policy", "says"),
    [
        (Settings(reset_token="s3cret-token"), ResetPolicy.TOKEN, "needs the reset token"),
        (
            Settings(host="127.0.0.1", reset_token="s3cret-token"),
            ResetPolicy.TOKEN,
            "needs the reset token",
        ),
        (Settings(host="127.0.0.1"), ResetPolicy.OPEN_ON_LOOPBACK, "open without a token"),
        (Settings(reset_open=True), ResetPolicy.OPEN_BY_SETTING, "OPEN to anyone"),
        (Settings(), ResetPolicy.DISABLED, "disabled (answers 403)"),
    ],
)
def test_policy_and_its_start_up_line(settings: Settings, policy: ResetPolicy, says: str) -> None:
    assert reset_policy(settings) is policy
    line = describe_reset_policy(settings)
    assert says in line
    assert "\n" not in line
    # The token itself is never logged.
    assert "s3cret-token" not in line
