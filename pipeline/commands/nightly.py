"""``nightly-summary``: the nightly job's last step, from apply's results and the ledger."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import anyio
import anyio.to_thread

from pipeline.commands.runs import require_ledger
from pipeline.ledger.location import LedgerLocation
from pipeline.ledger.store import DEFAULT_LEDGER, Ledger
from pipeline.report.nightly import STEP_EXIT, NightlySummary, nightly_summary, read_results


async def summarise_night(
    *,
    ledger_path: LedgerLocation = DEFAULT_LEDGER,
    results: Path | None = None,
    apply_exit: int = STEP_EXIT,
    status_exit: int = STEP_EXIT,
    now: dt.datetime | None = None,
) -> NightlySummary:
    """The nightly job's summary (``report.nightly``): tonight's counts from apply's
    ``results`` file and the ledger, what is new since the last summary, and the job's exit
    code (0 nothing new, 1 new trouble, else the worse of ``apply_exit`` and ``status_exit``
    from 2 up). Records tonight's trouble as known in the ledger.

    Raises UsageError (exit 2) for a missing ledger, LedgerError (exit 3) when a PostgreSQL
    ledger's server can't be reached.
    """
    now = now or dt.datetime.now(dt.UTC)
    await require_ledger(ledger_path, "nightly-summary")
    table = await anyio.to_thread.run_sync(read_results, results)
    async with await Ledger.open(ledger_path) as ledger:
        return await nightly_summary(
            ledger, table, now=now, apply_exit=apply_exit, status_exit=status_exit
        )
