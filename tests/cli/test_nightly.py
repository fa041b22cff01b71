"""The nightly job as one command: apply, status, the report and the summary, its files private
in the night's folder, older nights' files removed by the time in their names."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
import subprocess

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.cli.nightly import remove_old_nights, run_nightly
from tests.apply_helpers import one_door_sandbox
from tests.paths import ROOT

NIGHT = dt.datetime(2027, 3, 1, 3, 0, tzinfo=dt.UTC)
ARGS = "ARGS=--no-reissue-changed --keep-days 3"


def test_a_nights_files_go_after_keep_days_by_the_time_in_their_names(tmp_path):
    """With 14 days kept, the files of a night 15 days before go, those of 14 days before and
    later stay; files that aren't a night's are never touched, whatever their age."""
    names = [
        "nightly-20270214T025959Z-apply.log",  # 14 days and a second: goes
        "nightly-20270215T030000Z-apply.log",  # 14 days exactly: stays
        "nightly-20270101T030000Z-results.parquet",  # goes
        "nightly-20270301T030000Z-report.json",  # tonight
        "ledger.sqlite",
        "pins-20260101T000000Z.csv",
        "nightly-notes.txt",
    ]
    for name in names:
        (tmp_path / name).write_text("x")
    os.utime(tmp_path / "nightly-20270215T030000Z-apply.log", (0, 0))  # an old mtime: no matter
    removed = remove_old_nights(tmp_path, now=NIGHT, keep_days=14)
    assert [path.name for path in removed] == [
        "nightly-20270101T030000Z-results.parquet",
        "nightly-20270214T025959Z-apply.log",
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        set(names) - {path.name for path in removed}
    )


def stays(door: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "reservation_id": ["KEEP", "LOST"],
            "device_id": [door, "no-such-door"],
            "check_in": ["2027-03-01", "2027-03-02"],
            "check_out": ["2027-03-04", "2027-03-03"],
            "guest_name": ["Ada Lovelace", "Lin Lost"],
        }
    )


@pytest.mark.virtual_time
@pytest.mark.anyio
async def test_the_job_writes_its_files_private_in_the_configured_folder(tmp_path, monkeypatch):
    """[nightly] out_dir and keep_days: apply's and status's logs and results, the report as
    JSON and as the HTML page beside it, all 0600 and named after the night; the summary's exit
    code; an older night's files removed."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=93)
    source = tmp_path / "tonight.csv"
    stays(door).write_csv(source)
    nights = tmp_path / "nights"
    nights.mkdir()
    (nights / "nightly-20261101T030000Z-apply.log").write_text("an old night")
    config = tmp_path / "pipeline.toml"
    config.write_text(f'[nightly]\nout_dir = "{nights}"\nkeep_days = 3\n')
    now = dt.datetime.now(dt.UTC)
    done = await run_nightly(
        [source], config_path=config, ledger_path=run.ledger, transport=run.transport, now=now
    )
    prefix = f"nightly-{now:%Y%m%dT%H%M%SZ}"
    endings = (
        *("apply.log", "report.html", "report.json", "results.parquet"),
        *("status.log", "status.parquet"),
    )
    assert sorted(path.name for path in nights.iterdir()) == [f"{prefix}-{e}" for e in endings]
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in nights.iterdir())
    assert (done.apply_exit, done.status_exit, done.exit_code) == (1, 0, 1)
    assert [path.name for path in done.removed] == ["nightly-20261101T030000Z-apply.log"]
    report = json.loads((nights / f"{prefix}-report.json").read_text())
    assert [row["reservation_id"] for row in report["needs_a_person"]] == ["LOST"]
    page = (nights / f"{prefix}-report.html").read_text()
    assert f"As of {now:%Y-%m-%d %H:%M} UTC" in page
    assert re.search(r"<th scope=\"row\"><bdi>LOST</bdi></th>\s*<td><bdi>Lin Lost</bdi>", page)
    assert "creates sent in" in (nights / f"{prefix}-apply.log").read_text()
    lines = done.lines()
    assert lines[0] == (
        f"apply exit 1, status exit 0; logs, results and report: {nights / prefix}-*"
    )
    assert lines[1] == "removed 1 file(s) of earlier nights"
    assert lines[2].startswith("tonight: 1 created, 1 still waiting for a PIN,")
    assert lines[3] == (
        "  new rejected: LOST on no-such-door: unknown_device (Lin Lost): name the door as"
        " Seam does in the export, or add a [doors.aliases] entry"
    )
    assert lines[-1] == "nightly exit 1: new trouble tonight: see the report"


def test_keep_days_under_one_is_exit_2_before_anything_runs(tmp_path, capsys):
    """--keep-days 0: exit 2, one line naming the option; no ledger, no file made."""
    options = ["--keep-days", "0", "--out-dir", str(tmp_path / "o")]
    code = main(["nightly", str(tmp_path / "x.csv"), *options, "--ledger", str(tmp_path / "l")])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --keep-days 0: input should be greater than or equal to 1"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_make_nightly_runs_the_command_with_args():
    """make nightly hands INPUT, CONFIG and ARGS to oracode-provision nightly."""
    shown = subprocess.run(
        [*("make", "-C", str(ROOT), "-n", "nightly", "INPUT=x.csv", "CONFIG=c.toml"), ARGS],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (
        ".venv/bin/oracode-provision nightly x.csv --config c.toml --no-reissue-changed"
        " --keep-days 3"
    ) in shown.splitlines()
