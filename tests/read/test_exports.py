"""Real-looking property-system exports: US and European CSV, UTF-16 text, .xlsx and .ods,
dates and times as they come, and [input.skip] exclusions."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
import xlsxwriter

from tests.paths import EXPORTS_PAGE
from tests.read.ods import write_ods

# The sample doors' "Guest 3:30pm-10:30am" level at Harbor View (America/Los_Angeles).
COLUMNS = """
[columns]
Confirmation = "reservation_id"
Property = "site_name"
Unit = "door_name"
Guest = "guest_name"
"""
# For files without a guest column: a [columns] key no header matches is a warning of its own.
NO_GUEST = COLUMNS.replace('Guest = "guest_name"\n', "")
US_HEADER = (
    "Confirmation,Property,Unit,check_in_date,check_in_time,check_out_date,check_out_time,Guest"
)


def windows(plan: pl.DataFrame) -> list[tuple[str | None, ...]]:
    return plan.select("reservation_id", "starts_at", "ends_at", "reason").rows()


def test_us_export_with_split_columns_and_am_pm(tmp_path, plan_file, read_warnings):
    """US dates with a day over 12 and AM/PM times in split columns plan the exact window,
    and the warning says which format was taken and why."""
    source = tmp_path / "us.csv"
    source.write_text(
        f"{US_HEADER}\n"
        "A1,Harbor View,Room 101,03/25/2027,3:30 PM,03/28/2027,10:30 AM,Ann Lee\n"
        "A2,Harbor View,Room 102,4/2/2027,03:30 pm,4/5/2027,10:30 am,Bo Chen\n"
    )
    code, plan, _ = plan_file(source, COLUMNS)
    assert code == 0
    assert windows(plan) == [
        ("A1", "2027-03-25T15:30:00-07:00", "2027-03-28T10:30:00-07:00", None),
        ("A2", "2027-04-02T15:30:00-07:00", "2027-04-05T10:30:00-07:00", None),
    ]
    assert read_warnings == [
        f"{source}: check_in_date read as %m/%d/%Y ('03/25/2027' on line 2 can't be %d/%m/%Y);"
        " set [input] date_format to say so",
        f"{source}: check_out_date read as %m/%d/%Y ('03/28/2027' on line 2 can't be %d/%m/%Y);"
        " set [input] date_format to say so",
    ]


def test_configured_formats_read_date_times_without_a_warning(tmp_path, plan_file, read_warnings):
    """[input] date_format and time_format read "03/04/2027 3:30 PM" as configured (no guess,
    no warning); a value in another shape rejects only its row, with the column named."""
    source = tmp_path / "us.csv"
    source.write_text(
        "Confirmation,Property,Unit,check_in,check_out,Guest\n"
        "A1,Harbor View,Room 101,03/04/2027 3:30 PM,03/06/2027 10:30 AM,Ann\n"
        "A2,Harbor View,Room 102,2027-03-04,13/06/2027 10:30 AM,Bo\n"
    )
    config = COLUMNS + '[input]\ndate_format = "%m/%d/%Y"\ntime_format = "%I:%M %p"\n'
    code, plan, _ = plan_file(source, config)
    assert code == 1
    assert windows(plan) == [
        ("A1", "2027-03-04T15:30:00-08:00", "2027-03-06T10:30:00-08:00", None),
        ("A2", None, None, "invalid_row"),
    ]
    assert plan["message"][1].startswith("check_out 13/06/2027 10:30 AM is not YYYY-MM-DD")
    assert read_warnings == [
        f"{source}: 1 check_out value(s) don't read as %m/%d/%Y %I:%M %p (e.g. '13/06/2027"
        " 10:30 AM' on line 3): their rows are rejected"
    ]


@pytest.mark.parametrize(
    ("check_in", "check_out", "shown"),
    [
        ("Mar 25, 2027", "Mar 28, 2027", "%b %d, %Y"),
        ("25 Mar 2027", "28 March 2027", None),
        ("25.03.2027", "28.03.2027", "%d.%m.%Y"),
    ],
)
def test_month_names_and_dotted_dates_are_read(
    tmp_path, plan_file, read_warnings, check_in, check_out, shown
):
    """Month names and day-first dotted dates settle their order by themselves."""
    source = tmp_path / "names.csv"
    source.write_text(
        "Confirmation;Property;Unit;check_in;check_out\n"
        f"A1;Harbor View;Room 101;{check_in};{check_out}\n"
    )
    code, plan, _ = plan_file(
        source, NO_GUEST + '[user_levels.sites]\n"Harbor View" = "Guest 3:30pm-10:30am"\n'
    )
    assert code == 0
    assert windows(plan) == [("A1", "2027-03-25T15:30:00-07:00", "2027-03-28T10:30:00-07:00", None)]
    if shown is not None:
        assert read_warnings[0].startswith(f"{source}: check_in read as {shown} (")
    assert len(read_warnings) == 2


def test_ambiguous_dates_stop_with_one_line(tmp_path, plan_file):
    """Dates that read as month-first and day-first alike stop the run (exit 2) with one line
    naming the column, an example and the setting."""
    source = tmp_path / "ambiguous.csv"
    source.write_text(
        "Confirmation,Property,Unit,check_in,check_out\n"
        "A1,Harbor View,Room 101,03/04/2027,03/06/2027\n"
        "A2,Harbor View,Room 102,04/05/2027,04/07/2027\n"
    )
    code, plan, errors = plan_file(source, NO_GUEST)
    assert code == 2
    assert plan is None
    assert errors == [
        f"error: reservation file {source}: check_in can be read as %m/%d/%Y or as %d/%m/%Y"
        " (e.g. '03/04/2027'), and no value settles which"
        ' (set [input] date_format, e.g. date_format = "%m/%d/%Y")'
    ]


def test_european_cp1252_export_with_umlauts(tmp_path, plan_file, read_warnings):
    """A ';' cp1252 export: umlaut headers match [columns], names reach the code intact, and a
    warning names the file and the encoding taken."""
    source = tmp_path / "buchungen.csv"
    source.write_bytes(
        "Buchungsnr;Objekt;Zimmer;Anreise;Abreise;Gästename\r\n"
        "B1;Harbor View;Room 101;25.03.2027;28.03.2027;Jürgen Müller\r\n".encode("cp1252")
    )
    config = (
        '[columns]\nBuchungsnr = "reservation_id"\nObjekt = "site_name"\nZimmer = "door_name"\n'
        'Anreise = "check_in"\nAbreise = "check_out"\n"GÄSTENAME" = "guest_name"\n'
        '[input]\ndate_format = "%d.%m.%Y"\n'
        '[user_levels.sites]\n"Harbor View" = "Guest 3:30pm-10:30am"\n'
    )
    code, plan, _ = plan_file(source, config)
    assert code == 0
    assert windows(plan) == [("B1", "2027-03-25T15:30:00-07:00", "2027-03-28T10:30:00-07:00", None)]
    assert plan["name"][0].startswith("B1 Jürgen Müller [opl-")
    assert read_warnings == [
        f"{source} is not UTF-8: read as cp1252 (Windows Western European); if names look"
        " wrong, set [input] encoding"
    ]


def test_utf16_unicode_text_export(tmp_path, plan_file, read_warnings):
    """Excel's "Unicode text" (UTF-16 with a BOM, tab-separated) reads like any CSV."""
    source = tmp_path / "export.txt"
    source.write_bytes(
        "reservation_id\tsite_name\tdoor_name\tcheck_in\tcheck_out\tguest_name\r\n"
        "U1\tHarbor View\tRoom 101\t2027-03-25T15:30\t2027-03-28T10:30\tZoë Ångström\r\n".encode(
            "utf-16"
        )
    )
    code, plan, _ = plan_file(source)
    assert code == 0
    assert windows(plan) == [("U1", "2027-03-25T15:30:00-07:00", "2027-03-28T10:30:00-07:00", None)]
    assert plan["name"][0].startswith("U1 Zoë Ångström [opl-")
    assert read_warnings == []


