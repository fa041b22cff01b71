"""Stopping on the operator's word: SIGTERM (cron, systemd, Kubernetes) and SIGINT (Ctrl-C).

The first signal asks the run to stop: nothing more is sent, requests in flight may finish for
``GRACE_SECONDS``, the ledger is committed, the results and the run's record are written, and
the command exits 128 + the signal's number (143, 130) with one line. A second signal ends the
process at once: the ledger is still safe (every create was committed as ``sending`` before it
was sent, and the next run settles those).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio

from pipeline.common.errors import Interrupted

# How long requests in flight may take to finish once the run is asked to stop.
GRACE_SECONDS = 10.0
SIGNALS = (signal.SIGTERM, signal.SIGINT)
T = TypeVar("T")


class Interrupt:
    """Whether a stop was asked for, and by which signal. ``requested`` is set by the first."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.requested = anyio.Event()

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "a signal"

    def request(self, signum: int) -> None:
        self.signum = signum
        self.requested.set()

    def error(self, what: str = "nothing was sent") -> Interrupted:
        """The stop as the error a command ends with; ``what`` says what was done."""
        return Interrupted(
            self.signum or signal.SIGTERM,
            f"stopped by {self.name}: {what}",
            hint="rerun to finish: nothing done is lost",
        )


@asynccontextmanager
async def until_interrupted(interrupt: Interrupt | None) -> AsyncIterator[None]:
    """Run the block until it ends or a stop is asked for; then the block is cancelled and
    ``Interrupted`` raised (for work that sends nothing that must finish, e.g. listing)."""
    if interrupt is None:
        yield
        return
    failure: BaseException | None = None
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            await interrupt.requested.wait()
            group.cancel_scope.cancel()

        group.start_soon(watch)
        try:
            yield
        except Exception as exc:
            failure = exc  # raised below as itself, not inside an exception group
        group.cancel_scope.cancel()
    if interrupt.requested.is_set():
        raise interrupt.error()
    if failure is not None:
        raise failure


async def run_with_signals(command: Callable[[Interrupt], Awaitable[T]]) -> T:
    """Run ``command`` with SIGTERM and SIGINT turned into an ``Interrupt``: the first asks it
    to stop, the second ends the process at once with the same exit code."""
    interrupt = Interrupt()
    failure: Exception | None = None
    result: T | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(_watch_signals, interrupt)
        try:
            result = await command(interrupt)
        except Exception as exc:
            failure = exc
        group.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return result  # type: ignore[return-value]


async def _watch_signals(interrupt: Interrupt) -> None:
    with anyio.open_signal_receiver(*SIGNALS) as signals:
        async for signum in signals:
            if interrupt.signum is None:
                print(
                    f"{signal.Signals(signum).name}: stopping; requests in flight finish,"
                    " then the results are written (send it again to stop at once)",
                    file=sys.stderr,
                    flush=True,
                )
                interrupt.request(signum)
                continue
            print(
                f"error: stopped at once by a second {signal.Signals(signum).name}; the ledger"
                " is safe: rerun to finish (codes whose answer was lost are looked for first)",
                file=sys.stderr,
                flush=True,
            )
            os._exit(128 + interrupt.signum)


async def send_until_interrupted(
    interrupt: Interrupt | None,
    send_all: Callable[[], Awaitable[None]],
    stop: Callable[[Interrupted], None],
) -> None:
    """Run ``send_all``; once a stop is asked for, ``stop`` the sending (nothing more is sent,
    requests in flight finish) and, if they haven't within ``GRACE_SECONDS``, cancel them
    (their codes stay ``sending``: the next run looks for them before sending anything).
    Raises what ``send_all`` raised, ``Interrupted`` when it was cancelled."""
    if interrupt is None:
        await send_all()
        return
    failure: Exception | None = None
    with anyio.CancelScope() as hard:
        async with anyio.create_task_group() as group:

            async def stop_after_grace() -> None:
                await interrupt.requested.wait()
                stop(interrupt.error("sending stopped"))
                await anyio.sleep(GRACE_SECONDS)
                hard.cancel()

            group.start_soon(stop_after_grace)
            try:
                await send_all()
            except Exception as exc:
                failure = exc  # raised below as itself, not inside an exception group
            group.cancel_scope.cancel()
    if hard.cancelled_caught:
        failure = failure or interrupt.error("requests still in flight were cut off")
    if failure is not None:
        raise failure
