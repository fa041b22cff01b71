"""Where the table is: a title and blank rows above the headers, a total and a footnote under
the data, a header row set by hand."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from tests.read.ods import write_ods
from tests.read.xlsx import write_xlsx

COLUMNS = """
[columns]
Confirmation = "reservation_id"
Property = "site_name"
Unit = "door_name"
Arrival = "check_in_date"
"Arrival time" = "check_in_time"
Departure = "check_out_date"
"Departure time" = "check_out_time"
"""
HEADERS = [
    "Confirmation",
    "Property",
    "Unit",
    "Arrival",
    "Arrival time",
    "Departure",
    "Departure time",
]


def booking(
    confirmation: int | str, room: int, arrival: dt.date, departure: dt.date
) -> list[object]:
    """A booking's row of the report: typed date cells, the times 15:30 and 10:30."""
    return [
        confirmation,
        "Harbor View",
        f"Room {room}",
        arrival,
        dt.time(15, 30),
        departure,
        dt.time(10, 30),
    ]


# As a property system's "Arrivals" report comes: a title, a blank row, the headers, the
# bookings with typed date and time cells, a blank row, a total under the date and time
# columns, and a footnote.
REPORT = [
    ["Arrivals Report - Harbor View, 25.03.2027", None, None, None, None, None, None],
    [None] * 7,
    HEADERS,
    booking(1001, 101, dt.date(2027, 3, 25), dt.date(2027, 3, 28)),
    booking("A-1002", 102, dt.date(2027, 4, 2), dt.date(2027, 4, 5)),
    [None] * 7,
    ["Total reservations: 2", None, None, 2, 1.5, None, None],
    ["* times are the property's local time", None, None, None, None, None, None],
]
PLANNED = [
    ("1001", "2027-03-25T15:30:00-07:00", "2027-03-28T10:30:00-07:00", None),
    ("A-1002", "2027-04-02T15:30:00-07:00", "2027-04-05T10:30:00-07:00", None),
]


def windows(plan: pl.DataFrame) -> list[tuple[str | None, ...]]:
    return plan.select("reservation_id", "starts_at", "ends_at", "reason").rows()


@pytest.mark.parametrize(("writer", "suffix"), [(write_xlsx, "xlsx"), (write_ods, "ods")])
def test_a_report_with_a_title_a_blank_row_and_a_total_line_plans_its_bookings(
    tmp_path, plan_file, read_warnings, writer, suffix
):
    """The headers are found under the title, every date and time cell reads as the date or
    time it is (the total's numbers under them change nothing), and the three rows after the
    data are left out with one info line: never planned, never in the plan."""
    source = writer(tmp_path / f"arrivals.{suffix}", {"Arrivals": REPORT})
    code, plan, errors = plan_file(source, COLUMNS)
    assert (code, errors) == (0, [])
    assert windows(plan) == PLANNED
    assert plan["source_line"].to_list() == ["4", "5"]
    assert read_warnings == [
        f"{source}: 3 rows after the data (lines 6-8) hold no reservation (not two of an id, a"
        " door and both dates: a total, a note or a blank row): left out"
    ]


def test_headers_below_the_searched_rows_need_header_row(tmp_path, plan_file, read_warnings):
    """Headers under 25 rows of preamble aren't looked for: exit 2 naming the setting; with
    ``[input] header_row = 26`` the sheet plans, its rows numbered as in the sheet."""
    preamble = [[f"Report line {n}", None, None, None, None, None, None] for n in range(1, 26)]
    source = write_xlsx(tmp_path / "arrivals.xlsx", {"Arrivals": [*preamble, *REPORT[2:5]]})
    code, plan, errors = plan_file(source, COLUMNS)
    assert (code, plan) == (2, None)
    assert errors == [
        f"error: reservation file {source} lacks column reservation_id, check_in, check_out,"
        " device_id or door_name; it has ['Report line 1', '(column 2)', '(column 3)',"
        " '(column 4)', '(column 5)', '(column 6)', '(column 7)'] (rename the file's headers"
        " with a [columns] table in the config, or set [input] header_row to the row that"
        " holds them)"
    ]
    code, plan, errors = plan_file(source, COLUMNS + "[input]\nheader_row = 26\n")
    assert (code, errors) == (0, [])
    assert windows(plan) == PLANNED
    assert plan["source_line"].to_list() == ["27", "28"]