@pytest.mark.parametrize(("codec", "endian"), [("utf-16-le", "little"), ("utf-16-be", "big")])
def test_utf16_without_a_bom_is_read_with_a_warning(
    tmp_path, plan_file, read_warnings, codec, endian
):
    """UTF-16 without its byte-order mark: read as UTF-16 (its headers never carry NULs into a
    message), and one warning line says how to set it."""
    source = tmp_path / "export.csv"
    source.write_bytes(
        "reservation_id,site_name,door_name,check_in,check_out,guest_name\r\n"
        "U1,Harbor View,Room 101,2027-03-25T15:30,2027-03-28T10:30,Zoë Ångström\r\n".encode(codec)
    )
    code, plan, _ = plan_file(source)
    assert code == 0
    assert plan["name"][0].startswith("U1 Zoë Ångström [opl-")
    assert read_warnings == [
        f"{source} has no byte-order mark but is UTF-16 {endian}-endian (every other byte is"
        f' NUL): read as such; set [input] encoding = "{codec}" to say so'
    ]


def test_xlsx_with_typed_cells_and_a_chosen_sheet(tmp_path, plan_file, read_warnings):
    """An .xlsx written by Excel's rules: typed date and time cells, numeric ids, the sheet
    named in [input] sheet."""
    source = tmp_path / "export.xlsx"
    rows = pl.DataFrame(
        {
            "Confirmation": [1001, 1002],
            "Property": ["Harbor View"] * 2,
            "Unit": ["Room 101", "Room 102"],
            "check_in_date": [dt.date(2027, 3, 25), dt.date(2027, 4, 2)],
            "check_in_time": [dt.time(15, 30)] * 2,
            "check_out_date": [dt.date(2027, 3, 28), dt.date(2027, 4, 5)],
            "check_out_time": [dt.time(10, 30)] * 2,
        }
    )
    with xlsxwriter.Workbook(source) as workbook:
        pl.DataFrame({"note": ["not this one"]}).write_excel(workbook, worksheet="Notes")
        rows.write_excel(workbook, worksheet="Reservations")
    code, plan, _ = plan_file(source, NO_GUEST + '[input]\nsheet = "reservations"\n')
    assert code == 0
    assert windows(plan) == [
        ("1001", "2027-03-25T15:30:00-07:00", "2027-03-28T10:30:00-07:00", None),
        ("1002", "2027-04-02T15:30:00-07:00", "2027-04-05T10:30:00-07:00", None),
    ]
    assert plan["source_line"].to_list() == ["2", "3"]
    assert read_warnings == []


