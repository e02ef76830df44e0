"""The Prometheus and namespace watches wake reconciles only on news (runtime/handlers/watches.py).

kopf delivers objects listed at start (or again after a watch broke off) as events
without a type; those fill the indexes and must wake nothing, while a real change
of what the operator keeps (a Prometheus's selectors, a namespace's labels) must.
"""

from __future__ import annotations

import asyncio

from promdemo_operator.runtime.handlers.context import Triggers
from promdemo_operator.runtime.handlers.watches import _news


def test_a_listing_fills_without_waking_and_a_change_wakes() -> None:
    seen: dict = {}
    listed = {"type": None, "object": {}}
    assert not _news(seen, "monitoring/kps", {"sel": 1}, listed)  # at start
    assert not _news(seen, "monitoring/kps", {"sel": 1}, listed)  # re-listed, same
    assert not _news(seen, "monitoring/kps", {"sel": 1}, {"type": "MODIFIED"})  # status only
    assert _news(seen, "monitoring/kps", {"sel": 2}, {"type": "MODIFIED"})
    assert _news(seen, "monitoring/kps", {"sel": 3}, listed)  # changed while not watched
    assert _news(seen, "monitoring/new", {"sel": 1}, {"type": "ADDED"})
    assert _news(seen, "monitoring/new", None, {"type": "DELETED"})
    assert "monitoring/new" not in seen
    assert not _news(seen, "monitoring/never-seen", None, {"type": "DELETED"})


def test_a_namespace_change_wakes_only_the_promdemos_in_it() -> None:
    async def main() -> None:
        triggers = Triggers()
        demo = triggers.register(("demo", "shop"))
        other = triggers.register(("other", "shop"))
        assert triggers.poke_namespace("demo") == 1
        assert demo.is_set()
        assert not other.is_set()

    asyncio.run(main())
