"""apply with rounded bookings and stays on several doors, against the in-process sandbox:
what is sent, reruns, budgets on an entrance, and the hand-off, report and nightly summary."""

from __future__ import annotations

import json
import logging
import sqlite3

import polars as pl
import pytest

from pipeline.commands import export_pins, report_files, summarise_night
from tests.apply_helpers import start_sandbox
from tests.paths import SANDBOX_DEVICES

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

LEVELS = """
[user_levels.sites]
"Harbor View" = "Guest 3:30pm-10:30am"
"Lakeside Lodge" = "Guest 4pm-11am"
"""
ALSO = '[doors.also]\n"Harbor View" = ["Harbor Lobby"]\n'


def stays(*rows: tuple[str, str, str, str, str]) -> pl.DataFrame:
    """``(reservation_id, site, door, check_in, check_out)`` rows."""
    columns = ("reservation_id", "site_name", "door_name", "check_in", "check_out")
    table = pl.DataFrame(rows, schema=columns, orient="row")
    return table.with_columns(guest_name=pl.format("Guest {}", "reservation_id"))


GROUP = stays(
    ("G1", "Harbor View", "Room 101", "2027-03-12", "2027-03-16"),
    ("G1", "Harbor View", "Room 102", "2027-03-12", "2027-03-16"),
    ("S2", "Harbor View", "Room 103", "2027-03-20T15:45", "2027-03-22T10:15"),
)


def configured(tmp_path, *parts: str):
    path = tmp_path / "pipeline.toml"
    path.write_text("\n".join([LEVELS, *parts]))
    return path


def sandbox(tmp_path, monkeypatch):
    return start_sandbox(json.loads(SANDBOX_DEVICES.read_text()), tmp_path, monkeypatch)


def instead(column: str, value: str, where: pl.Expr) -> pl.Expr:
    """``column`` with ``value`` on the rows ``where`` holds."""
    return pl.when(where).then(pl.lit(value)).otherwise(column)


def by_door(results: pl.DataFrame) -> dict[tuple[str, str], dict]:
    return {(row["reservation_id"], row["door_name"]): row for row in results.to_dicts()}


async def test_a_rounded_booking_is_sent_with_the_levels_exact_times(tmp_path, monkeypatch):
    """15:45→10:15 on a Lakeside cabin (4pm→11am): the create carries 16:00 and 11:00 with
    their offsets, so Seam has nothing to round; the result says how the window moved."""
    run = sandbox(tmp_path, monkeypatch)
    booking = stays(("L1", "Lakeside Lodge", "Cabin 1", "2027-02-10T15:45", "2027-02-14T10:15"))
    (row,) = (await run.apply(booking, config_path=configured(tmp_path))).result.results.to_dicts()
    assert (row["outcome"], row["starts_at"], row["ends_at"]) == (
        "created",
        "2027-02-10T16:00:00-05:00",
        "2027-02-14T11:00:00-05:00",
    )
    with sqlite3.connect(run.ledger) as db:
        (detail,) = db.execute(
            "SELECT detail FROM events WHERE path = '/access_codes/create'"
        ).fetchone()
    body = json.loads(detail)["body"]
    assert (body["starts_at"], body["ends_at"], body["max_time_rounding"]) == (
        "2027-02-10T16:00:00-05:00",
        "2027-02-14T11:00:00-05:00",
        "1h",
    )
    assert run.state.codes[row["access_code_id"]].rounded_by_s == 0
    assert row["message"] == (
        "rounded to user level Guest 4pm-11am: check-in 15:45 → 16:00 (15 min later),"
        " check-out 10:15 → 11:00 (45 min later)"
    )


async def test_a_booking_that_now_rounds_to_its_codes_window_is_already_created(
    tmp_path, monkeypatch
):
    """Last night 16:00→11:00, tonight 15:30→10:45 for the same stay: the same level's window,
    so the same code: already_created, nothing sent."""
    run = sandbox(tmp_path, monkeypatch)
    config = configured(tmp_path)
    exact = stays(("L1", "Lakeside Lodge", "Cabin 1", "2027-02-10T16:00", "2027-02-14T11:00"))
    await run.apply(exact, config_path=config)
    creates = run.creates()
    moved = exact.with_columns(
        check_in=pl.lit("2027-02-10T15:30"), check_out=pl.lit("2027-02-14T10:45")
    )
    (row,) = (await run.apply(moved, config_path=config)).result.results.to_dicts()
    assert (row["outcome"], row["reason"]) == ("already_created", None)
    assert row["message"].startswith("rounded to user level Guest 4pm-11am:")
    assert run.creates() == creates


async def test_a_group_booking_and_its_shared_entrance(tmp_path, monkeypatch):
    """Two rooms under one reservation and a third stay, with [doors.also] for the site: a code
    on each room, one lobby code shared by the two rooms, one for the other stay; the results,
    pins, report and nightly summary each have a row per door of the stay."""
    run = sandbox(tmp_path, monkeypatch)
    applied = await run.apply(GROUP, config_path=configured(tmp_path, ALSO))
    results = by_door(applied.result.results)
    assert sorted(results) == [
        ("G1", "Harbor Lobby"),
        ("G1", "Room 101"),
        ("G1", "Room 102"),
        ("S2", "Harbor Lobby"),
        ("S2", "Room 103"),
    ]
    assert {row["outcome"] for row in results.values()} == {"created"}
    assert results[("G1", "Harbor Lobby")]["also_for"] == "Room 101, Room 102"
    assert results[("S2", "Harbor Lobby")]["message"] == (
        "also for the stay on Room 103 ([doors.also]); rounded to user level Lobby Guest"
        " 3pm-11am: check-in 15:45 → 15:00 (45 min earlier), check-out 10:15 → 11:00 (45 min"
        " later)"
    )
    assert run.creates() == 5
    pins = (await export_pins(ledger_path=run.ledger, out=tmp_path / "pins.csv")).pins
    assert sorted(pins.select("reservation_id", "door_name").rows()) == sorted(results)
    report = await report_files(ledger_path=run.ledger)
    lobby = report.doors.filter(pl.col("door_name") == "Harbor Lobby").to_dicts()
    assert [(row["created"], row["orphaned"]) for row in lobby] == [(2, 0)]
    night = await summarise_night(ledger_path=run.ledger, results=applied.out)
    assert (night.created, night.orphaned) == (5, 0)


