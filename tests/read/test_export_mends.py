"""Exports that went wrong silently before a review: a stray text cell in a workbook's date
column, a time inside date_format, an offset, a mostly-UTF-8 file with one stray byte, an alias
that is a door's own name, formats only half configured, ISO and US dates in one column."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from pipeline.catalog.checks import check_config
from pipeline.common.errors import ConfigError
from pipeline.common.settings import Config, load_config

LEVEL = '[user_levels.sites]\n"Harbor View" = "Guest 3:30pm-10:30am"\n'
HEADER = "reservation_id,site_name,door_name,check_in,check_out"


def windows(plan: pl.DataFrame) -> list[tuple[str | None, ...]]:
    return plan.select("reservation_id", "starts_at", "ends_at", "reason").rows()


def test_a_text_cell_in_a_workbook_date_column_keeps_the_dates_dates(tmp_path, plan_file):
    """One text cell makes a column text: its typed date cells still read as dates, so a stay
    keeps its level's times instead of becoming a midnight-to-midnight one."""
    source = tmp_path / "export.xlsx"
    pl.DataFrame(
        {
            "reservation_id": ["R1", "R2"],
            "site_name": ["Harbor View", "Harbor View"],
            "door_name": ["Room 101", "Room 102"],
            "check_in": [dt.date(2027, 3, 25), "TBD"],
            "check_out": [dt.date(2027, 3, 28), dt.date(2027, 3, 30)],
        },
        strict=False,
    ).write_excel(source)
    code, plan, _ = plan_file(source, LEVEL)
    assert code == 1
    assert windows(plan)[0] == (
        "R1",
        "2027-03-25T15:30:00-07:00",
        "2027-03-28T10:30:00-07:00",
        None,
    )
    assert windows(plan)[1][3] == "invalid_row"


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        (
            'date_format = "%m/%d/%Y %H:%M"',
            "[input] date_format '%m/%d/%Y %H:%M' holds %H, which belongs in time_format",
        ),
        (
            'time_format = "%d %H:%M"',
            "[input] time_format '%d %H:%M' holds %d, which belongs in date_format",
        ),
        ('time_format = "%H:%M %z"', "holds an offset (%z)"),
        ('date_format = "DD.MM.YYYY"', "has no strftime directive"),
    ],
)
def test_formats_that_would_read_wrong_are_refused_at_start(tmp_path, setting, problem):
    """A time in date_format (it would be dropped), a date in time_format, an offset (it would
    shift the lock-local time) or a format without directives: exit 2 naming it."""
    config = tmp_path / "pipeline.toml"
    config.write_text(f"[input]\n{setting}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    assert refused.value.exit_code == 2
    assert problem in refused.value.one_line()


def test_a_mostly_utf8_file_with_a_stray_byte_is_read_as_utf8(tmp_path, plan_file, read_warnings):
    """One stray cp1252 byte in a UTF-8 export: the file is still read as UTF-8 (names intact,
    a cancelled booking's "Annulé" still excluded), the stray byte's line is named, and its row
    alone is rejected (no code is named after "Ren�")."""
    source = tmp_path / "mixed.csv"
    source.write_bytes(
        (
            f"{HEADER},guest_name,Status\n"
            "R1,Harbor View,Room 101,2027-03-25,2027-03-28,Jürgen,Confirmé\n"
            "R2,Harbor View,Room 102,2027-03-25,2027-03-28,Zoë,Annulé\n"
        ).encode()
        + b"R3,Harbor View,Room 103,2027-03-25,2027-03-28,Ren\xe9,Confirm\xe9\n"
    )
    code, plan, _ = plan_file(source, LEVEL + '[input.skip]\nStatus = ["Annulé"]\n')
    rows = {row["reservation_id"]: row for row in plan.iter_rows(named=True)}
    assert rows["R1"]["name"].startswith("R1 Jürgen [opl-")
    assert (rows["R2"]["outcome"], rows["R2"]["reason"]) == ("skipped", "excluded")
    assert read_warnings[0].endswith(
        "is UTF-8 with bytes that aren't: read as UTF-8, those bytes replaced (their lines are"
        " named below); if names look wrong, set [input] encoding"
    )
    assert "line(s) 4 hold a replacement character" in read_warnings[1]
    assert (rows["R3"]["outcome"], rows["R3"]["reason"]) == ("rejected", "invalid_row")
    assert code == 1


def test_an_alias_that_is_a_doors_own_name_is_warned(sandbox_catalog):
    """An alias whose name is itself a door's sends that door's rows elsewhere: said at start."""
    config = Config.model_validate({"doors": {"aliases": {"Room 102": "Room 101"}}})
    problems = check_config(config, sandbox_catalog)
    assert problems == [
        '[doors.aliases] "Room 102" is itself the name of a door: rows naming it go to'
        ' "Room 101", not to that door (remove the alias if the export means the door)'
    ]


def test_time_format_alone_still_detects_the_date_order(tmp_path, plan_file, read_warnings):
    """Only time_format set: the dates' order is still detected (and said), and ISO times in
    another row are accepted beside the configured format."""
    source = tmp_path / "times.csv"
    source.write_text(
        f"{HEADER}\n"
        "R1,Harbor View,Room 101,03/25/2027 3:30 PM,03/28/2027 10:30 AM\n"
        "R2,Harbor View,Room 102,03/26/2027 15:30,03/29/2027 10:30\n"
    )
    code, plan, _ = plan_file(source, '[input]\ntime_format = "%I:%M %p"\n')
    assert code == 0
    assert windows(plan) == [
        ("R1", "2027-03-25T15:30:00-07:00", "2027-03-28T10:30:00-07:00", None),
        ("R2", "2027-03-26T15:30:00-07:00", "2027-03-29T10:30:00-07:00", None),
    ]
    assert any("check_in read as %m/%d/%Y" in line for line in read_warnings)


def test_iso_and_us_dates_in_one_column_are_month_first_not_ambiguous(
    tmp_path, plan_file, read_warnings
):
    """A column mixing 2027-03-25 and 03/26/2027: ISO values settle nothing, so the US ones are
    read month-first (a day over 12 says so), and both rows plan."""
    source = tmp_path / "mixed-dates.csv"
    source.write_text(
        f"{HEADER}\n"
        "R1,Harbor View,Room 101,2027-03-25,2027-03-28\n"
        "R2,Harbor View,Room 102,03/26/2027,03/29/2027\n"
    )
    code, plan, errors = plan_file(source, LEVEL)
    assert (code, errors) == (0, [])
    assert [row[1][:10] for row in windows(plan)] == ["2027-03-25", "2027-03-26"]


def test_a_column_no_known_format_reads_is_said_once(tmp_path, plan_file, read_warnings):
    """Dates in no known format: one warning line names the column, a value and the setting
    (the rows are rejected), instead of every row failing in silence."""
    source = tmp_path / "unknown.csv"
    source.write_text(f"{HEADER}\nR1,Harbor View,Room 101,25. März 2027,28. März 2027\n")
    code, plan, _ = plan_file(source, LEVEL)
    assert code == 1
    assert plan["reason"].to_list() == ["invalid_row"]
    assert any(
        "check_in values read in no known date format (e.g. '25. März 2027' on line 2)" in line
        and "set [input] date_format" in line
        for line in read_warnings
    )
