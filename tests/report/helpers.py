"""Moving the in-process sandbox's clock and refreshing the ledger's codes from it (status)."""

from __future__ import annotations

import datetime as dt

from pipeline.commands import status_files
from tests.apply_helpers import SandboxRun


def move_sandbox_clock_to(run: SandboxRun, instant: dt.datetime) -> None:
    run.state.clock.advance((instant - run.state.clock.now()).total_seconds())


def earliest_start(run: SandboxRun) -> dt.datetime:
    return min(code.starts_at for code in run.state.codes.values())


def latest_start(run: SandboxRun) -> dt.datetime:
    return max(code.starts_at for code in run.state.codes.values())


async def refresh(run: SandboxRun, now: dt.datetime):
    return await status_files(
        ledger_path=run.ledger, out=run.folder / "status.csv", transport=run.transport, now=now
    )
