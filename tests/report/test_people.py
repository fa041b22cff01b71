"""report names who needs a person: every reservation rejected, failed, of unknown outcome,
needing attention, duplicated, orphaned or superseded but still valid, with door, guest,
window, reason and fix, in every format; exit 1 while any, 0 once none."""

from __future__ import annotations

import datetime as dt
import json

import anyio.to_thread
import polars as pl
import pytest

from pipeline.apply.duplicates import duplicate_table
from pipeline.cli import main
from pipeline.commands import report_files
from pipeline.report.people import NEEDS_A_PERSON_SCHEMA, needs_a_person
from tests.apply_helpers import one_door_sandbox
from tests.report.helpers import stays_with_guests

pytestmark = pytest.mark.virtual_time

NOW = dt.datetime(2027, 1, 5, tzinfo=dt.UTC)
TONIGHT = {
    "KEEP": ("2027-03-01", "2027-03-04", "Ada Lovelace"),
    "MOVE": ("2027-03-05", "2027-03-07", "Alan Turing"),
    "CANCEL": ("2027-03-10", "2027-03-12", "Grace Hopper"),
}


stays = stays_with_guests


def code_of(results: pl.DataFrame, reservation: str) -> dict:
    return results.filter(pl.col("reservation_id") == reservation).row(0, named=True)


@pytest.mark.anyio
async def test_the_report_names_each_guest_a_person_must_act_on(tmp_path, monkeypatch):
    """Night 2: LOST on no door (rejected), MOVE moved (rejected, its old code superseded),
    CANCEL gone (its code orphaned): each by reservation with door, guest, window, reason and
    fix. Night 3 with the changed stay reissued: MOVE's old code names its new one."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=91)
    lost = {"LOST": ("2027-03-02", "2027-03-03", "Lin Lost")}
    first = (await run.apply(stays(door, {**TONIGHT, **lost}))).result.results
    moved = {"KEEP": TONIGHT["KEEP"], "MOVE": ("2027-03-20", "2027-03-22", "Alan Turing"), **lost}
    second = await run.apply(stays(door, moved))
    report = await report_files(ledger_path=run.ledger)
    people = report.needs_a_person
    assert people.columns == list(NEEDS_A_PERSON_SCHEMA)
    assert people.select("problem", "reservation_id", "guest_name", "reason").rows() == [
        ("rejected", "LOST", "Lin Lost", "unknown_device"),
        ("rejected", "MOVE", "Alan Turing", "changed_after_creation"),
        ("orphaned", "CANCEL", "Grace Hopper", "orphaned"),
        ("superseded", "MOVE", "Alan Turing", "superseded"),
    ]
    lost_row, move_row, cancel_row, old_row = people.to_dicts()
    assert (lost_row["door_name"], lost_row["check_in"], lost_row["source_line"]) == (
        None,
        "2027-03-02",
        4,
    )
    assert lost_row["fix"] == (
        "name the door as Seam does in the export, or add a [doors.aliases] entry"
    )
    assert move_row["check_in"][:10] == "2027-03-20"  # the new window, planned, without a code
    cancel = code_of(first, "CANCEL")
    assert (cancel_row["access_code_id"], cancel_row["check_out"]) == (
        cancel["access_code_id"],
        cancel["ends_at"],
    )
    assert cancel_row["message"] == (
        f"code {cancel['access_code_id']} is no longer any booking's on this door (since run"
        f" {second.result.run_id}); it opens the door until {cancel['ends_at']}"
    )
    assert cancel_row["fix"] == (
        "tell the guest their code no longer applies (the booking left the export, was"
        " cancelled, or moved to another door); it stays valid until"
        f" {cancel['ends_at']} (codes can't be deleted)"
    )
    old = code_of(first, "MOVE")
    assert old_row["message"] == (
        f"code {old['access_code_id']} still valid until {old['ends_at']}; no new code was made"
        " for the changed stay"
    )
    assert report.exit_code == 1

    third = await run.apply(stays(door, moved), reissue_changed=True)
    new = code_of(third.result.results, "MOVE")
    again = (await report_files(ledger_path=run.ledger)).needs_a_person
    assert again["problem"].to_list() == ["rejected", "orphaned", "superseded"]
    superseded = again.row(2, named=True)
    assert superseded["message"] == (
        f"code {old['access_code_id']} still valid until {old['ends_at']}; replaced by code"
        f" {new['access_code_id']} for {new['starts_at']} → {new['ends_at']}"
    )
    assert superseded["fix"] == (
        "the stay changed: tell the guest to use their new code (the pins file lists it) and"
        f" that the old one no longer applies; it stays valid until {old['ends_at']} (codes"
        " can't be deleted)"
    )


@pytest.mark.anyio
async def test_every_format_names_them_and_the_exit_code_follows(tmp_path, monkeypatch, capsys):
    """json, csv, parquet and the table each hold the needs_a_person lines; exit 1 while any;
    once every guest of the input has a working code and nothing is left over, exit 0 and the
    table says nobody needs a person."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=92)
    lost = {"LOST": ("2027-03-02", "2027-03-03", "Lin Lost")}
    await run.apply(stays(door, {**TONIGHT, **lost}))
    ledger = str(run.ledger)
    capsys.readouterr()

    async def cli(*args: str) -> int:
        return await anyio.to_thread.run_sync(main, ["report", "--ledger", ledger, *args])

    assert await cli("--format", "json") == 1
    document = json.loads(capsys.readouterr().out)
    assert [row["reservation_id"] for row in document["needs_a_person"]] == ["LOST"]
    for fmt, read in (("csv", pl.read_csv), ("parquet", pl.read_parquet)):
        folder = tmp_path / f"report-{fmt}"
        assert await cli("--format", fmt, "--out", str(folder)) == 1
        people = read(folder / f"needs_a_person.{fmt}")
        assert people.select("problem", "reservation_id", "reason").rows() == [
            ("rejected", "LOST", "unknown_device")
        ]
    assert await cli() == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "Who needs a person (1): what is wrong, and what to do" in out
    assert "Lin Lost" in out

    await run.apply(stays(door, TONIGHT))
    assert await cli() == 0
    out = capsys.readouterr().out
    assert "Nobody needs a person: every guest of the latest input has a working code" in out


