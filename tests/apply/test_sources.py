"""One apply over the night's files of two property systems ([sources.NAME]): each file read
its own way, and orphans judged over all of them."""

from __future__ import annotations

import sqlite3

import pytest

from pipeline.apply.run import ApplySettings
from pipeline.commands import apply_files
from tests.apply_helpers import start_sandbox
from tests.generate import make_devices

pytestmark = pytest.mark.virtual_time

CONFIG = """
[sources.pms]
files = "pms-*.csv"
encoding = "cp1252"
date_format = "%d.%m.%Y"
[sources.pms.columns]
Buchung = "reservation_id"
"Tür" = "device_id"
Anreise = "check_in"
Abreise = "check_out"
Gast = "guest_name"

[sources.channel]
files = "channel-*.csv"
date_format = "%m/%d/%Y"
[sources.channel.columns]
"Booking ID" = "reservation_id"
Lock = "device_id"
Arrive = "check_in"
Leave = "check_out"
"""


@pytest.mark.anyio
async def test_one_apply_over_both_systems_orphans_only_what_left_either(tmp_path, monkeypatch):
    """Night 1 creates the bookings of both files; night 2, one PMS booking is gone: that code
    alone is orphaned, the channel manager's codes are not (each file is read with its own
    source's headers and dates), and nothing is sent again."""
    payload = make_devices(2, seed=61)
    room, apartment = (device["device_id"] for device in payload["devices"])
    run = start_sandbox(payload, tmp_path, monkeypatch)
    config = tmp_path / "hotel.toml"
    config.write_text(CONFIG, encoding="utf-8")
    pms = tmp_path / "pms-night.csv"
    channel = tmp_path / "channel-night.csv"
    channel.write_text(
        "Booking ID,Lock,Arrive,Leave\n"
        f"C-1,{apartment},03/01/2027,03/04/2027\n"
        f"C-2,{apartment},03/05/2027,03/08/2027\n"
    )

    async def night(number: int, pms_rows: list[str]):
        pms.write_bytes(
            "\r\n".join(["Buchung;Tür;Anreise;Abreise;Gast", *pms_rows, ""]).encode("cp1252")
        )
        return await apply_files(
            [pms, channel],
            config_path=config,
            ledger_path=run.ledger,
            out=tmp_path / f"results-{number}.csv",
            settings=ApplySettings(),
            transport=run.transport,
        )

    first = await night(
        1, [f"P-1;{room};01.03.2027;04.03.2027;Jürgen", f"P-2;{room};05.03.2027;08.03.2027;Zoë"]
    )
    outcomes = dict(first.result.results.select("reservation_id", "outcome").rows())
    assert outcomes == {"P-1": "created", "P-2": "created", "C-1": "created", "C-2": "created"}
    creates = run.creates()
    second = await night(2, [f"P-1;{room};01.03.2027;04.03.2027;Jürgen"])
    outcomes = dict(second.result.results.select("reservation_id", "outcome").rows())
    assert outcomes == {
        "P-1": "already_created",
        "C-1": "already_created",
        "C-2": "already_created",
    }
    assert run.creates() == creates
    assert second.newly_orphaned == 1
    with sqlite3.connect(run.ledger) as db:
        orphaned = db.execute(
            "SELECT reservation_id FROM codes WHERE orphaned_run_id IS NOT NULL"
        ).fetchall()
    assert orphaned == [("P-2",)]
