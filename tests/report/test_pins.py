"""pins: the guest → PIN hand-off, never a cancelled guest's or a replaced code's PIN."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import stat

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.commands import export_pins
from pipeline.report.pins import PIN_COLUMNS, guest_from_name
from tests.apply_helpers import one_door_sandbox, start_sandbox
from tests.generate import make_devices
from tests.report.helpers import (
    latest_start,
    move_sandbox_clock_to,
    refresh,
    stays_with_guests,
)

pytestmark = pytest.mark.virtual_time

TONIGHT = {
    "KEEP": ("2027-03-01", "2027-03-04", "Ada Lovelace"),
    "MOVE": ("2027-03-05", "2027-03-07", "Alan Turing"),
    "CANCEL": ("2027-03-10", "2027-03-12", "Grace Hopper"),
}


stays = stays_with_guests


@pytest.mark.anyio
async def test_pins_never_lists_a_cancelled_stays_code_nor_a_replaced_one(tmp_path, monkeypatch):
    """The next night's export lacks CANCEL (orphaned) and moves MOVE (reissued): pins lists
    KEEP and MOVE's new code only, with the guests' names and the lock-local windows."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=71)
    first = await run.apply(stays(door, TONIGHT))
    old = dict(first.result.results.select("reservation_id", "access_code_id").rows())
    moved = {"KEEP": TONIGHT["KEEP"], "MOVE": ("2027-03-20", "2027-03-22", "Alan Turing")}
    second = await run.apply(stays(door, moved), reissue_changed=True)
    assert second.newly_orphaned == 1
    new_move = second.result.results.filter(pl.col("reservation_id") == "MOVE")["access_code_id"]

    pins = (await export_pins(ledger_path=run.ledger, out=tmp_path / "pins.csv")).pins
    assert pins.columns == list(PIN_COLUMNS)
    assert pins["reservation_id"].to_list() == ["KEEP", "MOVE"]
    assert pins["guest_name"].to_list() == ["Ada Lovelace", "Alan Turing"]
    codes = dict(pins.select("reservation_id", "access_code_id").rows())
    assert codes == {"KEEP": old["KEEP"], "MOVE": new_move[0]}
    assert old["CANCEL"] not in pins["access_code_id"].to_list()
    with sqlite3.connect(run.ledger) as db:
        windows = dict(
            db.execute("SELECT access_code_id, starts_at || ' ' || ends_at FROM codes").fetchall()
        )
    for row in pins.iter_rows(named=True):
        assert f"{row['check_in']} {row['check_out']}" == windows[row["access_code_id"]]
        assert row["check_in"][-6] in "+-"  # the lock's offset