def code(**fields) -> dict:
    """A ``codes_needing_a_person`` row: a created code on Room 1, window open, nothing wrong."""
    return {
        "idempotency_tag": "opl-1",
        "reservation_id": "R1",
        "device_id": "d1",
        "door_name": "Room 1",
        "site_name": "Site",
        "starts_at": "2027-03-01T15:00:00-08:00",
        "ends_at": "2027-03-04T11:00:00-08:00",
        "name": "R1 Ann [opl-1]",
        "state": "created",
        "access_code_id": "ac_1",
        "code_status": "set",
        "needs_attention": None,
        "orphaned_run_id": None,
        "superseded_run_id": None,
        "guest_name": None,
        "replaced_by": None,
        "replaced_by_starts_at": None,
        "replaced_by_ends_at": None,
    } | fields


def test_unknown_outcomes_attention_failures_and_duplicates_each_get_a_line():
    """A lost answer (listed once, not again as its failed row), a code needing attention, a
    failed create and a duplicate; a code whose window has ended and a past row, not at all."""
    unknown = code(idempotency_tag="opl-2", reservation_id="R2", state="sending")
    unknown["name"] = "R2 Ann [opl-2]"  # no guest recorded: read from the default code name
    unknown["access_code_id"] = None
    failed_row = {
        "reservation_id": "R3",
        "device_id": "d1",
        "door_name": "Room 1",
        "site_name": "Site",
        "guest_name": "Cy",
        "check_in": "2027-03-02T15:00:00-08:00",
        "check_out": "2027-03-05T11:00:00-08:00",
        "outcome": "failed",
        "reason": "not_attempted",
        "message": "the run stopped before this code was created; rerun to create it",
        "idempotency_tag": "opl-3",
        "source_file": "x.csv",
        "source_line": 4,
    }
    lost_answer_row = failed_row | {"reason": "outcome_unknown", "idempotency_tag": "opl-2"}
    past_row = failed_row | {"reason": "in_the_past", "outcome": "rejected"}
    duplicated = {
        "idempotency_tag": "opl-1",
        "device_id": "d1",
        "reservation_id": "R1",
        "door_name": "Room 1",
        "site_name": "Site",
        "starts_at": "2027-03-01T15:00:00-08:00",
        "ends_at": "2027-03-04T11:00:00-08:00",
        "state": "created",
        "code_status": "set",
        "access_code_id": "ac_1",
        "codes": json.dumps([{"access_code_id": "ac_1"}, {"access_code_id": "ac_9"}]),
    }
    people = needs_a_person(
        [failed_row, lost_answer_row, past_row],
        [
            code(needs_attention="not_set_in_time: still unset 2:00:00"),
            unknown,
            code(idempotency_tag="opl-4", ends_at="2027-01-01T11:00:00-08:00", state="sending"),
        ],
        duplicate_table([duplicated]),
        now=NOW,
    )
    assert people.select("problem", "reservation_id", "guest_name", "reason").rows() == [
        ("failed", "R3", "Cy", "not_attempted"),
        ("outcome_unknown", "R2", "Ann", "outcome_unknown"),
        ("needs_attention", "R1", "Ann", "not_set_in_time"),
        ("duplicated", "R1", "Ann", "duplicate_on_door"),
    ]
    fixes = dict(people.select("problem", "fix").rows())
    assert fixes["failed"] == "the run stopped before this code: rerun apply"
    assert fixes["outcome_unknown"] == (
        "the create's answer was lost: rerun apply, which looks for the code on the door before"
        " sending again"
    )
    assert fixes["needs_attention"] == (
        "the stay has begun and the lock hasn't taken the code: check the door (battery, reach)"
        " and make sure the guest can get in"
    )
    assert people.row(3, named=True)["access_code_id"] == "ac_1, ac_9"
