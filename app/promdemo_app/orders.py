"""Placing an order: the optional request body, and the steps from stock check to sale."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from enum import Enum

from promdemo_app.inventory import Inventory
from promdemo_app.metrics import Recorder
from promdemo_app.simulation import Simulation

# Ids must survive a trip through JavaScript (Grafana, browsers): 2**53 - 1.
MAX_ID = 2**53 - 1
MAX_AMOUNT = 1_000_000


class InvalidOrder(ValueError):
    """The order's body cannot be accepted (answered 400 with this message)."""


@dataclass(frozen=True)
class OrderRequest:
    order_id: int | None = None
    user_id: int | None = None
    amount: float | None = None


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN and Infinity, which are not JSON.
    raise InvalidOrder(f"request body is not valid JSON: {name} is not a JSON number")


def _json_type(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _identifier(body: dict[str, object], key: str) -> int | None:
    if key not in body:
        return None
    value = body[key]
    # bool is an int in Python; true is not an id.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise InvalidOrder(f"{key} must be an integer from 0 to {MAX_ID}")
    return value


def parse_order_body(raw: bytes) -> OrderRequest:
    """An `OrderRequest` from a POST /order body; an empty body is an order with no details.

    Raises InvalidOrder for malformed JSON, a body that is not an object, or a
    field with the wrong type or an absurd value. Unknown fields are ignored.
    """
    if not raw.strip():
        return OrderRequest()
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except InvalidOrder:
        raise
    except json.JSONDecodeError as e:
        raise InvalidOrder(f"request body is not valid JSON: {e.msg} at position {e.pos}") from None
    except (ValueError, RecursionError):
        # Undecodable bytes, integers too long to convert, nesting too deep.
        raise InvalidOrder("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidOrder(f"request body must be a JSON object, not {_json_type(body)}")

    amount = body.get("amount")
    if "amount" in body:
        valid = (
            isinstance(amount, int | float)
            and not isinstance(amount, bool)
            and math.isfinite(amount)
            and 0 <= amount <= MAX_AMOUNT
        )
        if not valid:
            raise InvalidOrder(f"amount must be a number from 0 to {MAX_AMOUNT}")
    return OrderRequest(
        order_id=_identifier(body, "order_id"),
        user_id=_identifier(body, "user_id"),
        amount=amount,  # type: ignore[arg-type]
    )


class Outcome(Enum):
    SUCCESS = "success"
    OUT_OF_STOCK = "out_of_stock"
    DEPENDENCY_ERROR = "dependency_error"


class Shop:
    """Sells from `inventory`, oversold (check now, take later) or atomically."""

    def __init__(
        self,
        inventory: Inventory,
        simulation: Simulation,
        recorder: Recorder,
        *,
        oversell: bool,
    ) -> None:
        self.inventory = inventory
        self.simulation = simulation
        self.recorder = recorder
        self.oversell = oversell

    def place_order(self) -> Outcome:
        started = time.perf_counter()
        outcome = self._oversold() if self.oversell else self._reserved()
        seconds = time.perf_counter() - started
        if outcome is Outcome.SUCCESS:
            self.recorder.order_succeeded(seconds)
        else:
            self.recorder.order_failed(outcome.value, seconds)
        return outcome

    def _call_dependency(self) -> bool:
        started = time.perf_counter()
        ok = self.simulation.call_dependency()
        self.recorder.dependency_called(time.perf_counter() - started, ok)
        return ok

    def _oversold(self) -> Outcome:
        # The Flask practice demo's race (docs/lessons.md), on purpose: between this
        # check and take() below, every concurrent order sees the same stock.
        if not self.inventory.in_stock():
            return Outcome.OUT_OF_STOCK
        if not self._call_dependency():
            return Outcome.DEPENDENCY_ERROR
        self.simulation.process()
        self.inventory.take()
        return Outcome.SUCCESS

    def _reserved(self) -> Outcome:
        reservation = self.inventory.reserve()
        if reservation is None:
            return Outcome.OUT_OF_STOCK
        try:
            if not self._call_dependency():
                self.inventory.release(reservation)
                return Outcome.DEPENDENCY_ERROR
            self.simulation.process()
        except BaseException:
            # A crash mid-order must not leak the unit.
            self.inventory.release(reservation)
            raise
        return Outcome.SUCCESS