def test_header_row_picks_the_row_when_two_name_the_columns(tmp_path, plan_file):
    """A sheet whose first row already names the columns (a legend over the export) reads
    from there by itself; ``header_row`` says which row it is instead."""
    legend = ["reservation_id", "site_name", "door_name", "check_in", "check_out"]
    rows = [
        legend,
        ["Confirmation", "Property", "Unit", "Arrival", "Departure"],
        ["B1", "Harbor View", "Room 101", dt.date(2027, 3, 25), dt.date(2027, 3, 28)],
    ]
    source = write_xlsx(tmp_path / "legend.xlsx", {"Sheet": rows})
    config = (
        '[columns]\nConfirmation = "reservation_id"\nProperty = "site_name"\nUnit = "door_name"\n'
        'Arrival = "check_in"\nDeparture = "check_out"\n'
        '[user_levels.sites]\n"Harbor View" = "Guest 3:30pm-10:30am"\n'
    )
    code, plan, _ = plan_file(source, config)
    assert code == 1  # the headers of row 2 are read as a booking, and rejected
    assert plan["reservation_id"].to_list() == ["Confirmation", "B1"]
    code, plan, _ = plan_file(source, config + "[input]\nheader_row = 2\n")
    assert code == 0
    assert windows(plan) == [("B1", "2027-03-25T15:30:00-07:00", "2027-03-28T10:30:00-07:00", None)]


def test_a_header_row_past_the_sheet_is_one_line(tmp_path, plan_file):
    """``header_row`` beyond the sheet's last row: exit 2 saying where the sheet ends."""
    source = write_xlsx(tmp_path / "short.xlsx", {"Sheet": REPORT[2:5]})
    code, _, errors = plan_file(source, COLUMNS + "[input]\nheader_row = 9\n")
    assert code == 2
    assert errors == [
        f"error: reservation file {source} has no row 9: its sheet ends at row 3"
        " (set [input] header_row to the row that holds the headers)"
    ]


def test_a_header_row_past_a_csv_file_is_one_line(tmp_path, plan_file):
    """``header_row`` beyond a CSV file's last line: exit 2 saying where the file ends, as for
    a sheet."""
    source = tmp_path / "short.csv"
    source.write_text(
        "reservation_id,door_name,check_in,check_out\nR1,Room 101,2027-03-25,2027-03-28\n"
    )
    code, _, errors = plan_file(source, "[input]\nheader_row = 5\n")
    assert code == 2
    assert errors == [
        f"error: reservation file {source} has no line 5: it ends at line 2 (set [input]"
        " header_row to the line that holds the headers)"
    ]


def test_a_csv_title_and_an_excel_separator_line_are_skipped(tmp_path, plan_file, read_warnings):
    """A CSV export with Excel's ``sep=;`` line, a title and a blank line above its headers is
    read from its header line, each row numbered as the file's line."""
    source = tmp_path / "arrivals.csv"
    source.write_text(
        "sep=;\n"
        "Arrivals Report - Harbor View\n"
        "\n"
        "reservation_id;site_name;door_name;check_in;check_out\n"
        "R1;Harbor View;Room 101;2027-03-25;2027-03-28\n"
        "R2;Harbor View;Room 102;2027-04-02;2027-04-05\n"
        "Total: 2;;;;\n"
    )
    code, plan, _ = plan_file(
        source, '[user_levels.sites]\n"Harbor View" = "Guest 3:30pm-10:30am"\n'
    )
    assert code == 0
    assert plan.select("reservation_id", "source_line").rows() == [("R1", "5"), ("R2", "6")]
    assert read_warnings == [
        f"{source}: 1 row after the data (line 7) holds no reservation (not two of an id, a door"
        " and both dates: a total, a note or a blank row): left out"
    ]


