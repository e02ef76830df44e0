"""`promdemo doctor`'s leader line (cli/doctor/leader.py): the Lease as read → one line."""

from __future__ import annotations

import pytest

from promdemo_operator.cli.doctor.leader import leader_line
from promdemo_operator.runtime.leader.election import LeaseRecord
from promdemo_operator.runtime.leader.lease import lease_object, micro_time

NOW = 1_765_100_000.0


def lease(holder: str, renewed_ago: float, transitions: int = 0) -> dict:
    record = LeaseRecord(holder, 15, NOW - 600, NOW - renewed_ago, transitions)
    return lease_object("promdemo-system", "promdemo-operator", record, "7")


def line(obj: dict | None, error: str | None = None) -> str:
    return leader_line(obj, namespace="promdemo-system", name="promdemo-operator", now=NOW,
                       error=error)  # fmt: skip


def test_a_fresh_holder_is_named_with_its_age_and_history() -> None:
    assert line(lease("operator-7d4b-x8k2p", 2.4, 1)) == (
        "operator leader: operator-7d4b-x8k2p (renewed 2s ago, lease 15s, 1 change of leader)"
    )
    assert "3 changes of leader" in line(lease("op", 0, 3))


def test_an_expired_lease_says_no_replica_acts() -> None:
    text = line(lease("operator-7d4b-x8k2p", 300))
    assert text.startswith("operator leader: none acting: operator-7d4b-x8k2p last renewed")
    assert "5m ago" in text
    assert "no replica is renewing it" in text


@pytest.mark.parametrize(
    ("obj", "error", "expected"),
    [
        (lease("", 1), None, "operator leader: none (the Lease promdemo-system/promdemo-operator "
                             "was released; a standby takes it next)"),
        (None, "forbidden", "operator leader: cannot read the Lease "
                            "promdemo-system/promdemo-operator: forbidden"),
        ({"spec": {"holderIdentity": "op"}}, None, "operator leader: op (Lease "
         "promdemo-system/promdemo-operator has no renewTime; 0 changes of leader)"),
    ],
)  # fmt: skip
def test_the_other_states(obj: dict | None, error: str | None, expected: str) -> None:
    assert line(obj, error) == expected


def test_micro_time_is_what_doctor_reads_back() -> None:
    obj = {"spec": {"holderIdentity": "op", "leaseDurationSeconds": 15,
                    "renewTime": micro_time(NOW - 1.2)}}  # fmt: skip
    assert "renewed 1s ago" in line(obj)
