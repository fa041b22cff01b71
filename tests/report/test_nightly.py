"""The nightly job's summary: quiet for known trouble, exit 1 for trouble new tonight."""

from __future__ import annotations

import datetime as dt

import anyio
import polars as pl
import pytest

from pipeline.cli import main
from pipeline.commands import summarise_night
from pipeline.report.nightly import NightlySummary
from tests.apply_helpers import one_door_sandbox

pytestmark = pytest.mark.virtual_time

TONIGHT = {"KEEP": ("2027-03-01", "2027-03-04"), "CANCEL": ("2027-03-10", "2027-03-12")}


def stays(door: str, reservations: dict[str, tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "reservation_id": list(reservations),
            "device_id": [door] * len(reservations),
            "check_in": [dates[0] for dates in reservations.values()],
            "check_out": [dates[1] for dates in reservations.values()],
        }
    )


async def night(run, reservations: pl.DataFrame) -> NightlySummary:
    """One nightly job: apply, then the summary from its results file and exit code."""
    applied = await run.apply(reservations)
    return await summarise_night(
        ledger_path=run.ledger, results=applied.out, apply_exit=applied.exit_code
    )


@pytest.mark.anyio
async def test_the_same_orphan_two_nights_is_new_once(tmp_path, monkeypatch):
    """A cancelled stay's code: exit 1 the night it is orphaned, 0 the night after (still
    counted in the summary), 0 on the first night with nothing wrong."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=81)
    first = await night(run, stays(door, TONIGHT))
    assert (first.created, first.orphaned, first.exit_code) == (2, 0, 0)
    assert first.waiting_for_pin == 2  # the sandbox gives the PIN once the code is set

    cancelled = stays(door, {"KEEP": TONIGHT["KEEP"]})
    second = await night(run, cancelled)
    assert (second.orphaned, second.exit_code) == (1, 1)
    assert [key.split(" ")[0] for key in second.new["orphaned"]] == ["CANCEL"]
    third = await night(run, cancelled)
    assert (third.orphaned, third.new, third.exit_code) == (1, {}, 0)
    assert third.lines()[0].startswith("tonight: 0 created, 1 still waiting for a PIN,")
    assert third.lines()[-1] == "nightly exit 0: nothing new"


@pytest.mark.anyio
async def test_a_new_rejection_is_trouble_and_the_same_one_the_next_night_is_not(
    tmp_path, monkeypatch
):
    """A row for a door the workspace doesn't have: exit 1 the first night, 0 the next with
    the same row, 1 again for another reservation rejected the same way."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=82)
    unknown = stays("no-such-door", {"LOST": TONIGHT["KEEP"]})
    first = await night(run, pl.concat([stays(door, TONIGHT), unknown]))
    assert (first.rejected, first.exit_code) == (1, 1)
    assert first.new["rejected"][0].startswith("LOST on ")
    again = await night(run, pl.concat([stays(door, TONIGHT), unknown]))
    assert (again.rejected, again.exit_code) == (1, 0)
    other = stays("no-such-door", {"ALSO": TONIGHT["KEEP"]})
    third = await night(run, pl.concat([stays(door, TONIGHT), unknown, other]))
    assert (third.rejected, third.exit_code) == (2, 1)
    assert [key.split(" ")[0] for key in third.new["rejected"]] == ["ALSO"]


@pytest.mark.parametrize(
    ("apply_exit", "status_exit", "new", "code"),
    [
        (0, 0, {}, 0),
        (1, 1, {}, 0),  # known rejections and attention only
        (1, 0, {"rejected": ["R on D: unknown_device"]}, 1),
        (3, 0, {}, 3),  # apply stopped: its own code
        (1, 2, {"failed": ["x"]}, 2),
    ],
)
def test_the_nightly_exit_code(apply_exit, status_exit, new, code):
    """0 nothing new, 1 something new, else apply's or status's code from 2 up."""
    summary = NightlySummary(
        created=0,
        waiting_for_pin=0,
        attention=0,
        orphaned=0,
        rejected=0,
        failed=0,
        new=new,
        apply_exit=apply_exit,
        status_exit=status_exit,
    )
    assert summary.exit_code == code


