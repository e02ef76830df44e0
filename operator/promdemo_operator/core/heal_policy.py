"""When to reset a pod's inventory: threshold, `for`, cooldown.

The policy is a small state machine per pod, fed one observation per check.
It is pure: no I/O, and the time is always passed in (`now`, seconds since the
epoch), so tests drive it with a fake clock.

Semantics are those of a Prometheus alert evaluated every `interval`
(`evaluation_interval`) with a `for` duration:

* an observation is *below* when ``value < threshold``;
* the first below-observation of a run starts the clock (`below_since`);
* the pod is due when it has been below at every check and
  ``now - below_since >= for`` (with ``for = 0`` the first below-observation is
  due, like an alert with no `for`);
* one observation at or above the threshold, or a check that could not read the
  value (a failed scrape makes a Prometheus series stale), starts over;
* a due pod is reset unless it was reset less than `cooldown` seconds ago.

The last reset time per pod is the only state that must survive a restart of
the operator (otherwise a restart within the cooldown could reset the same pod
twice); `export_state`/`import_state` move it in and out as plain JSON.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the typed spec; only its attributes are read here
    from promdemo_operator.core.spec import AutoHealSpec


@dataclass(frozen=True)
class PolicyConfig:
    """`spec.autoHeal` durations in seconds (what `spec.parse_spec` yields)."""

    threshold: float = 0.0
    interval: float = 5.0
    for_seconds: float = 0.0
    cooldown: float = 30.0

    def __post_init__(self) -> None:
        for name in ("threshold", "interval", "for_seconds", "cooldown"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value}")
        if self.interval <= 0:
            raise ValueError(f"interval must be > 0, got {self.interval}")
        if self.for_seconds < 0:
            raise ValueError(f"for must be >= 0, got {self.for_seconds}")
        if self.cooldown < 0:
            raise ValueError(f"cooldown must be >= 0, got {self.cooldown}")

    @classmethod
    def from_spec(cls, auto_heal: AutoHealSpec) -> PolicyConfig:
        """From the typed `spec.autoHeal` (``spec.parse_spec(body).auto_heal``).

        `enabled`, `source` and `pod_access` are the adapter's business (whether
        to run, whether to reset, how to reach pods); the policy takes the rest.
        """
        return cls(
            threshold=float(auto_heal.threshold),
            interval=float(auto_heal.interval_seconds),
            for_seconds=float(auto_heal.for_seconds),
            cooldown=float(auto_heal.cooldown_seconds),
        )


class Action(enum.Enum):
    """What the policy says about one observation."""

    OK = "ok"  # at or above the threshold
    PENDING = "pending"  # below, but not for long enough yet
    RESET = "reset"  # below for `for` seconds, not in cooldown: reset it now
    COOLDOWN = "cooldown"  # would be due, but was reset less than `cooldown` ago
    UNKNOWN = "unknown"  # no value could be read: the run starts over


@dataclass(frozen=True)
class Decision:
    pod: str
    action: Action
    value: float | None
    # First below-observation of the current run (epoch seconds), if any.
    below_since: float | None = None
    # When the pod may be reset again (epoch seconds), while in cooldown.
    cooldown_until: float | None = None

    @property
    def reset(self) -> bool:
        return self.action is Action.RESET


@dataclass
class _PodState:
    below_since: float | None = None
    last_reset: float | None = None


@dataclass
class HealPolicy:
    """Per-pod decisions for one PromDemo. Not thread-safe; one owner (the engine)."""

    config: PolicyConfig = field(default_factory=PolicyConfig)
    _pods: dict[str, _PodState] = field(default_factory=dict, repr=False)

    # -- observations ------------------------------------------------------

    def observe(self, pod: str, value: float, now: float) -> Decision:
        """Feed one check's value for `pod`; say whether to reset it now."""
        state = self._pods.setdefault(pod, _PodState())
        if not value < self.config.threshold:  # NaN is "not below", like PromQL
            state.below_since = None
            return Decision(pod, Action.OK, value)
        if state.below_since is None:
            state.below_since = now
        if now - state.below_since < self.config.for_seconds:
            return Decision(pod, Action.PENDING, value, state.below_since)
        return self._due(pod, state, value, now)

    def observe_missing(self, pod: str, now: float) -> Decision:
        """A check that could not read `pod`'s value: like a stale series, start over."""
        state = self._pods.setdefault(pod, _PodState())
        state.below_since = None
        return Decision(pod, Action.UNKNOWN, None)

    def confirm(self, pod: str, value: float, now: float) -> Decision:
        """Decide on a live value when `for` was already judged elsewhere.

        The event-driven mode uses this: Alertmanager said the alert fired (its
        rule carries the `for`); the operator checks only that the live value is
        still below the threshold and that the pod is not in cooldown.
        """
        state = self._pods.setdefault(pod, _PodState())
        if not value < self.config.threshold:
            state.below_since = None
            return Decision(pod, Action.OK, value)
        if state.below_since is None:
            state.below_since = now
        return self._due(pod, state, value, now)

    def recheck(self, pod: str, value: float, now: float) -> Decision:
        """The live value read right before a reset: reset only if still below.

        Does not restart the `for` clock; a recovered value ends the run.
        """
        state = self._pods.setdefault(pod, _PodState())
        if not value < self.config.threshold:
            state.below_since = None
            return Decision(pod, Action.OK, value)
        return self._due(pod, state, value, now)

    def _due(self, pod: str, state: _PodState, value: float, now: float) -> Decision:
        until = self.cooldown_until(pod)
        if until is not None and now < until:
            return Decision(pod, Action.COOLDOWN, value, state.below_since, until)
        return Decision(pod, Action.RESET, value, state.below_since)

    # -- resets ------------------------------------------------------------

    def record_reset(self, pod: str, now: float) -> None:
        """A reset of `pod` was confirmed at `now`: start its cooldown, end the run."""
        state = self._pods.setdefault(pod, _PodState())
        state.last_reset = now
        state.below_since = None

    def last_reset(self, pod: str) -> float | None:
        state = self._pods.get(pod)
        return state.last_reset if state else None

    def cooldown_until(self, pod: str) -> float | None:
        last = self.last_reset(pod)
        return None if last is None else last + self.config.cooldown

    def in_cooldown(self, pod: str, now: float) -> bool:
        until = self.cooldown_until(pod)
        return until is not None and now < until

    def below_since(self, pod: str) -> float | None:
        state = self._pods.get(pod)
        return state.below_since if state else None

    # -- housekeeping and persistence ---------------------------------------

    def update_config(self, config: PolicyConfig) -> None:
        """A changed spec keeps the per-pod state (runs and cooldowns)."""
        self.config = config

    def forget_absent(self, present: Iterable[str], now: float) -> None:
        """Drop state of pods no longer listed, keeping cooldowns that still run.

        A pod that comes back (e.g. turned not-Ready for a while) must not be
        reset again within its cooldown, and its `for` run restarts.
        """
        keep = set(present)
        for pod in list(self._pods):
            if pod in keep:
                continue
            state = self._pods[pod]
            if self.in_cooldown(pod, now):
                state.below_since = None
            else:
                del self._pods[pod]

    def export_state(self, now: float) -> dict[str, float]:
        """Last reset time per pod, for the pods still in cooldown (JSON-ready)."""
        return {
            pod: round(state.last_reset, 3)
            for pod, state in sorted(self._pods.items())
            if state.last_reset is not None and self.in_cooldown(pod, now)
        }

    def import_state(self, saved: Mapping[str, object] | None) -> None:
        """Merge saved last-reset times; the later of saved and known wins. Junk is ignored."""
        for pod, raw in (saved or {}).items():
            try:
                when = float(raw)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                continue
            if when != when:  # NaN
                continue
            state = self._pods.setdefault(str(pod), _PodState())
            if state.last_reset is None or when > state.last_reset:
                state.last_reset = when
