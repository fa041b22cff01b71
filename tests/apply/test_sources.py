"""One apply over the night's files of two property systems ([sources.NAME]): each file read
its own way, orphans judged over all of them, and a night without one system's export
refused before anything is done."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.apply.run import ApplySettings
from pipeline.commands import ApplyRun, apply_files
from pipeline.common.errors import UsageError
from tests.apply_helpers import SandboxRun, orphaned_reservations, start_sandbox
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


class TwoSystems:
    """A sandbox with a room and an apartment, the config, and the night's two exports."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        payload = make_devices(2, seed=61)
        self.room, self.apartment = (device["device_id"] for device in payload["devices"])
        self.run: SandboxRun = start_sandbox(payload, folder, monkeypatch)
        self.folder = folder
        self.config = folder / "hotel.toml"
        self.config.write_text(CONFIG, encoding="utf-8")
        self.pms = folder / "pms-night.csv"
        self.channel = folder / "channel-night.csv"
        self.channel.write_text(
            "Booking ID,Lock,Arrive,Leave\n"
            f"C-1,{self.apartment},03/01/2027,03/04/2027\n"
            f"C-2,{self.apartment},03/05/2027,03/08/2027\n"
        )

    async def night(self, number: int, pms_rows: list[str], *, channel: bool = True) -> ApplyRun:
        """Apply on the PMS export holding ``pms_rows`` (and the channel's, unless not)."""
        self.pms.write_bytes(
            "\r\n".join(["Buchung;Tür;Anreise;Abreise;Gast", *pms_rows, ""]).encode("cp1252")
        )
        return await apply_files(
            [self.pms, self.channel] if channel else [self.pms],
            config_path=self.config,
            ledger_path=self.run.ledger,
            out=self.folder / f"results-{number}.csv",
            settings=ApplySettings(),
            transport=self.run.transport,
        )

    def bookings(self) -> list[str]:
        return [
            f"P-1;{self.room};01.03.2027;04.03.2027;Jürgen",
            f"P-2;{self.room};05.03.2027;08.03.2027;Zoë",
        ]


@pytest.mark.anyio
async def test_one_apply_over_both_systems_orphans_only_what_left_either(tmp_path, monkeypatch):
    """Night 1 creates the bookings of both files; night 2, one PMS booking is gone: that code
    alone is orphaned, the channel manager's codes are not (each file is read with its own
    source's headers and dates), and nothing is sent again."""
    hotel = TwoSystems(tmp_path, monkeypatch)
    first = await hotel.night(1, hotel.bookings())
    outcomes = dict(first.result.results.select("reservation_id", "outcome").rows())
    assert outcomes == {"P-1": "created", "P-2": "created", "C-1": "created", "C-2": "created"}
    creates = hotel.run.creates()
    second = await hotel.night(2, hotel.bookings()[:1])
    outcomes = dict(second.result.results.select("reservation_id", "outcome").rows())
    assert outcomes == {
        "P-1": "already_created",
        "C-1": "already_created",
        "C-2": "already_created",
    }
    assert hotel.run.creates() == creates
    assert second.newly_orphaned == 1
    assert orphaned_reservations(hotel.run.ledger) == ["P-2"]


@pytest.mark.anyio
async def test_a_night_without_a_sources_export_is_refused(tmp_path, monkeypatch):
    """Night 2 with the channel manager's export missing: exit 2 with one line naming the
    source, before the ledger is touched; none of the channel's codes is orphaned."""
    hotel = TwoSystems(tmp_path, monkeypatch)
    await hotel.night(1, hotel.bookings())
    creates = hotel.run.creates()
    with pytest.raises(UsageError) as refused:
        await hotel.night(2, hotel.bookings(), channel=False)
    assert refused.value.exit_code == 2
    assert refused.value.one_line() == (
        "[sources.channel] (files = 'channel-*.csv') matches none of tonight's files (give its"
        " export too; without it every code of that system would be orphaned)"
    )
    assert not (tmp_path / "results-2.csv").exists()
    assert hotel.run.creates() == creates
    assert orphaned_reservations(hotel.run.ledger) == []
