"""A ledger with every kind of trouble the HTML report shows, made through the in-process
sandbox, and the PINs it holds."""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from pipeline.commands import ApplyRun
from pipeline.common.settings import BudgetOptions
from tests.apply_helpers import SandboxRun, start_sandbox
from tests.generate import make_devices
from tests.report.helpers import move_sandbox_clock_to, refresh

# A door name with markup: the page must show it as text.
MARKUP_DOOR = '<script>alert("door")</script> Suite A&B'
# A door name of 400 characters without a space: the page must stay as wide as the window.
LONG_DOOR = "Ferienwohnung" * 30 + "NordOstSud"
# A door name with a right-to-left override: it must not reorder the page's numbers.
BIDI_DOOR = "Suite \u202e12 Nord"
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
    for device, name in zip(payload["devices"], (LONG_DOOR, MARKUP_DOOR, BIDI_DOOR), strict=True):
        device["properties"]["dormakaba_oracode_metadata"]["door_name"] = name
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


class _Tables(HTMLParser):
    """The page's tables by caption: each a list of rows (header row first), each a list of
    cell texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self._rows: list[list[str]] | None = None
        self._caption: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._rows = []
        elif tag == "caption":
            self._caption = []
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("th", "td"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "caption" and self._caption is not None and self._rows is not None:
            self.tables["".join(self._caption)] = self._rows
            self._caption = None
        elif tag in ("th", "td") and self._cell is not None and self._rows:
            self._rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._rows = None

    def handle_data(self, data: str) -> None:
        for part in (self._caption, self._cell):
            if part is not None:
                part.append(data)


def page_tables(page: str) -> dict[str, list[list[str]]]:
    """The tables of ``page`` by caption (the first table of a caption), header row first."""
    parser = _Tables()
    parser.feed(page)
    return parser.tables