def test_an_unknown_sheet_names_the_sheets(tmp_path, plan_file):
    """[input] sheet that the workbook lacks: exit 2, naming the sheets it has."""
    source = tmp_path / "export.xlsx"
    pl.DataFrame({"a": [1]}).write_excel(source, worksheet="Bookings")
    code, _, errors = plan_file(source, '[input]\nsheet = "Reservations"\n')
    assert code == 2
    assert errors == [
        f"error: reservation file {source} has no sheet 'Reservations'; its sheets: Bookings"
        " (set [input] sheet to one of them)"
    ]


def test_ods_with_typed_date_cells(tmp_path, plan_file, read_warnings):
    """An .ods from LibreOffice: date, date-time and time cells, the first sheet by default."""
    source = write_ods(
        tmp_path / "export.ods",
        {
            "Reservations": [
                ["Confirmation", "Property", "Unit", "check_in", "check_out", "Guest"],
                [
                    "O1",
                    "Harbor View",
                    "Room 101",
                    dt.datetime(2027, 3, 25, 15, 30),
                    dt.datetime(2027, 3, 28, 10, 30),
                    "Jürgen",
                ],
                ["O2", "Harbor View", "Room 102", dt.date(2027, 4, 2), dt.date(2027, 4, 5), None],
            ],
            "Other": [["x"], ["y"]],
        },
    )
    config = COLUMNS + '[user_levels.sites]\n"Harbor View" = "Guest 3:30pm-10:30am"\n'
    code, plan, _ = plan_file(source, config)
    assert code == 0
    assert windows(plan) == [
        ("O1", "2027-03-25T15:30:00-07:00", "2027-03-28T10:30:00-07:00", None),
        ("O2", "2027-04-02T15:30:00-07:00", "2027-04-05T10:30:00-07:00", None),
    ]
    assert read_warnings == []