@pytest.mark.anyio
async def test_apply_records_each_codes_guest_whatever_the_name_template(tmp_path, monkeypatch):
    """The ledger's guests table holds each code's guest as the export gave it, so pins names
    the guests even when the code names don't carry them (a template without {guest_name})."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=75)
    config = tmp_path / "pipeline.toml"
    config.write_text('name_template = "{reservation_id} [{tag}]"\n')
    await run.apply(stays(door, TONIGHT), config_path=config)
    with sqlite3.connect(run.ledger) as db:
        recorded = db.execute(
            "SELECT c.reservation_id, g.guest_name FROM guests g JOIN codes c"
            " USING (idempotency_tag) ORDER BY c.reservation_id"
        ).fetchall()
    assert recorded == [
        ("CANCEL", "Grace Hopper"),
        ("KEEP", "Ada Lovelace"),
        ("MOVE", "Alan Turing"),
    ]
    pins = (await export_pins(ledger_path=run.ledger, out=tmp_path / "pins.csv")).pins
    assert pins["guest_name"].to_list() == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]


@pytest.mark.anyio
async def test_a_pin_is_ready_once_known_and_why_not_before(tmp_path, monkeypatch):
    """Before Seam assigns PINs: not ready, no_pin_yet. Past check-in: the working door's
    codes are ready with their PINs, the stuck door's say Seam's error; --ready-only lists the
    ready ones alone."""
    payload = make_devices(2, seed=72)
    stuck, working = (device["device_id"] for device in payload["devices"])
    payload["sandbox"] = {"stuck_devices": [stuck]}
    run = start_sandbox(payload, tmp_path, monkeypatch)
    dates = {"A": ("2027-02-01", "2027-02-05", "Ann"), "B": ("2027-02-02", "2027-02-06", "Bo")}
    await run.apply(pl.concat([stays(stuck, dates), stays(working, {"W": dates["A"]})]))
    now = dt.datetime.now(dt.UTC)
    early = (await export_pins(ledger_path=run.ledger, out=tmp_path / "early.csv", now=now)).pins
    assert early["ready"].to_list() == [False] * 3
    assert early["why_not_ready"].str.starts_with("no_pin_yet").all()
    assert early["code"].null_count() == 3

    later = latest_start(run) + dt.timedelta(hours=2)
    move_sandbox_clock_to(run, later)
    await refresh(run, later)
    pins = (await export_pins(ledger_path=run.ledger, out=tmp_path / "later.csv", now=later)).pins
    ready = pins.filter(pl.col("ready"))
    assert ready["reservation_id"].to_list() == ["W"]
    assert ready["why_not_ready"].to_list() == [None]
    pin = next(c.pin for c in run.state.codes.values() if c.device_id == working)
    assert ready["code"].to_list() == [pin]
    waiting = pins.filter(~pl.col("ready"))
    assert sorted(waiting["reservation_id"]) == ["A", "B"]
    assert waiting["why_not_ready"].str.contains("failed_to_set_on_device").all()

    only = await export_pins(
        ledger_path=run.ledger, out=tmp_path / "ready.csv", ready_only=True, now=later
    )
    assert only.pins["reservation_id"].to_list() == ["W"]
    since = await export_pins(
        ledger_path=run.ledger,
        out=tmp_path / "since.csv",
        changed_since=(later - dt.timedelta(minutes=1)).isoformat(),
        now=later,
    )
    assert sorted(since.pins["reservation_id"]) == ["A", "B", "W"]  # status changed all three
    none = await export_pins(
        ledger_path=run.ledger,
        out=tmp_path / "none.csv",
        changed_since=(later + dt.timedelta(minutes=1)).isoformat(),
        now=later,
    )
    assert none.pins.is_empty()


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
async def test_the_pins_file_is_private_and_reads_back_in_each_format(tmp_path, monkeypatch, fmt):
    """csv, parquet and json: mode 0600, written atomically (no temporary file left), the
    same rows when read back; the default name is outputs/pins-<UTC time>.<format>."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=73)
    await run.apply(stays(door, TONIGHT))
    monkeypatch.chdir(tmp_path)
    written = await export_pins(ledger_path=run.ledger, fmt=fmt)
    assert written.out.parent.name == "outputs"
    assert written.out.name.startswith("pins-")
    assert written.out.suffix == f".{fmt}"
    assert stat.S_IMODE(os.stat(written.out).st_mode) == 0o600
    assert [p.name for p in written.out.parent.iterdir()] == [written.out.name]
    if fmt == "csv":
        back = pl.read_csv(written.out)["reservation_id"].to_list()
    elif fmt == "parquet":
        back = pl.read_parquet(written.out)["reservation_id"].to_list()
    else:
        back = [row["reservation_id"] for row in json.loads(written.out.read_text())]
    assert back == written.pins["reservation_id"].to_list() == ["KEEP", "MOVE", "CANCEL"]