async def test_an_entrance_has_its_own_budget(tmp_path, monkeypatch):
    """A lobby budget of 1: the first stay (by start) gets the lobby code, the other's lobby
    row is budget_exhausted; every room still gets its code."""
    run = sandbox(tmp_path, monkeypatch)
    config = configured(
        tmp_path, ALSO, '[budgets]\nreserve = 0\n[budgets.doors]\n"Harbor Lobby" = 1'
    )
    results = by_door((await run.apply(GROUP, config_path=config)).result.results)
    assert results[("G1", "Harbor Lobby")]["outcome"] == "created"
    assert (
        results[("S2", "Harbor Lobby")]["outcome"],
        results[("S2", "Harbor Lobby")]["reason"],
    ) == (
        "rejected",
        "budget_exhausted",
    )
    rooms = [row for (_, door), row in results.items() if door != "Harbor Lobby"]
    assert {row["outcome"] for row in rooms} == {"created"}


async def test_entrance_codes_added_later_and_removed_later(tmp_path, monkeypatch, caplog):
    """[doors.also] added after the rooms' codes were made: the next run makes just the lobby
    codes. Removed again: nothing is withdrawn or orphaned, the lobby codes stay in the pins
    file, and one warning says so, once."""
    run = sandbox(tmp_path, monkeypatch)
    without, with_also = configured(tmp_path), tmp_path / "also.toml"
    with_also.write_text(without.read_text() + ALSO)
    await run.apply(GROUP, config_path=without)
    assert run.creates() == 3
    added = by_door((await run.apply(GROUP, config_path=with_also)).result.results)
    assert {door: row["outcome"] for (_, door), row in added.items()} == {
        "Room 101": "already_created",
        "Room 102": "already_created",
        "Room 103": "already_created",
        "Harbor Lobby": "created",
    }
    assert run.creates() == 5
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        removed = await run.apply(GROUP, config_path=without)
        again = await run.apply(GROUP, config_path=without)
    said = [r.getMessage() for r in caplog.records if "[doors.also]" in r.getMessage()]
    assert said == [
        "[doors.also] no longer asks for 2 code(s) it made on Harbor Lobby (2) whose"
        " reservations are still in the input: codes can't be deleted, so they stay valid and"
        " in the pins file until their windows end; they are not orphaned (this is said once)"
    ]
    assert (removed.newly_orphaned, again.newly_orphaned, run.creates()) == (0, 0, 5)
    pins = (await export_pins(ledger_path=run.ledger, out=tmp_path / "pins.csv")).pins
    assert pins.filter(pl.col("door_name") == "Harbor Lobby").height == 2


async def test_a_stay_moved_to_another_door_gets_a_code_there_and_its_old_one_is_orphaned(
    tmp_path, monkeypatch
):
    """A reservation is its rooms: moved from Room 103 to Room 104, it gets a code on Room 104
    and its Room 103 code, which no row asks for any more, is orphaned for a person to see;
    a moved window on the same door is still changed_after_creation."""
    run = sandbox(tmp_path, monkeypatch)
    config = configured(tmp_path)
    await run.apply(GROUP, config_path=config)
    moved = GROUP.with_columns(
        door_name=instead("door_name", "Room 104", pl.col("reservation_id") == "S2"),
        check_out=instead("check_out", "2027-03-17", pl.col("door_name") == "Room 102"),
    )
    applied = await run.apply(moved, config_path=config)
    results = by_door(applied.result.results)
    assert results[("S2", "Room 104")]["outcome"] == "created"
    assert (results[("G1", "Room 102")]["outcome"], results[("G1", "Room 102")]["reason"]) == (
        "rejected",
        "changed_after_creation",
    )
    assert results[("G1", "Room 101")]["outcome"] == "already_created"
    assert applied.newly_orphaned == 1
    with sqlite3.connect(run.ledger) as db:
        orphaned = db.execute(
            "SELECT reservation_id, door_name FROM codes WHERE orphaned_run_id IS NOT NULL"
        ).fetchall()
    assert orphaned == [("S2", "Room 103")]


async def test_a_room_of_a_reservation_whose_door_is_unknown_tonight_is_not_orphaned(
    tmp_path, monkeypatch
):
    """Tonight's export names a door that matches nothing for one of G1's rooms: that row is
    rejected, and G1's codes are not orphaned (the row may still mean one of them)."""
    run = sandbox(tmp_path, monkeypatch)
    config = configured(tmp_path)
    await run.apply(GROUP, config_path=config)
    typo = GROUP.with_columns(
        door_name=instead("door_name", "Room 1O2", pl.col("door_name") == "Room 102")
    )
    applied = await run.apply(typo, config_path=config)
    assert by_door(applied.result.results)[("G1", "Room 1O2")]["reason"] == "unknown_device"
    assert applied.newly_orphaned == 0
