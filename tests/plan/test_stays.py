"""Stays as exports write them: the read stage's ISO text, and what planning parses from it."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from pipeline.common.errors import InputFileError
from pipeline.common.input_settings import INPUT_SECTION, InputConfig
from pipeline.plan.stays import parse_stays
from pipeline.read.dates import normalise_stays


def read(columns: dict[str, list[str | None]], **settings: str) -> pl.DataFrame:
    frame = pl.DataFrame(columns, schema=dict.fromkeys(columns, pl.String)).with_columns(
        source_line=pl.int_range(pl.len(), dtype=pl.Int64) + 2
    )
    return normalise_stays(frame, InputConfig.model_validate(settings), "export.csv", INPUT_SECTION)


@pytest.mark.parametrize(
    ("value", "settings", "iso"),
    [
        ("2027-03-25", {}, "2027-03-25"),
        ("2027-03-25T15:30+01:00", {}, "2027-03-25T15:30+01:00"),
        ("03/25/2027", {}, "2027-03-25"),
        ("03/04/2027", {"date_format": "%m/%d/%Y"}, "2027-03-04"),
        ("03/04/2027", {"date_format": "%d/%m/%Y"}, "2027-04-03"),
        ("03/25/2027 3:30 PM", {}, "2027-03-25T15:30"),
        ("3/25/27 11:05 am", {}, "2027-03-25T11:05"),
        (
            "03/04/2027 3:30 PM",
            {"date_format": "%m/%d/%Y", "time_format": "%I:%M %p"},
            "2027-03-04T15:30",
        ),
        ("2027-03-25 3:30 PM", {"time_format": "%I:%M %p"}, "2027-03-25T15:30"),
        ("25.03.2027 15:30:45", {}, "2027-03-25T15:30:45"),
        ("Mar 25, 2027", {}, "2027-03-25"),
        ("25 March 2027", {}, "2027-03-25"),
        ("25-Mar-27", {}, "2027-03-25"),
        ("25/13/2027", {"date_format": "%d/%m/%Y"}, "25/13/2027"),
    ],
)
def test_export_values_become_iso_text(value, settings, iso):
    """Each export spelling becomes the ISO text planning parses; one that doesn't read in the
    configured format is passed on as written."""
    assert read({"check_in": [value]}, **settings)["check_in"].to_list() == [iso]


@pytest.mark.parametrize(
    ("date", "time", "settings", "iso"),
    [
        ("03/25/2027", "3:30 PM", {}, "2027-03-25T15:30"),
        ("03/25/2027", None, {}, "2027-03-25"),
        (None, "3:30 PM", {}, None),
        ("2027-03-25", "15:30", {}, "2027-03-25T15:30"),
        ("2027-03-25", "3.30", {}, "2027-03-25 3.30"),
        (
            "25.03.2027",
            "15.30",
            {"date_format": "%d.%m.%Y", "time_format": "%H.%M"},
            "2027-03-25T15:30",
        ),
    ],
)
def test_split_date_and_time_columns_combine(date, time, settings, iso):
    """``check_in_date`` + ``check_in_time`` make one ``check_in``; a part that doesn't read
    leaves both as written (planning rejects the row naming them)."""
    table = read({"check_in_date": [date], "check_in_time": [time]}, **settings)
    assert table.columns == ["source_line", "check_in", "check_out"]
    assert table["check_in"].to_list() == [iso]


def test_iso_text_parses_to_lock_local_date_and_time():
    """What the read stage writes is what ``parse_stays`` reads: date, time, no offset."""
    table = read({"check_in": ["03/25/2027 3:30 PM", "04/13/2027 10:30 AM", "05/01/2027"]})
    parsed = parse_stays(table.with_row_index("row"), "check_in")
    assert parsed.select("check_in_date", "check_in_time", "check_in_ok").rows() == [
        (dt.date(2027, 3, 25), dt.time(15, 30), True),
        (dt.date(2027, 4, 13), dt.time(10, 30), True),
        (dt.date(2027, 5, 1), None, True),
    ]


def test_a_column_that_reads_two_ways_is_refused():
    """Only days up to 12: month-first and day-first both read, so the read stops."""
    with pytest.raises(InputFileError) as raised:
        read({"check_out": ["01/02/2027", "03/04/2027"]})
    assert raised.value.one_line() == (
        "reservation file export.csv: check_out can be read as %m/%d/%Y or as %d/%m/%Y"
        " (e.g. '01/02/2027'), and no value settles which"
        ' (set [input] date_format, e.g. date_format = "%m/%d/%Y")'
    )


def test_the_same_date_either_way_is_not_ambiguous():
    """A day that equals its month reads the same both ways: no question to ask."""
    assert read({"check_in": ["03/03/2027"]})["check_in"].to_list() == ["2027-03-03"]
