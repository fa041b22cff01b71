"""What the commands that keep the ledger share: a ledger that must already exist, and a run
recorded as stopped."""

from __future__ import annotations

import functools

import anyio
import anyio.to_thread

from pipeline.apply.policy import KEY_REFUSED_STATUS, key_refused
from pipeline.apply.run import ApplySession
from pipeline.common.errors import PipelineError, SeamError, UsageError
from pipeline.ledger.location import LEDGER_ENV, LedgerLocation, PostgresLedger
from pipeline.ledger.postgres import holds_ledger


async def require_ledger(ledger: LedgerLocation, command: str) -> None:
    """Commands that read what runs did need their ledger: a wrong path, or a database that
    holds no ledger, is exit 2 (a PostgreSQL server out of reach is exit 3)."""
    if isinstance(ledger, PostgresLedger):
        if not await anyio.to_thread.run_sync(
            functools.partial(holds_ledger, ledger, purpose=command)
        ):
            raise UsageError(
                f"ledger {ledger} does not exist: its database has no ledger tables",
                hint=f"check --ledger, else {LEDGER_ENV}; apply creates the ledger",
            )
    elif not await anyio.to_thread.run_sync(ledger.exists):
        raise UsageError(
            f"ledger {ledger} does not exist",
            hint=f"check --ledger, else {LEDGER_ENV}; apply creates the ledger",
        )


async def stop_run(session: ApplySession, exc: PipelineError) -> PipelineError:
    """Record in the ledger that the run stopped before its work; returns the error to raise
    (a refused key becomes the one-line RunStopped that says which variable to check)."""
    stop = exc
    if isinstance(exc, SeamError) and exc.status in KEY_REFUSED_STATUS:
        stop = key_refused(exc)
    await session.ledger.finish_run(session.run_id, stop.exit_code, {})
    return stop
