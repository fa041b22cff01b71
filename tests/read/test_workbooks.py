"""A workbook's cells, each read on its own: a date cell is a date whatever else its column
holds (a booking's date-times, a date-time above the headers), a date-time keeps its time to
the second, and a date-time at midnight reads as a date."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.common.settings import Config
from pipeline.read.files import read_reservations
from tests.read.ods import write_ods
from tests.read.xlsx import write_xlsx

HEADER = ["reservation_id", "site_name", "door_name", "check_in", "check_out", "guest_name"]
LEVEL = '[user_levels.sites]\n"Harbor View" = "Guest 3:30pm-10:30am"\n'
WRITERS = pytest.mark.parametrize(("writer", "suffix"), [(write_xlsx, "xlsx"), (write_ods, "ods")])


def booking(number: int, check_in: object, check_out: object) -> list[object]:
    return [f"R-{number}", "Harbor View", f"Room 10{number}", check_in, check_out, "Ann"]


def stays(source) -> list[tuple[str | None, ...]]:
    table = read_reservations([source], Config())
    return table.select("reservation_id", "check_in", "check_out").rows()


@WRITERS
def test_a_date_cell_beside_date_time_cells_is_a_date(tmp_path, plan_file, writer, suffix):
    """A booking with date cells in columns whose other booking has date-times reads as dates,
    and plans on its site's level for dates-only stays, not as a stay from midnight."""
    rows = [
        HEADER,
        booking(1, dt.date(2027, 3, 25), dt.date(2027, 3, 28)),
        booking(2, dt.datetime(2027, 3, 29, 15, 30), dt.datetime(2027, 3, 31, 10, 30)),
    ]
    source = writer(tmp_path / f"mixed.{suffix}", {"Arrivals": rows})
    assert stays(source) == [
        ("R-1", "2027-03-25", "2027-03-28"),
        ("R-2", "2027-03-29T15:30:00", "2027-03-31T10:30:00"),
    ]
    code, plan, _ = plan_file(source, LEVEL)
    assert code == 0
    assert plan.select("reservation_id", "user_level_name", "starts_at", "ends_at").rows() == [
        ("R-1", "Guest 3:30pm-10:30am", "2027-03-25T15:30:00-07:00", "2027-03-28T10:30:00-07:00"),
        ("R-2", "Guest 3:30pm-10:30am", "2027-03-29T15:30:00-07:00", "2027-03-31T10:30:00-07:00"),
    ]


@WRITERS
def test_a_date_time_above_the_headers_changes_no_date_cell(tmp_path, plan_file, writer, suffix):
    """A "Printed:" date-time above the headers, in the check-in column, leaves the bookings'
    date cells dates: both plan (none is rejected for mixing dates and times)."""
    rows = [
        ["Arrivals", None, None, "Printed:"],
        [None, None, None, dt.datetime(2027, 3, 24, 8, 13)],
        [],
        HEADER,
        booking(1, dt.date(2027, 3, 25), dt.date(2027, 3, 28)),
        booking(2, dt.date(2027, 3, 26), dt.date(2027, 3, 29)),
        ["Total: 2"],
    ]
    source = writer(tmp_path / f"printed.{suffix}", {"Arrivals": rows})
    code, plan, errors = plan_file(source, LEVEL)
    assert (code, errors) == (0, [])
    assert plan.select("reservation_id", "outcome", "starts_at").rows() == [
        ("R-1", "planned", "2027-03-25T15:30:00-07:00"),
        ("R-2", "planned", "2027-03-26T15:30:00-07:00"),
    ]


@WRITERS
def test_a_booking_reads_the_same_whatever_the_others_hold(tmp_path, writer, suffix):
    """The same bookings (date cells, a date as text, a date-time at midnight) under a title
    and over a total read the same with and without another booking whose cells have times."""
    bookings = [
        booking(1, dt.date(2027, 3, 25), dt.date(2027, 3, 28)),
        booking(2, "2027-03-26", dt.date(2027, 3, 29)),
        booking(3, dt.datetime(2027, 3, 27), dt.date(2027, 3, 30)),
    ]
    timed = booking(4, dt.datetime(2027, 3, 29, 16), dt.datetime(2027, 3, 31, 10))
    title = [["Arrivals Report - Harbor Hotel"], []]
    total = [["Total reservations", None, None, 4]]
    alone = writer(tmp_path / f"alone.{suffix}", {"S": [*title, HEADER, *bookings, *total]})
    beside = writer(
        tmp_path / f"beside.{suffix}", {"S": [*title, HEADER, *bookings, timed, *total]}
    )
    expected = [
        ("R-1", "2027-03-25", "2027-03-28"),
        ("R-2", "2027-03-26", "2027-03-29"),
        ("R-3", "2027-03-27", "2027-03-30"),
    ]
    assert stays(alone) == expected
    assert stays(beside) == [*expected, ("R-4", "2027-03-29T16:00:00", "2027-03-31T10:00:00")]


def test_date_time_cells_keep_their_times_to_the_second_and_midnight_is_a_date(tmp_path):
    """A date-time cell whose number falls a hair before the minute (15:29:59.9995) reads as
    15:30; a date-time at midnight reads as a date (an .xlsx file doesn't tell it from a date
    cell), so beside a time of day its row mixes the two and is rejected by planning."""
    rows = [
        ["reservation_id", "door_name", "check_in", "check_out"],
        [
            "R1",
            "Room 101",
            dt.datetime(2027, 3, 25, 15, 29, 59, 999_500),
            dt.datetime(2027, 3, 28, 10, 30),
        ],
        ["R2", "Room 102", dt.datetime(2027, 3, 26), dt.date(2027, 3, 29)],
        ["R3", "Room 103", dt.datetime(2027, 3, 27, 15, 30), dt.datetime(2027, 3, 30)],
    ]
    source = write_xlsx(tmp_path / "times.xlsx", {"Sheet": rows})
    table = read_reservations([source], Config())
    assert table.select("check_in", "check_out").rows() == [
        ("2027-03-25T15:30:00", "2027-03-28T10:30:00"),
        ("2027-03-26", "2027-03-29"),
        ("2027-03-27T15:30:00", "2027-03-30"),
    ]