def test_pins_refuses_a_format_its_file_contradicts_and_a_time_without_offset(tmp_path, capsys):
    """--out x.parquet --format csv, and --changed-since without an offset: exit 2, one line,
    before the ledger is read (none exists here)."""
    ledger = str(tmp_path / "none.sqlite")
    out = str(tmp_path / "x.parquet")
    assert main(["pins", "--ledger", ledger, "--out", out, "--format", "csv"]) == 2
    assert main(["pins", "--ledger", ledger, "--changed-since", "2027-02-01T03:00"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(f"error: --out {out} says parquet but --format is csv")
    assert err[1].startswith("error: --changed-since '2027-02-01T03:00' is not an instant")


@pytest.mark.parametrize(
    ("command", "out", "said"),
    [
        (
            ["pins"],
            "pins.xlsx",
            "extension '.xlsx', but the file would be csv (end its name in .csv",
        ),
        (
            ["pins", "--format", "json"],
            "p.txt",
            "extension '.txt', but the file would be json (end its name in .json",
        ),
        (["pins"], "pins", "no extension, but the file would be csv (end its name in .csv"),
        (
            ["report", "--format", "json"],
            "r.csv",
            "extension '.csv', but the file would be json (end its name in .json",
        ),
        (
            ["report", "--format", "html"],
            "r.pdf",
            "extension '.pdf', but the file would be html (end its name in .html",
        ),
    ],
)
def test_a_file_named_for_another_format_is_refused(tmp_path, capsys, command, out, said):
    """pins and report refuse an --out whose extension isn't the file's format (Excel won't
    open a CSV named .xlsx): exit 2, one line, before the ledger is read (none exists here)."""
    path = tmp_path / out
    ledger = str(tmp_path / "none.sqlite")
    assert main([*command, "--ledger", ledger, "--out", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --out {path} has {said}, or choose the format with --format)"]
    assert not path.exists()


@pytest.mark.parametrize(
    ("name", "guest"),
    [
        ("R1 Ada Lovelace [opl-1]", "Ada Lovelace"),
        ("R1 [opl-1]", None),
        ("Ada Lovelace R1 [opl-1]", None),
        ("R1 Ada opl-1", None),
    ],
)
def test_a_guest_name_is_read_from_a_default_template_code_name(name, guest):
    """Codes from before guest names were kept: the name between the reservation id and the
    tag, only for names the default template made."""
    row = {"name": name, "reservation_id": "R1", "idempotency_tag": "opl-1"}
    assert guest_from_name(row) == guest


@pytest.mark.anyio
async def test_a_moved_stay_without_reissue_lists_no_stale_pin(tmp_path, monkeypatch):
    """MOVE moves without --reissue-changed: its new row is rejected and its old code (the old
    window) is superseded, so pins lists no PIN for it, only why and the fix, until the stay
    is back or reissued."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=72)
    await run.apply(stays(door, TONIGHT))
    moved = {**TONIGHT, "MOVE": ("2027-03-20", "2027-03-22", "Alan Turing")}
    await run.apply(stays(door, moved))
    pins = (await export_pins(ledger_path=run.ledger, out=tmp_path / "pins.csv")).pins
    assert pins["reservation_id"].to_list() == ["KEEP", "CANCEL", "MOVE"]
    move = pins.row(2, named=True)
    assert (move["code"], move["access_code_id"], move["ready"]) == (None, None, False)
    assert move["why_not_ready"].startswith(
        "rejected: changed_after_creation: reservation MOVE already has code "
    )
    assert move["why_not_ready"].endswith(
        "; codes can't be deleted, so no new code was made; fix: the stay changed after its"
        " code was made: set [changes] reissue_changed = true in the config (or rerun apply"
        " with --reissue-changed) to make the new code, then send it to the guest"
    )
    await run.apply(stays(door, TONIGHT))  # the stay is back as it was: its code is current
    back = (await export_pins(ledger_path=run.ledger, out=tmp_path / "back.csv")).pins
    assert back["reservation_id"].to_list() == ["KEEP", "MOVE", "CANCEL"]


@pytest.mark.anyio
async def test_status_results_keep_a_withdrawn_codes_pin_out(tmp_path, monkeypatch):
    """After CANCEL leaves the export and MOVE moves, status's results file marks their old
    codes orphaned and superseded and holds no PIN for them; KEEP's PIN is there."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=74)
    await run.apply(stays(door, TONIGHT))
    moved = {"KEEP": TONIGHT["KEEP"], "MOVE": ("2027-03-20", "2027-03-22", "Alan Turing")}
    await run.apply(stays(door, moved))
    move_sandbox_clock_to(run, latest_start(run))  # every code set, with its PIN
    status = await refresh(run, dt.datetime.now(dt.UTC))
    written = pl.read_csv(status.out, infer_schema=False)
    with sqlite3.connect(run.ledger) as db:
        by_tag = dict(db.execute("SELECT idempotency_tag, reservation_id FROM codes").fetchall())
    result = {
        by_tag[row["idempotency_tag"]]: (row["withdrawn"], row["code"])
        for row in written.iter_rows(named=True)
    }
    assert result["CANCEL"] == ("orphaned", None)
    assert result["MOVE"] == ("superseded", None)
    assert result["KEEP"][0] is None
    assert result["KEEP"][1] is not None
