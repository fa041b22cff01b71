"""report: per run and per door, what needs attention, and the orphaned codes of cancelled stays."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import stat

import anyio.to_thread
import polars as pl
import pytest

from pipeline.cli import main
from pipeline.commands import report_files
from pipeline.common.settings import BudgetOptions
from pipeline.report.summary import SECTIONS
from tests.apply_helpers import one_door_sandbox, start_sandbox
from tests.generate import make_devices
from tests.report.helpers import earliest_start, move_sandbox_clock_to, refresh

pytestmark = pytest.mark.virtual_time


def stays(door: str, reservations: dict[str, tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "reservation_id": list(reservations),
            "device_id": [door] * len(reservations),
            "check_in": [dates[0] for dates in reservations.values()],
            "check_out": [dates[1] for dates in reservations.values()],
        }
    )


TONIGHT = {
    "KEEP": ("2027-03-01", "2027-03-04"),
    "MOVE": ("2027-03-05", "2027-03-07"),
    "CANCEL": ("2027-03-10", "2027-03-12"),
}


@pytest.mark.anyio
async def test_a_cancelled_stay_is_orphaned_until_it_comes_back_or_ends(tmp_path, monkeypatch):
    """A reservation with a code that is absent from the next run's input is orphaned (listed
    with its code, exit 1); a moved stay still in the input is not (it needs a person for
    another reason); it stops being orphaned when it is back in the input, and is no longer
    listed once its window has ended."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=61)
    first = await run.apply(stays(door, TONIGHT))
    assert first.newly_orphaned == 0
    cancel_code = first.result.results.filter(pl.col("reservation_id") == "CANCEL").row(
        0, named=True
    )
    moved = {"KEEP": TONIGHT["KEEP"], "MOVE": ("2027-03-20", "2027-03-22")}
    second = await run.apply(stays(door, moved))
    assert second.newly_orphaned == 1

    report = await report_files(ledger_path=run.ledger)
    orphan = report.orphaned.row(0, named=True)
    assert report.orphaned.height == 1
    assert (orphan["reservation_id"], orphan["access_code_id"], orphan["state"]) == (
        "CANCEL",
        cancel_code["access_code_id"],
        "created",
    )
    assert orphan["orphaned_run_id"] == second.result.run_id
    assert report.exit_code == 1
    assert report.doors.filter(pl.col("device_id") == door)["orphaned"].to_list() == [1]

    # Still absent the night after: still orphaned since the same run, not found again.
    third = await run.apply(stays(door, moved))
    assert third.newly_orphaned == 0
    report = await report_files(ledger_path=run.ledger)
    assert report.orphaned["orphaned_run_id"].to_list() == [second.result.run_id]

    after_its_end = dt.datetime(2027, 3, 13, tzinfo=dt.UTC)
    ended = await report_files(ledger_path=run.ledger, now=after_its_end)
    assert ended.orphaned.is_empty()

    await run.apply(stays(door, {**moved, "CANCEL": TONIGHT["CANCEL"]}))
    back = await report_files(ledger_path=run.ledger)
    assert back.orphaned.is_empty()
    # What a person still has to do: MOVE's new window has no code, its old one still opens.
    people = back.needs_a_person.select("problem", "reservation_id", "reason").rows()
    assert people == [
        ("rejected", "MOVE", "changed_after_creation"),
        ("superseded", "MOVE", "superseded"),
    ]
    assert back.exit_code == 1
    with sqlite3.connect(run.ledger) as db:
        events = db.execute("SELECT idempotency_tag FROM events WHERE kind = 'orphaned'").fetchall()
    assert events == [(cancel_code["idempotency_tag"],)]


