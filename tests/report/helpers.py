"""Moving the in-process sandbox's clock and refreshing the ledger's codes from it (status)."""

from __future__ import annotations

import datetime as dt

import polars as pl

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


def stays_with_guests(
    door: str, reservations: dict[str, tuple[str, str, str]], *, elsewhere: str = "LOST"
) -> pl.DataFrame:
    """An export of ``{reservation_id: (check_in, check_out, guest_name)}`` on ``door``; the
    reservation named ``elsewhere`` on a door the workspace doesn't have."""
    return pl.DataFrame(
        {
            "reservation_id": list(reservations),
            "device_id": [door if key != elsewhere else "no-such-door" for key in reservations],
            "check_in": [stay[0] for stay in reservations.values()],
            "check_out": [stay[1] for stay in reservations.values()],
            "guest_name": [stay[2] for stay in reservations.values()],
        }
    )
