"""Write-ahead of a reset's cooldown, so that a change of leader never resets a pod twice.

The heal cooldown lives in the PromDemo's status: `status.lastHeal.recentResets`
(pod → time of its last reset; `heal/status.py` writes it after a check and
restores it when a heal loop starts, in whichever operator process starts it).
Written only after the reset, it leaves a gap: a leader killed between its POST
and its status write takes the reset's time with it, and the next leader, seeing
the pod negative again, resets it a second time within the cooldown.

With leader election on (`runtime/startup.py`), the pod client asks this journal before each
reset: it writes the pod's entry in `recentResets` first (a merge patch of the
status subresource), and the reset is sent only once that write succeeded. The
next leader restores the entry and keeps the cooldown. When the write fails (the
API server does not answer) the reset is not sent: a leader that cannot reach the
API server loses its Lease within the renew deadline anyway, and no reset without
its record is the side that never double-resets. A reset the pod then refuses or
never receives leaves the entry in place: at worst a pod waits one cooldown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from promdemo_operator.core.timefmt import rfc3339
from promdemo_operator.runtime.kube import KubeError

if TYPE_CHECKING:
    from promdemo_operator.runtime.handlers.context import OperatorContext

log = logging.getLogger("promdemo.heal")

RESET_PATH = "/inventory/reset"


class ResetJournal:
    """`await journal(url)`: None once the cooldown of the pod(s) behind `url` is written,
    else why it could not be (the reset must not be sent)."""

    def __init__(self, ctx: OperatorContext, *, clock: Callable[[], float] = time.time) -> None:
        self.ctx = ctx
        self.clock = clock

    def owners(self, url: str) -> list[tuple[str, str, str]]:
        """(namespace, PromDemo, pod) of every watched pod whose reset URL is `url`.

        Usually one; two only when the watches still show a deleted pod beside the pod
        that took its address (then both get the entry: the safe side).
        """
        found = []
        for (namespace, name), loop in list(self.ctx.heal_loops.items()):
            if loop.settings is None:  # not configured yet: it resets nothing
                continue
            for pod in loop.pods():
                if pod.base_url and url == f"{pod.base_url}{RESET_PATH}":
                    found.append((namespace, name, pod.name))
        return found

    async def __call__(self, url: str) -> str | None:
        owners = self.owners(url)
        if not owners:
            return f"no watched pod has the reset URL {url}"
        when = rfc3339(self.clock(), milliseconds=True)
        for namespace, name, pod in owners:
            patch = {"status": {"lastHeal": {"recentResets": {pod: when}}}}
            try:
                await self.ctx.call(
                    self.ctx.kube.merge_patch, "PromDemo", namespace, name, patch,
                    subresource="status",
                )  # fmt: skip
            except KubeError as e:
                log.warning(
                    "%s/%s: reset of pod %s not sent: its cooldown could not be written first: %s",
                    namespace, name, pod, e,
                )  # fmt: skip
                return f"the cooldown could not be written to the status first: {e}"
        return None