@pytest.mark.anyio
async def test_the_report_counts_each_run_and_door_with_its_budget(tmp_path, monkeypatch):
    """Two doors, a budget of 3 per door, 5 stays on one and 2 on the other: the doors section
    has the created and budget_exhausted rows, budget used before and after, and what is left;
    the rerun is listed first with its already_created rows."""
    payload = make_devices(2, seed=62)
    full, roomy = (device["device_id"] for device in payload["devices"])
    run = start_sandbox(payload, tmp_path, monkeypatch)
    stays_full = {f"F{n}": (f"2027-04-{n + 1:02d}", f"2027-04-{n + 2:02d}") for n in range(5)}
    stays_roomy = {f"R{n}": (f"2027-04-{n + 1:02d}", f"2027-04-{n + 2:02d}") for n in range(2)}
    reservations = pl.concat([stays(full, stays_full), stays(roomy, stays_roomy)])
    budget = BudgetOptions(per_door=3)
    first = await run.apply(reservations, budget=budget)
    second = await run.apply(reservations, budget=budget)

    report = await report_files(ledger_path=run.ledger)
    assert report.run_id == second.result.run_id
    assert report.runs["run_id"].to_list() == [second.result.run_id, first.result.run_id]
    assert report.runs.select("already_created", "rejected").row(0) == (5, 2)
    assert report.runs.select("created", "rejected").row(1) == (5, 2)

    doors = {row["device_id"]: row for row in report.doors.iter_rows(named=True)}
    assert doors[full]["already_created"] == 3
    assert doors[full]["problems"] == "budget_exhausted 2"
    # The rerun counted the 3 codes made the night before; it made none.
    assert (doors[full]["budget"], doors[full]["used"], doors[full]["after"]) == (3, 3, 3)
    assert doors[full]["left"] == 0
    assert (doors[roomy]["used"], doors[roomy]["after"], doors[roomy]["left"]) == (2, 2, 1)
    assert doors[full]["unset"] + doors[roomy]["unset"] == 5

    first_doors = (await report_files(ledger_path=run.ledger, run_id=first.result.run_id)).doors
    made = dict(first_doors.select("device_id", "created").rows())
    assert made == {full: 3, roomy: 2}
    assert dict(first_doors.select("device_id", "after").rows()) == {full: 3, roomy: 2}
    reasons = report.outcomes.filter(
        (pl.col("run_id") == first.result.run_id) & (pl.col("outcome") == "rejected")
    )
    assert reasons.select("device_id", "reason", "rows").rows() == [(full, "budget_exhausted", 2)]


@pytest.mark.anyio
async def test_the_report_lists_codes_by_status_and_those_needing_attention(tmp_path, monkeypatch):
    """After status past the codes' start: the working door's codes are `set`, the stuck
    door's are listed as needing attention with Seam's error."""
    payload = make_devices(2, seed=63)
    stuck, working = (device["device_id"] for device in payload["devices"])
    payload["sandbox"] = {"stuck_devices": [stuck]}
    run = start_sandbox(payload, tmp_path, monkeypatch)
    dates = [("2027-02-01", "2027-02-05"), ("2027-02-02", "2027-02-06")]
    await run.apply(
        pl.concat(
            [
                stays(stuck, {"S1": dates[0], "S2": dates[1]}),
                stays(working, {"W1": dates[0], "W2": dates[1]}),
            ]
        )
    )
    later = max(code.starts_at for code in run.state.codes.values()) + dt.timedelta(hours=2)
    assert later > earliest_start(run)
    move_sandbox_clock_to(run, later)
    await refresh(run, later)

    report = await report_files(ledger_path=run.ledger, now=later)
    doors = {row["device_id"]: row for row in report.doors.iter_rows(named=True)}
    assert (doors[working]["set"], doors[working]["needs_attention"]) == (2, 0)
    assert (doors[stuck]["set"], doors[stuck]["needs_attention"]) == (0, 2)
    assert set(report.attention["device_id"]) == {stuck}
    assert report.attention["needs_attention"].str.starts_with("seam_error").all()
    assert report.runs["command"].to_list() == ["status", "apply"]
    assert report.runs.select("checked", "needs_attention").row(0) == (4, 2)
    assert report.exit_code == 1
    # The ledger has the working door's PINs now; no section holds one.
    with sqlite3.connect(run.ledger) as db:
        pins = {pin for (pin,) in db.execute("SELECT code FROM codes WHERE code IS NOT NULL")}
    assert len(pins) == 2
    cells = {
        str(value)
        for frame in report.sections().values()
        for column in frame.iter_columns()
        for value in column
    }
    assert not pins & cells
    assert all("code" not in frame.columns for frame in report.sections().values())


