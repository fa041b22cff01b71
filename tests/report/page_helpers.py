"""A ledger with every kind of trouble the HTML report shows, made through the in-process
sandbox, and the PINs it holds."""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from pipeline.commands import ApplyRun
from pipeline.settings import BudgetOptions
from tests.apply_helpers import SandboxRun, start_sandbox
from tests.generate import make_devices
from tests.report.helpers import move_sandbox_clock_to, refresh

# A door name with markup: the page must show it as text.
MARKUP_DOOR = '<script>alert("door")</script> Suite A&B'
# Every door takes at most this many codes (the full door gets budget_exhausted rows).
BUDGET = 3
# The check-ins: a stuck door's (its codes need attention once their window starts), a
# working door's (set with a PIN, or not yet), a full door's (two past its budget), a stay
# cancelled after its code was made (orphaned), and a row that can't be read.
STUCK = {"S1": ("2027-02-01", "2027-02-05"), "S2": ("2027-02-02", "2027-02-06")}
WORKING = {
    "W1": ("2027-02-01", "2027-02-04"),
    "W2": ("2027-02-06", "2027-02-08"),
    "CANCEL": ("2027-02-09", "2027-02-11"),
}
FULL = {f"F{n}": (f"2027-02-{n + 3:02d}", f"2027-02-{n + 4:02d}") for n in range(5)}
# The report is made two hours after the first stays (S1, W1) began: their codes set, or stuck.
SINCE_FIRST_STAYS = dt.timedelta(hours=2)


@dataclass(frozen=True)
class TroubledLedger:
    run: SandboxRun
    doors: dict[str, str]  # stuck, working, full → device_id
    applies: tuple[ApplyRun, ...]
    now: dt.datetime

    @property
    def ledger(self) -> Path:
        return self.run.ledger

    def pins(self) -> set[str]:
        """Every PIN the ledger holds."""
        with sqlite3.connect(self.ledger) as db:
            return {pin for (pin,) in db.execute("SELECT code FROM codes WHERE code IS NOT NULL")}


def _stays(door: str, reservations: dict[str, tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "reservation_id": list(reservations),
            "device_id": [door] * len(reservations),
            "check_in": [dates[0] for dates in reservations.values()],
            "check_out": [dates[1] for dates in reservations.values()],
            "guest_name": [f"Guest {reservation}" for reservation in reservations],
        }
    )


async def troubled_ledger(folder: Path, monkeypatch: pytest.MonkeyPatch) -> TroubledLedger:
    """Two apply runs (the second without CANCEL) and a status two hours after the first
    check-ins: codes needing attention (the stuck door), an orphan, budget_exhausted and
    invalid_row rejections, codes set with their PIN and codes still waiting for one."""
    payload = make_devices(3, seed=66)
    stuck, working, full = (device["device_id"] for device in payload["devices"])
    payload["devices"][1]["properties"]["dormakaba_oracode_metadata"]["door_name"] = MARKUP_DOOR
    payload["sandbox"] = {"stuck_devices": [stuck]}
    run = start_sandbox(payload, folder, monkeypatch)
    bad = pl.DataFrame(
        {
            "reservation_id": ["BAD"],
            "device_id": [working],
            "check_in": ["not-a-date"],
            "check_out": ["2027-02-05"],
            "guest_name": ["Guest BAD"],
        }
    )
    tonight = pl.concat([_stays(stuck, STUCK), _stays(working, WORKING), _stays(full, FULL), bad])
    budget = BudgetOptions(per_door=BUDGET)
    first = await run.apply(tonight, budget=budget)
    second = await run.apply(tonight.filter(pl.col("reservation_id") != "CANCEL"), budget=budget)
    first_stays = [
        code.starts_at for code in run.state.codes.values() if code.name.split()[0] in ("S1", "W1")
    ]
    now = max(first_stays) + SINCE_FIRST_STAYS
    move_sandbox_clock_to(run, now)
    await refresh(run, now)
    return TroubledLedger(
        run, {"stuck": stuck, "working": working, "full": full}, (first, second), now
    )
