"""An asyncio event loop whose clock jumps instead of sleeping (like trio's autojump clock).

The clock is real time plus every jump made so far: when every task is waiting on a timer, the
loop jumps straight to the next timer instead of sleeping. (Real time keeps flowing underneath,
as a real clock would: a limiter that computes a wait of 1e-17 s still sees time pass.)
Rate limiters (aiolimiter), the scheduler's pacing, ``anyio.sleep`` and the sandbox's rate
windows all read this clock, so a run that takes minutes of Seam time takes a fraction of a
second, with every wait still computed and honoured. Worker threads (the ledger) get a short
real grace period before the clock jumps.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from typing import Any

REAL_GRACE = 0.0005


class _JumpingSelector:
    def __init__(self, inner: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._inner = inner
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is not None and timeout <= 0:
            return self._inner.select(0)
        events = self._inner.select(REAL_GRACE if timeout is not None else None)
        if not events and timeout is not None:
            self._loop.jumped += timeout
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self.jumped = 0.0
        self._selector = _JumpingSelector(self._selector, self)  # type: ignore[has-type]

    def time(self) -> float:
        return time.monotonic() + self.jumped


VIRTUAL_BACKEND = ("asyncio", {"loop_factory": VirtualTimeLoop})
