"""The heal loop's state for one PromDemo: counters, cooldowns, and the status it reports.

Plain Python, no Kubernetes client and no kopf: the adapter (`runtime/handlers/heal.py`)
feeds it the engine's results and writes what `status_patch` returns.

- `restore(status)` picks up what a previous operator left in the PromDemo's
  status: `healCount`, `lastHeal`, and the cooldowns (`lastHeal.recentResets`,
  and `lastHeal.pod/time`), so a restart in the middle never resets a pod twice
  within its cooldown; what it read counts as already written, so a restarted
  operator rewrites nothing.
- `record(reset)` counts a reset and returns the message of its Event.
- `status_patch(inventory, now)` is the merge patch of the heal keys (`inventory`,
  `lowestInventory`, `healCount`, `lastHeal`) when they changed since the last
  write, else None. A merge patch keeps map keys it does not mention, so pods that
  left the inventory, and pods whose cooldown ended, are set to null.
- Writes are coalesced: at most one per `write_period` (`STATUS_WRITE_PERIOD_SECONDS`,
  10 s) per PromDemo. Under order traffic every check sees new values (one PATCH
  per check, 0.2/s at a 5 s interval, before this); a change within the period of
  the last write waits, and the first check after the period writes the values it
  read then. A reset is no exception (its Event is posted at once); at rest nothing
  changes and nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from promdemo_operator.core.heal_policy import HealPolicy
from promdemo_operator.core.plaindata import plain
from promdemo_operator.core.timefmt import parse_rfc3339, rfc3339
from promdemo_operator.heal.engine import ResetDone

#: The status keys the heal loop owns (the reconcile never writes them).
HEAL_KEYS = ("inventory", "lowestInventory", "healCount", "lastHeal")
#: At most one status write of the heal keys per this many seconds per PromDemo.
STATUS_WRITE_PERIOD_SECONDS = 10.0


def int_if_whole(value: float | None) -> int | float | None:
    """`5.0` → `5` (JSON and messages show whole inventories as integers); other values as is."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def reset_message(done: ResetDone) -> str:
    """The Event message of one reset: `Reset pod p: inventory -3 -> 100 (direct, 0.8s ...)`."""
    after = "unconfirmed" if done.after is None else int_if_whole(done.after)
    latency = f", {done.latency:.1f}s after it was first seen below" if done.latency else ""
    return (
        f"Reset pod {done.pod}: inventory {int_if_whole(done.before)} -> {after}"
        f" ({done.source}{latency})"
    )


class HealState:
    """What one PromDemo's heal loop remembers between checks (and across restarts)."""

    def __init__(
        self,
        policy: HealPolicy | None = None,
        *,
        write_period: float = STATUS_WRITE_PERIOD_SECONDS,
    ) -> None:
        self.policy = policy or HealPolicy()
        self.write_period = write_period
        #: When the last patch was handed out (accepted or not): the period runs from it.
        self._last_write_at: float | None = None
        self.heal_count = 0
        self.last_heal: dict[str, Any] | None = None
        self.inventory: dict[str, float] = {}
        #: The heal keys as last written (or found in the status at restore).
        self.written: dict[str, Any] = {}
        self._pending: dict[str, Any] | None = None

    # -- across restarts --------------------------------------------------------------------

    def restore(self, status: Mapping[str, Any] | None) -> dict[str, float]:
        """Take over healCount, lastHeal and the cooldowns from `status`; the cooldowns restored
        (pod → epoch seconds of its last reset)."""
        status = status or {}
        try:
            self.heal_count = int(status.get("healCount") or 0)
        except (TypeError, ValueError):
            self.heal_count = 0
        saved: dict[str, float] = {}
        last = status.get("lastHeal")
        if isinstance(last, Mapping):
            self.last_heal = {k: v for k, v in last.items() if k != "recentResets"}
            recent = last.get("recentResets")
            if isinstance(recent, Mapping):
                for pod, when in recent.items():
                    epoch = parse_rfc3339(when)
                    if epoch is not None:
                        saved[str(pod)] = epoch
            pod, when = last.get("pod"), parse_rfc3339(last.get("time"))
            if isinstance(pod, str) and when is not None:
                saved[pod] = max(when, saved.get(pod, when))
            self.policy.import_state(saved)
        inventory = status.get("inventory")
        if isinstance(inventory, Mapping):
            self.inventory = {
                str(k): float(v) for k, v in inventory.items() if isinstance(v, int | float)
            }
        self.written = {k: plain(status[k]) for k in HEAL_KEYS if status.get(k) is not None}
        return saved

    # -- resets -----------------------------------------------------------------------------

    def record(self, done: ResetDone) -> str:
        """Count one reset (for `healCount` and `lastHeal`); the message of its Event."""
        self.heal_count += 1
        self.last_heal = {
            "pod": done.pod,
            "before": int_if_whole(done.before),
            "after": int_if_whole(done.after),
            "time": rfc3339(done.time, milliseconds=True),
        }
        if done.after is not None:
            self.inventory[done.pod] = done.after
        return reset_message(done)

    # -- status ------------------------------------------------------------------------------

    def wanted_status(self, inventory: Mapping[str, float], now: float) -> dict[str, Any]:
        """The heal keys as they should read now (None values are left out)."""
        wanted: dict[str, Any] = {
            "inventory": {k: int_if_whole(v) for k, v in sorted(inventory.items())},
            "healCount": self.heal_count,
        }
        if inventory:
            wanted["lowestInventory"] = int_if_whole(min(inventory.values()))
        if self.last_heal is not None:
            recent = {
                p: rfc3339(t, milliseconds=True) for p, t in self.policy.export_state(now).items()
            }
            wanted["lastHeal"] = {**self.last_heal, "recentResets": recent}
        return wanted

    def status_patch(
        self, inventory: Mapping[str, float], now: float, *, force: bool = False
    ) -> dict[str, Any] | None:
        """The merge patch of `status` for this check, or None when nothing changed or
        the last patch was handed out less than `write_period` ago.

        `inventory` is the check's (pod → value). With `force` the patch is returned
        even when the values are the same (after a reset, so the reset's time shows),
        still within the period. Call `written_ok` once the patch was accepted; a patch
        that failed is sent again after the period.
        """
        self.inventory = dict(inventory)
        wanted = self.wanted_status(inventory, now)
        if not force and wanted == self.written:
            return None
        if not self.write_due(now):
            return None
        self._last_write_at = now
        patch: dict[str, Any] = dict(wanted)
        old_inventory = self.written.get("inventory") or {}
        patch["inventory"] = {
            **{k: None for k in old_inventory if k not in wanted["inventory"]},
            **wanted["inventory"],
        }
        if "lowestInventory" not in wanted and "lowestInventory" in self.written:
            patch["lowestInventory"] = None
        if "lastHeal" in wanted:
            old_recent = (self.written.get("lastHeal") or {}).get("recentResets") or {}
            new_recent = wanted["lastHeal"]["recentResets"]
            patch["lastHeal"] = {
                **wanted["lastHeal"],
                "recentResets": {
                    **{k: None for k in old_recent if k not in new_recent},
                    **new_recent,
                },
            }
        self._pending = wanted
        return patch

    def write_due(self, now: float) -> bool:
        """Whether the period since the last patch is over (a clock set back counts as over)."""
        last = self._last_write_at
        return last is None or not 0 <= now - last < self.write_period

    def written_ok(self) -> None:
        """The last `status_patch` was accepted by the API server."""
        if self._pending is not None:
            self.written, self._pending = self._pending, None
