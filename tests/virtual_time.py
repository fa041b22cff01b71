"""An asyncio event loop whose clock moves only when every task waits (trio's autojump clock).

The clock starts at 0 (or where a test asks: ``virtual_backend(start)``) and reads
nothing real: when every task is waiting on a timer, the loop jumps straight to the next timer
instead of sleeping, so a run that takes minutes of Seam time takes a fraction of a second, with
every wait still computed and honoured. Rate limiters (aiolimiter), the scheduler's pacing,
``anyio.sleep`` and the sandbox's rate windows all read this clock. How loaded the machine is
never shows in what a test measures.

Worker threads (the ledger, file and Polars work) run in no virtual time: while one is busy the
loop waits for it, in real time, and the clock stands still; it jumps only once no worker is
busy and nothing else is ready. A timer that falls due without the clock moving (a limiter
whose computed wait rounds to nothing) moves it by ``NUDGE``, so that a wait of 1e-17 s still
sees time pass and such a timer can't spin forever.
"""

from __future__ import annotations

import asyncio
import selectors
import threading
from collections.abc import Callable
from typing import Any

from anyio._backends._asyncio import WorkerThread

# One nanosecond: the monotonic clock's resolution, so no timer lands between two nudges.
NUDGE = 1e-9
# How long one real wait for a busy worker lasts before the loop looks at its workers again.
THREAD_POLL = 0.05


class _JumpingSelector:
    def __init__(self, inner: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._inner = inner
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        loop = self._loop
        if timeout is None:
            return self._inner.select(None)
        if timeout <= 0:
            events = self._inner.select(0)
            if not events and not loop._ready and not loop._stopping:  # type: ignore[attr-defined]
                loop.virtual += NUDGE  # only a due timer: let time pass for it
            return events
        events = self._inner.select(0)
        while not events and loop.workers_busy():
            events = self._inner.select(THREAD_POLL)
        if not events:
            loop.virtual += timeout
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector loop with a virtual clock (see the module's docstring)."""

    def __init__(self, start: float = 0.0) -> None:
        super().__init__()
        self.virtual = start
        self._executor_jobs = 0
        self._executor_lock = threading.Lock()
        self._selector = _JumpingSelector(self._selector, self)  # type: ignore[has-type]

    def time(self) -> float:
        return self.virtual

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> Any:
        """``asyncio.to_thread`` and the loop's own ``getaddrinfo`` run here: counted as busy
        workers until their thread is done."""
        with self._executor_lock:
            self._executor_jobs += 1

        def run() -> Any:
            try:
                return func(*args)
            finally:
                with self._executor_lock:
                    self._executor_jobs -= 1
                self.call_soon_threadsafe(lambda: None)  # wake the selector

        return super().run_in_executor(executor, run)

    def workers_busy(self) -> bool:
        """Whether a worker thread of this loop is running a job: anyio's (``to_thread``)
        or the executor's."""
        if self._executor_jobs:
            return True
        for thread in threading.enumerate():
            if (
                isinstance(thread, WorkerThread)
                and thread.loop is self
                and not thread.stopping
                and thread not in thread.idle_workers
            ):
                return True
        return False


def _loop_starting_at(start: float) -> Callable[[], VirtualTimeLoop]:
    def factory() -> VirtualTimeLoop:
        return VirtualTimeLoop(start)

    return factory


def virtual_backend(start: float = 0.0) -> tuple[str, dict[str, Any]]:
    """anyio's backend option for a test on a virtual clock that reads ``start`` at first."""
    return ("asyncio", {"loop_factory": _loop_starting_at(start)})


VIRTUAL_BACKEND = virtual_backend()