def test_cancelled_rows_are_skipped_as_excluded(tmp_path, plan_file, read_warnings):
    """[input.skip] values (any case, trimmed) skip their rows as `excluded`, first of all
    reasons and never as a duplicate; a key matching no header is a warning line."""
    source = tmp_path / "us.csv"
    source.write_text(
        "Confirmation,Property,Unit,check_in,check_out,Status\n"
        "A1,Harbor View,Room 101,2027-03-25,2027-03-28,Confirmed\n"
        "A2,Harbor View,Room 102,2027-03-25,2027-03-28, cancelled \n"
        "A2,Harbor View,Room 103,2027-04-02,2027-04-05,Confirmed\n"
        "A3,Harbor View,Room 104,not a date,2027-03-28,NO-SHOW\n"
    )
    config = (
        NO_GUEST + '[user_levels.sites]\n"Harbor View" = "Guest 3:30pm-10:30am"\n'
        '[input.skip]\nstatus = ["Cancelled", "No-show"]\n"Booking State" = ["Void"]\n'
    )
    code, plan, _ = plan_file(source, config)
    assert code == 0
    assert plan.select("reservation_id", "outcome", "reason", "message").rows() == [
        ("A1", "planned", None, None),
        ("A2", "skipped", "excluded", "Status is cancelled ([input.skip])"),
        ("A2", "planned", None, None),
        ("A3", "skipped", "excluded", "Status is NO-SHOW ([input.skip])"),
    ]
    assert read_warnings == [
        f"{source}: [input.skip] column 'Booking State' matches no header (its headers:"
        " Confirmation, Property, Unit, check_in, check_out, Status); no row is excluded by it"
    ]


def test_a_columns_key_no_header_matches_is_said_once_with_a_suggestion(
    tmp_path, plan_file, read_warnings
):
    """A [columns] key that matches no header (a typo) is one warning line naming the file, the
    closest header and every header, not a silently missing column."""
    source = tmp_path / "typo.csv"
    source.write_text(
        "Confirmation,Property,Unit,check_in,check_out,Guest Name\n"
        "A1,Harbor View,Room 101,2027-03-04,2027-03-06,Ann\n"
    )
    config = COLUMNS.replace("Guest =", '"Guest Nam" =')
    config += '[user_levels.sites]\n"Harbor View" = "Guest 3:30pm-10:30am"\n'
    code, plan, _ = plan_file(source, config)
    assert code == 0
    assert "Ann" not in plan["name"][0]  # the guest column was not read
    assert read_warnings == [
        f"[columns] 'Guest Nam' matches no header of {source}; did you mean \"Guest Name\"?"
        " (its headers: Confirmation, Property, Unit, check_in, check_out, Guest Name;"
        " guest_name is read from a header of that name, if any)"
    ]


def pms_example() -> tuple[str, str]:
    """The export and the config of the guide's "Exports from your PMS", as written there."""
    section = EXPORTS_PAGE.read_text().split("## Exports from your PMS", 1)[1]
    blocks = section.split("```")
    export = next(block for block in blocks[1::2] if block.startswith("text\nBuchung;"))
    config = next(block for block in blocks[1::2] if block.startswith("toml\n"))
    return export.removeprefix("text\n"), config.removeprefix("toml\n")


def test_the_guides_pms_example_plans_as_it_says(tmp_path, plan_file):
    """The guide's worked PMS example, as a cp1252 file: the live booking is planned on the
    aliased door with each end's own offset and the guest's umlauts intact; the cancelled one is
    excluded."""
    export, config = pms_example()
    source = tmp_path / "reservations.csv"
    source.write_bytes(export.encode("cp1252"))
    code, plan, _ = plan_file(source, config)
    assert code == 0
    rows = {row["reservation_id"]: row for row in plan.iter_rows(named=True)}
    assert (rows["B-1001"]["door_name"], rows["B-1001"]["user_level_name"]) == (
        "Zimmer 3",
        "Gast 15-11 Uhr",
    )
    assert (rows["B-1001"]["starts_at"], rows["B-1001"]["ends_at"]) == (
        "2027-03-25T15:00:00+01:00",
        "2027-03-28T11:00:00+02:00",
    )
    assert rows["B-1001"]["name"].startswith("B-1001 Jürgen Müller [opl-")
    assert (rows["B-1002"]["outcome"], rows["B-1002"]["reason"]) == ("skipped", "excluded")
