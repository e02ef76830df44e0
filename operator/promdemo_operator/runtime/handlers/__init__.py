"""kopf handlers: thin adapters around the core. Importing this package registers them.

- `watches`: what is watched, the in-memory indexes, the events that wake a reconcile;
- `reconcile`: one reconcile loop per PromDemo;
- `prometheus`: asking the selecting Prometheus (one snapshot cache per Prometheus),
  the observe loop each reconcile daemon runs;
- `heal`: one heal loop per PromDemo with autoHeal on;
- `webhook`: the Alertmanager webhook receiver; `health`: `/healthz` on kopf's loop;
- `context`: what they share (kopf's memo), `pod_http`: the heal loops' HTTP clients.
"""

from typing import Any

import kopf

from promdemo_operator.runtime.handlers import heal, health, prometheus, reconcile, watches, webhook
from promdemo_operator.runtime.handlers.context import OperatorContext

__all__ = ["heal", "health", "prometheus", "reconcile", "watches", "webhook"]


@kopf.on.startup()
async def ensure_context(memo: kopf.Memo, **_: Any) -> None:
    """Without `promdemo operator` (`kopf run -m promdemo_operator.runtime.handlers`): defaults."""
    if memo.get("context") is None:
        from promdemo_operator.runtime.options import default_options

        options = default_options()
        memo["context"] = OperatorContext.create(options)
        memo["options"] = options