@pytest.mark.anyio
async def test_report_formats_from_the_command_line(tmp_path, monkeypatch, capsys):
    """json on standard output holds every section; csv and parquet write one file per section,
    owner-only, without PINs; table names the orphaned reservation; exit 1 for it."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=64)
    await run.apply(stays(door, TONIGHT))
    await run.apply(stays(door, {"KEEP": TONIGHT["KEEP"]}))
    ledger = str(run.ledger)
    capsys.readouterr()

    # The command line runs its own event loop: from a worker thread here.
    async def cli(*args: str) -> int:
        return await anyio.to_thread.run_sync(main, ["report", "--ledger", ledger, *args])

    assert await cli("--format", "json") == 1
    document = json.loads(capsys.readouterr().out)
    assert set(document) >= {"runs", "outcomes", "doors", "attention", "orphaned", "run_id"}
    assert sorted(row["reservation_id"] for row in document["orphaned"]) == ["CANCEL", "MOVE"]

    for fmt in ("csv", "parquet"):
        folder = tmp_path / f"report-{fmt}"
        assert await cli("--format", fmt, "--out", str(folder)) == 1
        files = sorted(path.name for path in folder.iterdir())
        assert files == sorted(f"{name}.{fmt}" for name in document if name in SECTIONS)
        assert all(stat.S_IMODE(os.stat(path).st_mode) == 0o600 for path in folder.iterdir())
        read = pl.read_csv if fmt == "csv" else pl.read_parquet
        orphaned = read(folder / f"orphaned.{fmt}")
        assert sorted(orphaned["reservation_id"]) == ["CANCEL", "MOVE"]
        assert "code" not in orphaned.columns

    assert await cli() == 1
    out = capsys.readouterr().out
    assert "2 orphaned codes" in out
    assert "CANCEL" in out


def test_report_refuses_what_it_cannot_do(tmp_path, capsys):
    """Missing ledger, unknown run, --out with the table format: exit 2 with one line."""
    missing = tmp_path / "none.sqlite"
    assert main(["report", "--ledger", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: ledger {missing} does not exist"
        " (check --ledger, else ORACODE_LEDGER; apply creates the ledger)"
    )
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    assert main(["report", "--ledger", str(empty), "--run", "run-nope"]) == 2
    assert "no apply run run-nope" in capsys.readouterr().err
    assert main(["report", "--ledger", str(empty), "--out", str(tmp_path / "x")]) == 2
    assert "--out needs --format" in capsys.readouterr().err
    assert main(["report", "--ledger", str(empty)]) == 0  # an empty ledger: nothing to do


@pytest.mark.anyio
async def test_rows_no_door_was_found_for_are_their_own_lines_and_nothing_is_counted_twice(
    tmp_path, monkeypatch
):
    """A door named by device_id with one unreadable row: one line for the door, under the
    door's own name, with its codes counted once; an unknown device_id is an unmatched line."""
    payload = make_devices(1, seed=65)
    door = payload["devices"][0]
    reservations = pl.DataFrame(
        {
            "reservation_id": ["A", "B", "BAD", "LOST"],
            "device_id": [door["device_id"]] * 3 + ["no-such-door"],
            "check_in": ["2027-05-01", "2027-05-03", "not-a-date", "2027-05-01"],
            "check_out": ["2027-05-02", "2027-05-04", "2027-05-05", "2027-05-02"],
        }
    )
    run = start_sandbox(payload, tmp_path, monkeypatch)
    await run.apply(reservations, budget=BudgetOptions(per_door=10))
    doors = (await report_files(ledger_path=run.ledger)).doors
    on_door = doors.filter(pl.col("device_id") == door["device_id"])
    assert on_door.height == 1
    row = on_door.row(0, named=True)
    assert (row["door_name"], row["matched"]) == (door["properties"]["name"], True)
    assert (row["created"], row["rejected"], row["problems"]) == (2, 1, "invalid_row 1")
    assert (row["unset"], row["used"], row["after"], row["left"], row["room"]) == (2, 0, 2, 8, 8)
    lost = doors.filter(pl.col("device_id") == "no-such-door").row(0, named=True)
    assert (lost["matched"], lost["problems"], lost["budget"]) == (False, "unknown_device 1", None)


