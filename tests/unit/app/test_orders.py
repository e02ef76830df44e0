"""The simulation and the steps of an order, with injected randomness and sleep."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

from promdemo_app.inventory import Inventory
from promdemo_app.metrics import NullRecorder
from promdemo_app.orders import Outcome, Shop
from promdemo_app.simulation import Simulation, SimulationConfig


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def test_simulation_sleeps_within_the_bounds() -> None:
    sleeps = Sleeps()
    config = SimulationConfig(
        dependency_min_seconds=0.2,
        dependency_max_seconds=0.4,
        processing_min_seconds=1.0,
        processing_max_seconds=2.0,
        dependency_failure_rate=0.0,
    )
    simulation = Simulation(config, rng=random.Random(1), sleep=sleeps)
    for _ in range(50):
        assert simulation.call_dependency() is True
        simulation.process()
    dependency, processing = sleeps.calls[0::2], sleeps.calls[1::2]
    assert all(0.2 <= s <= 0.4 for s in dependency)
    assert all(1.0 <= s <= 2.0 for s in processing)


def test_failure_rate_is_respected() -> None:
    always = Simulation(SimulationConfig(dependency_failure_rate=1.0), sleep=lambda s: None)
    assert not any(always.call_dependency() for _ in range(100))
    tenth = Simulation(
        SimulationConfig(dependency_failure_rate=0.1), rng=random.Random(3), sleep=lambda s: None
    )
    failures = sum(not tenth.call_dependency() for _ in range(10_000))
    assert 800 < failures < 1200


def test_simulation_off_never_sleeps_nor_fails() -> None:
    sleeps = Sleeps()
    simulation = Simulation(
        SimulationConfig(enabled=False, dependency_failure_rate=1.0), sleep=sleeps
    )
    assert all(simulation.call_dependency() for _ in range(100))
    simulation.process()
    assert sleeps.calls == []


class GatedSimulation(Simulation):
    """The dependency call waits until every order has checked the stock."""

    def __init__(self, gate: threading.Barrier) -> None:
        super().__init__(SimulationConfig(enabled=False))
        self.gate = gate

    def call_dependency(self) -> bool:
        self.gate.wait(timeout=60)
        return True


def test_oversell_lets_concurrent_orders_past_the_check() -> None:
    orders = 10
    inventory = Inventory(3)
    gated = GatedSimulation(threading.Barrier(orders))
    shop = Shop(inventory, gated, NullRecorder(), oversell=True)
    with ThreadPoolExecutor(max_workers=orders) as pool:
        outcomes = list(pool.map(lambda _: shop.place_order(), range(orders)))
    assert outcomes.count(Outcome.SUCCESS) == orders
    assert inventory.level == 3 - orders


def test_atomic_orders_never_oversell() -> None:
    inventory = Inventory(3)
    shop = Shop(
        inventory, Simulation(SimulationConfig(enabled=False)), NullRecorder(), oversell=False
    )
    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(lambda _: shop.place_order(), range(10)))
    assert outcomes.count(Outcome.SUCCESS) == 3
    assert outcomes.count(Outcome.OUT_OF_STOCK) == 7
    assert inventory.level == 0
