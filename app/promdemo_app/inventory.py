"""The stock of the one product the shop sells, per process (per pod).

Two ways to sell, chosen by `PROMDEMO_OVERSELL`:

- oversell (the demo): `in_stock()` now, `take()` later. Concurrent orders all
  pass the check before any of them takes a unit, so the level goes negative
  under load. The race is the point of the lessons; it is kept on purpose.
- atomic: `reserve()` checks and takes in one step under the lock; an order that
  fails afterwards gives its unit back with `release()`. The level never goes
  below zero.

The level lives here, not in the `product_inventory` gauge: `on_change` is
called with every new level while the lock is held, so the gauge is written in
the same order as the level changes, and nothing ever reads the gauge back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Reservation:
    """One unit taken by `reserve()`; `generation` ties it to the stock it came from."""

    generation: int


class Inventory:
    """Thread-safe stock level; see the module docstring for the two ways to sell."""

    def __init__(self, initial: int, on_change: Callable[[int], None] | None = None) -> None:
        if initial < 0:
            raise ValueError("initial inventory must be >= 0")
        self.initial = initial
        self._level = initial
        # A reset starts a new generation: a unit reserved before the reset and
        # released after it must not be added to the fresh stock.
        self._generation = 0
        self._lock = threading.Lock()
        self._on_change = on_change or (lambda level: None)

    @property
    def level(self) -> int:
        with self._lock:
            return self._level

    def in_stock(self) -> bool:
        """Oversell step 1: is there stock right now? (Nothing is held.)"""
        with self._lock:
            return self._level > 0

    def take(self) -> int:
        """Oversell step 2: take one unit whatever the level; returns the new level."""
        with self._lock:
            self._level -= 1
            self._on_change(self._level)
            return self._level

    def reserve(self) -> Reservation | None:
        """Atomic: take one unit if there is one, else None."""
        with self._lock:
            if self._level <= 0:
                return None
            self._level -= 1
            self._on_change(self._level)
            return Reservation(self._generation)

    def release(self, reservation: Reservation) -> None:
        """Give back a reserved unit (the order failed), unless a reset came in between."""
        with self._lock:
            if reservation.generation != self._generation:
                return
            self._level += 1
            self._on_change(self._level)

    def reset(self) -> tuple[int, int]:
        """Back to the initial level; returns (level before, level after)."""
        with self._lock:
            before = self._level
            self._level = self.initial
            self._generation += 1
            self._on_change(self._level)
            return before, self._level
