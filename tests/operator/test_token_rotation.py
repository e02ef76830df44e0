"""Rotating the reset token (docs/crd.md: delete the Secret) does not stop the healing.

The real operator against kmock, and a real app process standing in for the pod,
which reads its token from a file laid out as the kubelet mounts a Secret. The
test plays the kubelet: when the operator has replaced the Secret, it swaps the
mounted file as the kubelet does (a new directory, then an atomic change of the
`..data` symlink). Orders keep coming throughout. Before, the app read the token
once at start-up: every reset after the rotation got 401 and the inventory
stayed negative.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.operator.test_heal_operator import (
    NAME,
    NS,
    promdemo,
    reset_token,
    wait_status,
)
from tests.support.kmock_cluster import (
    SECRETS,
    KmockCluster,
    kmock_cluster,  # noqa: F401 - the fixture
)
from tests.support.oversold_app import APP_ENV, oversell
from tests.support.processes import wait_until

pytestmark = [pytest.mark.operator, pytest.mark.integration]


def mount_secret(folder: Path, token: str, version: int) -> Path:
    """Write `token` as the kubelet writes a Secret volume; the path the app reads."""
    data = folder / f"..{version}"
    data.mkdir()
    (data / "token").write_text(token)
    link = folder / "..data_tmp"
    link.symlink_to(data.name)
    link.rename(folder / "..data")
    path = folder / "token"
    if not path.is_symlink():
        path.symlink_to("..data/token")
    return path


def test_a_rotated_token_keeps_healing(
    kmock_cluster: KmockCluster,  # noqa: F811
    start_app: Callable[..., Any],
    tmp_path: Path,
) -> None:
    cluster = kmock_cluster
    op = cluster.start_operator()
    cluster.create(
        promdemo({"interval": "1s", "for": "0s", "cooldown": "0s", "podAccess": "podIP"})
    )
    first = reset_token(cluster)
    mounted = tmp_path / "secret"
    mounted.mkdir()
    path = mount_secret(mounted, first, 1)
    env = {k: v for k, v in APP_ENV.items() if k != "PROMDEMO_RESET_TOKEN"}
    proc, url = start_app(env={**env, "PROMDEMO_RESET_TOKEN_FILE": str(path)}, host="127.0.0.2")
    cluster.store_pod(NS, NAME, "shop-a", url)
    wait_status(cluster, op, lambda s: "shop-a" in (s.get("inventory") or {}), "inventory")

    oversell(url, token=first)
    # Status writes are coalesced (one per 10 s at most): count heals with >=, and
    # tell the heal after the rotation by its time.
    wait_status(cluster, op, lambda s: s.get("healCount", 0) >= 1, "the first heal")

    # Orders keep coming while the token is rotated.
    stop = threading.Event()

    def trickle() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                client.post(f"{url}/order")
                stop.wait(0.2)

    load = threading.Thread(target=trickle, daemon=True)
    load.start()
    try:
        assert cluster.delete(SECRETS, NS, f"{NAME}-reset-token")
        holder: dict[str, str] = {}

        def rotated() -> bool:
            token = reset_token(cluster)
            holder["token"] = token
            return token != first

        wait_until(rotated, timeout=60, what="a new reset-token Secret")
        second = holder["token"]
        mount_secret(mounted, second, 2)  # the kubelet's update of the volume
        rotated_at = datetime.now(UTC)

        def healed_since_rotation(s: dict[str, Any]) -> bool:
            last = s.get("lastHeal") or {}
            if "time" not in last:
                return False
            return datetime.fromisoformat(last["time"].replace("Z", "+00:00")) >= rotated_at

        oversell(url, token=second)
        healed = wait_status(cluster, op, healed_since_rotation, "a heal after rotation")
    finally:
        stop.set()
        load.join(timeout=30)
    assert healed["lastHeal"]["pod"] == "shop-a"
    assert healed["lastHeal"]["before"] < 0
    assert healed["lastHeal"]["after"] == 5
    # The old token no longer resets; the app said it re-read the file.
    old = httpx.post(f"{url}/inventory/reset", headers={"Authorization": f"Bearer {first}"})
    assert old.status_code == 401
    assert "re-read" in proc.log()
