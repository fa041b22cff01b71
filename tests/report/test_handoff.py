"""pins hands over every guest of the latest input: with a code, or without one saying why and
what to do; times written for messages; nothing in its CSV runs as a formula."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from pipeline.commands import export_pins
from pipeline.report.pins import warn_of_other_doors
from tests.apply_helpers import start_sandbox
from tests.paths import SANDBOX_DEVICES
from tests.report.helpers import latest_start, move_sandbox_clock_to, refresh

pytestmark = pytest.mark.virtual_time

ZIMMER_3 = {"site_name": "Alpenhof", "door_name": "Zimmer 3"}  # a door the sandbox can't set
ZIMMER_1 = {"site_name": "Alpenhof", "door_name": "Zimmer 1"}
ZIMMER_2 = {"site_name": "Alpenhof", "door_name": "Zimmer 2"}
# Europe changes to summer time on 28 March 2027: each end has its own offset.
STAY = {"check_in": "2027-03-26T15:00", "check_out": "2027-03-29T11:00"}
SKIP = '[input.skip]\nStatus = ["Cancelled"]\n'


def export(*rows: dict[str, str]) -> pl.DataFrame:
    columns = ("reservation_id", "site_name", "door_name", "check_in", "check_out")
    columns += ("guest_name", "Status")
    return pl.DataFrame([{name: row.get(name) for name in columns} for row in rows])


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    run = start_sandbox(json.loads(SANDBOX_DEVICES.read_text()), tmp_path, monkeypatch)
    config = tmp_path / "pipeline.toml"
    config.write_text(SKIP)
    return run, config


@pytest.mark.anyio
async def test_pins_lists_every_guest_of_the_latest_input_with_or_without_a_code(sandbox):
    """A stay with its code; a stay on a door that doesn't exist, listed without a code with
    the reason and the fix; a cancelled one (excluded) and a past one not at all. The next
    night, the first stay left the export: its code is gone from pins; the door is fixed: the
    second stay has its code."""
    run, config = sandbox
    tonight = export(
        {"reservation_id": "B-1", **ZIMMER_3, **STAY, "guest_name": "Jürgen Müller"},
        {"reservation_id": "B-2", **ZIMMER_3, **STAY, "guest_name": "Zoë Weiß"}
        | {"door_name": "Room 999"},
        {"reservation_id": "B-3", **ZIMMER_3, **STAY, "Status": "Cancelled"},
        {"reservation_id": "B-4", **ZIMMER_3, "check_in": "2026-01-02", "check_out": "2026-01-04"},
    )
    await run.apply(tonight, config_path=config)
    pins = (await export_pins(ledger_path=run.ledger, out=run.folder / "pins.csv")).pins
    assert pins.select("reservation_id", "guest_name", "door_name", "ready").rows() == [
        ("B-1", "Jürgen Müller", "Zimmer 3", False),
        ("B-2", "Zoë Weiß", "Room 999", False),
    ]
    made, lost = pins.to_dicts()
    assert (made["check_in"], made["check_out"]) == (
        "2027-03-26T15:00:00+01:00",
        "2027-03-29T11:00:00+02:00",
    )
    assert (made["check_in_local"], made["check_out_local"]) == (
        "Fri 26 Mar 2027 15:00",
        "Mon 29 Mar 2027 11:00",
    )
    assert made["why_not_ready"] == "no_pin_yet: Seam hasn't assigned the PIN yet"
    assert (lost["check_in"], lost["check_in_local"]) == (
        "2027-03-26T15:00",
        "Fri 26 Mar 2027 15:00",
    )
    assert (lost["code"], lost["access_code_id"]) == (None, None)
    assert lost["why_not_ready"].startswith(
        "rejected: unknown_device: no dormakaba Oracode door is named Room 999 at site Alpenhof"
    )
    assert lost["why_not_ready"].endswith(
        "; fix: name the door as Seam does in the export, or add a [doors.aliases] entry"
    )

    fixed = export({"reservation_id": "B-2", **ZIMMER_3, **STAY, "guest_name": "Zoë Weiß"})
    await run.apply(fixed, config_path=config)
    again = (await export_pins(ledger_path=run.ledger, out=run.folder / "again.csv")).pins
    assert again.select("reservation_id", "door_name", "why_not_ready").rows() == [
        ("B-2", "Zimmer 3", "no_pin_yet: Seam hasn't assigned the PIN yet")
    ]


@pytest.mark.anyio
async def test_times_for_messages_follow_the_pins_formats(sandbox):
    """[pins] time_format and date_format write check_in_local / check_out_local; a rejected
    booking given by its dates only has its dates written."""
    run, config = sandbox
    config.write_text(SKIP + '[pins]\ntime_format = "%d.%m.%Y %H:%M"\ndate_format = "%d.%m.%Y"\n')
    await run.apply(
        export(
            {"reservation_id": "B-1", **ZIMMER_3, **STAY},
            {"reservation_id": "B-2", **ZIMMER_3, "door_name": "Room 999"}
            | {"check_in": "2027-03-26", "check_out": "2027-03-29"},
        ),
        config_path=config,
    )
    pins = (
        await export_pins(config_path=config, ledger_path=run.ledger, out=run.folder / "p.csv")
    ).pins
    assert pins.select("reservation_id", "check_in_local", "check_out_local").rows() == [
        ("B-2", "26.03.2027", "29.03.2027"),
        ("B-1", "26.03.2027 15:00", "29.03.2027 11:00"),
    ]


@pytest.mark.anyio
async def test_the_pins_csv_holds_no_live_formula_and_opens_in_excel(sandbox):
    """A guest named =HYPERLINK(...) reaches pins.csv as text (a quote in front, quoted), and
    the file starts with the UTF-8 mark Excel needs to read "Jürgen Müller"."""
    run, config = sandbox
    evil = '=HYPERLINK("http://evil.example/","click")'
    await run.apply(
        export(
            {"reservation_id": "B-1", **ZIMMER_3, **STAY, "guest_name": evil},
            {"reservation_id": "B-2", **ZIMMER_3, **STAY, "guest_name": "Jürgen Müller"},
        ),
        config_path=config,
    )
    out = run.folder / "pins.csv"
    await export_pins(ledger_path=run.ledger, out=out)
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert '"\'=HYPERLINK(""http://evil.example/"",""click"")"' in data.decode("utf-8")
    assert pl.read_csv(out)["guest_name"].to_list() == [f"'{evil}", "Jürgen Müller"]


@pytest.mark.anyio
async def test_a_ready_pin_says_when_another_door_of_its_stay_has_none(sandbox):
    """A group's two rooms, one on a door that doesn't exist: once the first room's PIN is
    ready, its row warns that the stay's other door has no ready code and why; a stay whose
    doors are all ready has no such warning; --ready-only keeps the warning in sight."""
    run, config = sandbox
    tonight = export(
        {"reservation_id": "G-1", **ZIMMER_1, **STAY, "guest_name": "Gruppe Huber"},
        {"reservation_id": "G-1", **ZIMMER_1, **STAY, "guest_name": "Gruppe Huber"}
        | {"door_name": "Room 999"},
        {"reservation_id": "S-1", **ZIMMER_2, **STAY, "guest_name": "Solo Sam"},
    )
    await run.apply(tonight, config_path=config)
    later = latest_start(run) + dt.timedelta(hours=2)
    move_sandbox_clock_to(run, later)
    await refresh(run, later)
    ready = await export_pins(
        ledger_path=run.ledger, out=run.folder / "ready.csv", ready_only=True, now=later
    )
    warnings = dict(ready.pins.select("reservation_id", "warning").rows())
    assert warnings == {
        "G-1": "other_door_not_ready: this stay has no ready code on Room 999"
        " (rejected: unknown_device)",
        "S-1": None,
    }


@pytest.mark.parametrize(
    ("why", "said"),
    [
        (
            "rejected: duration_exceeds_31_days: the window ...; fix: split the stay",
            "rejected: duration_exceeds_31_days",
        ),
        ("failed: http_503: Seam answered 503; fix: rerun apply", "failed: http_503"),
        ("outcome_unknown: the create's answer was lost; the next apply looks", "outcome_unknown"),
        ("not_created: not sent yet", "not_created"),
        (
            "needs_attention: seam_error: failed_to_set_on_device: ...",
            "needs_attention: seam_error",
        ),
        ("no_pin_yet: Seam hasn't assigned the PIN yet", "no_pin_yet"),
    ],
)
def test_the_other_door_s_reason_is_its_code_alone(why, said):
    """The warning names the other door's reason code (digits and all), never a word of the
    text after it; a not-ready row on the ready row's own door is not another door."""
    rows = [
        {
            "reservation_id": "G",
            "door_name": "Room 1",
            "site_name": "S",
            "ready": True,
            "why_not_ready": None,
            "warning": None,
        },
        {
            "reservation_id": "G",
            "door_name": "Lobby",
            "site_name": "S",
            "ready": False,
            "why_not_ready": why,
            "warning": None,
        },
        {
            "reservation_id": "H",
            "door_name": "Room 2",
            "site_name": "S",
            "ready": True,
            "why_not_ready": None,
            "warning": None,
        },
        {
            "reservation_id": "H",
            "door_name": "Room 2",
            "site_name": "S",
            "ready": False,
            "why_not_ready": why,
            "warning": None,
        },
    ]
    warn_of_other_doors(rows)
    assert [row["warning"] for row in rows] == [
        f"other_door_not_ready: this stay has no ready code on Lobby ({said})",
        None,
        None,
        None,
    ]