def test_the_cli_prints_the_summary_and_exits_with_its_code(tmp_path, monkeypatch, capsys):
    """nightly-summary without a results file (apply stopped early): counts it can't know are
    '?', the ledger's are given, and apply's exit 3 is the job's."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=83)
    anyio.run(run.apply, stays(door, TONIGHT))
    capsys.readouterr()
    code = main(
        [
            "nightly-summary",
            "--ledger",
            str(run.ledger),
            "--results",
            str(tmp_path / "missing.parquet"),
            "--apply-exit",
            "3",
        ]
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 3
    assert out[0].startswith("tonight: ? created, 2 still waiting for a PIN, 0 needing")
    assert out[-1] == "nightly exit 3: apply exit 3, status exit 0"


def guests(door: str, reservations: dict[str, tuple[str, str, str]]) -> pl.DataFrame:
    """Stays with their guests' names: ``{id: (check_in, check_out, guest)}``."""
    table = stays(door, {key: stay[:2] for key, stay in reservations.items()})
    return table.with_columns(guest_name=pl.Series([stay[2] for stay in reservations.values()]))


@pytest.mark.anyio
async def test_the_summary_says_who_and_what_to_do_and_every_still_valid_old_code(
    tmp_path, monkeypatch
):
    """A cancelled stay's orphan and a changed stay's old code are named with guest, door,
    window, code and the next step; the old code is said every night until its end, new once
    (exit 1), known after (exit 0); a new rejection names its guest and the fix."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=85)
    config = tmp_path / "pipeline.toml"
    config.write_text("[changes]\nreissue_changed = true\n")
    booked = {
        "KEEP": ("2027-03-01", "2027-03-04", "Ada Lovelace"),
        "MOVE": ("2027-03-05", "2027-03-07", "Alan Turing"),
        "CANCEL": ("2027-03-10", "2027-03-12", "Grace Hopper"),
    }

    async def night_of(reservations: pl.DataFrame) -> NightlySummary:
        applied = await run.apply(reservations, config_path=config)
        return await summarise_night(
            ledger_path=run.ledger, results=applied.out, apply_exit=applied.exit_code
        )

    first = (await run.apply(guests(door, booked), config_path=config)).result.results
    codes = {row["reservation_id"]: row for row in first.iter_rows(named=True)}
    changed = {"KEEP": booked["KEEP"], "MOVE": ("2027-03-05", "2027-03-08", "Alan Turing")}
    lost = guests("no-such-door", {"LOST": ("2027-03-02", "2027-03-03", "Lin Lost")})
    tonight = pl.concat([guests(door, changed), lost])  # MOVE one night longer
    summary = await night_of(tonight)
    cancel, move = codes["CANCEL"], codes["MOVE"]
    assert summary.new["orphaned"] == [
        f"CANCEL (Grace Hopper) on {cancel['door_name']}, {cancel['starts_at']} →"
        f" {cancel['ends_at']}, code {cancel['access_code_id']}: tell the guest their code no"
        " longer applies (the booking left the export, was cancelled, or moved to another"
        f" door); it stays valid until {cancel['ends_at']} (codes can't be deleted)"
    ]
    still_valid = (
        f"MOVE (Alan Turing) on {move['door_name']}, {move['starts_at']} → {move['ends_at']},"
        f" code {move['access_code_id']}: the stay changed: tell the guest to use their new code"
        " (the pins file lists it) and that the old one no longer applies; it stays valid until"
        f" {move['ends_at']} (codes can't be deleted)"
    )
    assert summary.new["superseded"] == [still_valid]
    assert summary.new["rejected"] == [
        "LOST on no-such-door: unknown_device (Lin Lost): name the door as Seam does in the"
        " export, or add a [doors.aliases] entry"
    ]
    lines = summary.lines()
    assert lines[0].endswith(", 1 superseded but still valid (1 new)")
    assert f"  still valid, superseded: {still_valid}" in lines
    assert summary.exit_code == 1

    again = await night_of(tonight)
    assert (again.new, again.superseded, again.exit_code) == ({}, [still_valid], 0)
    assert f"  still valid, superseded: {still_valid}" in again.lines()
    after_its_end = dt.datetime(2027, 3, 8, tzinfo=dt.UTC)
    ended = await summarise_night(ledger_path=run.ledger, now=after_its_end)
    assert ended.superseded == []


@pytest.mark.anyio
async def test_a_stay_that_has_ended_is_counted_but_never_trouble(tmp_path, monkeypatch):
    """A full export holds past stays: rejected in_the_past, counted, and the night is quiet."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=86)
    past = stays(door, {"GONE": ("2026-01-02", "2026-01-04")})
    summary = await night(run, pl.concat([stays(door, TONIGHT), past]))
    assert (summary.rejected, summary.new, summary.exit_code) == (1, {}, 0)