@pytest.mark.parametrize(
    ("last", "kept"),
    [
        ("Total,,,,,2 guests", False),  # an id and a guest: a total
        ("Printed:,,,2027-03-24 08:13,,", False),  # an id and one date: a footnote
        (",,Total rooms: 2,,,", False),  # a door, no id
        ("Total,,,3,4,", False),  # an id and two numbers in the date columns
        ("R3,Harbor View,Room 103,,,", True),  # an id and a door: a booking without dates
        ("R3,,,2027-03-27,2027-03-30,", True),  # an id and both dates: one without a door
        (",Harbor View,Room 103,2027-03-27,2027-03-30,", True),  # a booking without its id
    ],
)
def test_a_last_row_is_a_booking_with_two_of_an_id_a_door_and_both_dates(
    tmp_path, plan_file, read_warnings, last, kept
):
    """After the data, a row with two of an id, a door and both dates is a booking (planned or
    rejected, never lost); any other is left out with the info line."""
    source = tmp_path / "export.csv"
    source.write_text(
        "reservation_id,site_name,door_name,check_in,check_out,guest_name\n"
        "R1,Harbor View,Room 101,2027-03-25,2027-03-28,Ann\n"
        "R2,Harbor View,Room 102,2027-03-26,2027-03-29,Ben\n"
        f"{last}\n"
    )
    code, plan, _ = plan_file(
        source, '[user_levels.sites]\n"Harbor View" = "Guest 3:30pm-10:30am"\n'
    )
    if kept:
        assert code == 1
        assert plan.select("outcome", "reason").rows()[2] == ("rejected", "invalid_row")
        assert read_warnings == []
    else:
        assert code == 0
        assert plan["reservation_id"].to_list() == ["R1", "R2"]
        assert read_warnings == [
            f"{source}: 1 row after the data (line 4) holds no reservation (not two of an id,"
            " a door and both dates: a total, a note or a blank row): left out"
        ]


def test_rows_among_the_data_and_a_last_booking_with_bad_dates_are_rejected_not_dropped(
    tmp_path, plan_file, read_warnings
):
    """Only rows after the last booking that hold none are left out: a blank row and a row
    without dates among the data, and a last booking whose dates don't read, are rejected with
    their reason (a guest at a locked door must show in the results)."""
    source = tmp_path / "export.csv"
    source.write_text(
        "reservation_id,site_name,door_name,check_in,check_out\n"
        "R1,Harbor View,Room 101,2027-03-25,2027-03-28\n"
        ",,,,\n"
        "R2,Harbor View,Room 102,,\n"
        "R3,Harbor View,Room 103,soon,later\n"
        "Total,,,3,\n"
    )
    code, plan, _ = plan_file(
        source, '[user_levels.sites]\n"Harbor View" = "Guest 3:30pm-10:30am"\n'
    )
    assert code == 1
    assert plan.select("reservation_id", "outcome", "reason", "source_line").rows() == [
        ("R1", "planned", None, "2"),
        (None, "skipped", "blank_row", "3"),
        ("R2", "rejected", "invalid_row", "4"),
        ("R3", "rejected", "invalid_row", "5"),
    ]
    assert any(
        "1 row after the data (line 6) holds no reservation" in line for line in read_warnings
    )


def test_a_file_with_only_a_total_under_its_header_is_one_line(tmp_path, plan_file):
    """A night with no arrivals exported as the headers and "Total reservations: 0": exit 2,
    as for a file with a header and no rows, and no plan."""
    source = write_xlsx(
        tmp_path / "empty.xlsx", {"Arrivals": [*REPORT[:3], ["Total reservations: 0"]]}
    )
    code, plan, errors = plan_file(source, COLUMNS)
    assert (code, plan) == (2, None)
    assert errors == [f"error: reservation file {source} has a header but no reservations"]
