"""`promdemo doctor`'s line about the operator's leader: who holds the Lease, how fresh.

Plain Python: the Lease object as read (or None, or why it could not be read) and
the time now, in; one line out. The line informs and never changes doctor's exit
status (a PromDemo's chain does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from promdemo_operator.core.timefmt import parse_rfc3339

#: Where `promdemo operator --leader-elect` keeps its Lease in install.yaml.
DEFAULT_NAMESPACE = "promdemo-system"
DEFAULT_LEASE = "promdemo-operator"


def _ago(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m"


def leader_line(
    lease: Mapping[str, Any] | None,
    *,
    namespace: str,
    name: str,
    now: float,
    error: str | None = None,
) -> str:
    """`operator leader: op-7f9c-abcde (renewed 2s ago, lease 15s, 1 change of leader)`."""
    where = f"Lease {namespace}/{name}"
    if error is not None:
        return f"operator leader: cannot read the {where}: {error}"
    if lease is None:
        return (
            f"operator leader: no {where} (the operator runs without --leader-elect, "
            "or elsewhere: --operator-namespace)"
        )
    spec = lease.get("spec") or {}
    holder = str(spec.get("holderIdentity") or "")
    try:
        duration = float(spec.get("leaseDurationSeconds") or 0)
    except (TypeError, ValueError):
        duration = 0.0
    try:
        changes = int(spec.get("leaseTransitions") or 0)
    except (TypeError, ValueError):
        changes = 0
    renewed = parse_rfc3339(spec.get("renewTime"))
    if not holder:
        return f"operator leader: none (the {where} was released; a standby takes it next)"
    plural = "" if changes == 1 else "s"
    history = f"{changes} change{plural} of leader"
    if renewed is None:
        return f"operator leader: {holder} ({where} has no renewTime; {history})"
    age = max(0.0, now - renewed)
    if duration and age > duration:
        return (
            f"operator leader: none acting: {holder} last renewed the {where} {_ago(age)} ago "
            f"(lease {duration:g}s): no replica is renewing it; {history}"
        )
    return f"operator leader: {holder} (renewed {_ago(age)} ago, lease {duration:g}s, {history})"
