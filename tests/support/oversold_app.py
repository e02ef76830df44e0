"""An order-service process driven below zero for the tiers that heal it.

`APP_ENV` starts the app with a small stock and short simulated latencies, so that
`oversell`'s concurrent orders all pass the stock check before any decrement;
`inventory` and `resets_counted` read the app back over HTTP.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

TOKEN = "heal-integration-token"

# Small stock, short simulated latencies, no dependency failures: 40 concurrent
# orders all pass the stock check before any decrement, so the gauge goes negative.
APP_ENV = {
    "PROMDEMO_RESET_TOKEN": TOKEN,
    "PROMDEMO_INITIAL_INVENTORY": "5",
    "PROMDEMO_OVERSELL": "true",
    "PROMDEMO_DEPENDENCY_MIN_SECONDS": "0.5",
    "PROMDEMO_DEPENDENCY_MAX_SECONDS": "0.8",
    "PROMDEMO_DEPENDENCY_FAILURE_RATE": "0",
    "PROMDEMO_PROCESSING_MIN_SECONDS": "0.05",
    "PROMDEMO_PROCESSING_MAX_SECONDS": "0.1",
}


#: Resets a test made itself (to restock after selling out exactly), by app URL:
#: `resets_counted` leaves them out, so it counts only the resets under test.
_OWN_RESETS: dict[str, int] = {}


def oversell(base_url: str, orders: int = 40, *, token: str = TOKEN) -> int:
    """Rounds of `orders` concurrent POST /order until the inventory is negative; returns it.

    `token` is the app's reset token: a round that sells out exactly (0, no race) is
    restocked with a reset before the next round.
    """
    limits = httpx.Limits(max_connections=orders, max_keepalive_connections=orders)
    with httpx.Client(timeout=30, limits=limits) as client:

        def one(_: int) -> int:
            return client.post(f"{base_url}/order").status_code

        # One round nearly always oversells; more rounds keep it certain.
        for _ in range(10):
            with ThreadPoolExecutor(max_workers=orders) as pool:
                codes = list(pool.map(one, range(orders)))
            assert set(codes) <= {200, 409}, codes
            value = inventory(base_url)
            if value < 0:
                return value
            if value == 0:  # sold out exactly: nothing more sells, start from full stock
                headers = {"Authorization": f"Bearer {token}"}
                client.post(f"{base_url}/inventory/reset", headers=headers).raise_for_status()
                _OWN_RESETS[base_url] = _OWN_RESETS.get(base_url, 0) + 1
    raise AssertionError(f"{orders} concurrent orders never drove the inventory below 0")


def inventory(base_url: str) -> int:
    return int(httpx.get(f"{base_url}/inventory", timeout=10).json()["inventory"])


def resets_counted(base_url: str) -> float:
    """The app's `inventory_resets_total`, less the resets `oversell` made itself."""
    for line in httpx.get(f"{base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith("inventory_resets_total "):
            return float(line.split()[1]) - _OWN_RESETS.get(base_url, 0)
    return 0.0