@pytest.mark.anyio
async def test_a_code_whose_window_has_ended_is_not_orphaned(tmp_path, monkeypatch):
    """Absent from the input but already over (an ordinary checkout): not orphaned, no event;
    the absent one still to come is."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=66)
    first = await run.apply(
        stays(door, {"OVER": ("2027-03-01", "2027-03-04"), "AHEAD": ("2027-03-20", "2027-03-22")})
    )
    ahead = first.result.results.filter(pl.col("reservation_id") == "AHEAD")["idempotency_tag"]
    later = dt.datetime(2027, 3, 10, tzinfo=dt.UTC)
    second = await run.apply(stays(door, {"NEW": ("2027-03-25", "2027-03-27")}), now=later)
    assert second.newly_orphaned == 1
    report = await report_files(ledger_path=run.ledger, now=later)
    assert report.orphaned["reservation_id"].to_list() == ["AHEAD"]
    with sqlite3.connect(run.ledger) as db:
        events = db.execute("SELECT idempotency_tag FROM events WHERE kind = 'orphaned'").fetchall()
    assert events == [(ahead[0],)]


def test_a_defect_is_one_line_and_a_saved_traceback(tmp_path, monkeypatch, capsys):
    """An unexpected exception (a bug of ours): exit 4, one line naming it and a line saying
    where its traceback was saved (owner-only), not a traceback on the terminal."""

    async def broken(**options: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("pipeline.commands.report_files", broken)
    monkeypatch.chdir(tmp_path)
    assert main(["report"]) == 4
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "error: internal error RuntimeError: boom"
    saved = next((tmp_path / "outputs").glob("crash-*.txt"))
    assert err[1].startswith(f"the details are in {saved.relative_to(tmp_path)}")
    assert len(err) == 2
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    details = saved.read_text()
    assert "Traceback" in details
    assert "boom" in details


@pytest.mark.anyio
async def test_a_run_that_orphans_more_than_it_keeps_asks_if_the_export_is_whole(
    tmp_path, monkeypatch, caplog
):
    """Six stays, then an export with one of them: five orphaned, more than the one kept, so
    a warning asks whether the export is complete; a night that orphans one of six says
    nothing of the kind."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=67)
    nights = {f"R{n}": (f"2027-03-{10 + 2 * n}", f"2027-03-{11 + 2 * n}") for n in range(6)}
    await run.apply(stays(door, nights))
    asked = "is tonight's export complete?"
    caplog.clear()
    fewer = {key: value for key, value in nights.items() if key != "R5"}
    assert (await run.apply(stays(door, fewer))).newly_orphaned == 1
    assert not [r for r in caplog.records if asked in r.getMessage()]
    truncated = await run.apply(stays(door, {"R0": nights["R0"]}))
    assert truncated.newly_orphaned == 4
    assert not [r for r in caplog.records if asked in r.getMessage()]  # 4: under five
    await run.apply(stays(door, nights))
    caplog.clear()
    assert (await run.apply(stays(door, {"R0": nights["R0"]}))).newly_orphaned == 5
    said = [r for r in caplog.records if asked in r.getMessage()]
    assert [r.levelname for r in said] == ["WARNING"]
    assert (
        said[0]
        .getMessage()
        .startswith("this run orphaned 5 code(s), more than the 1 its input still has:")
    )
