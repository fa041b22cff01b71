"""[sources.NAME]: one night's files from several property systems, each read its own way,
with no warning about another system's settings; the guide's two-system example as written."""

from __future__ import annotations

import shlex

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.common.errors import ConfigError
from pipeline.common.settings import load_config
from tests.paths import EXPORTS_PAGE, ROOT
from tests.read.test_exports import pms_example

# The rooms from a German PMS (cp1252, ';', day-first dates, split times, "storniert"), the
# cabins from a channel manager (UTF-8, ',', US dates, "Cancelled").
PMS = (
    "Buchung;Objekt;Einheit;Anreise;Ankunftszeit;Abreise;Abfahrtszeit;Gast;Status\r\n"
    "P-1;Harbor View;Room 101;25.03.2027;15:30;28.03.2027;10:30;Jürgen Müller;bestätigt\r\n"
    "P-2;Harbor View;Room 102;02.04.2027;15:30;05.04.2027;10:30;Zoë Weiß;storniert\r\n"
)
CHANNEL = (
    "Booking ID,Cabin,Arrive,Leave,Guest name,State\n"
    "C-1,Cabin 1,03/26/2027,03/29/2027,Ann Lee,Confirmed\n"
    "C-2,Cabin 2,03/27/2027,03/30/2027,Bo Chen,Cancelled\n"
)
SOURCES = """
[sources.pms]
files = "PMS-*.csv"
encoding = "cp1252"
date_format = "%d.%m.%Y"
[sources.pms.columns]
Buchung = "reservation_id"
Objekt = "site_name"
Einheit = "door_name"
Anreise = "check_in_date"
Ankunftszeit = "check_in_time"
Abreise = "check_out_date"
Abfahrtszeit = "check_out_time"
Gast = "guest_name"
[sources.pms.skip]
Status = ["storniert"]

[sources.channel]
files = "channel-*"
date_format = "%m/%d/%Y"
[sources.channel.columns]
"Booking ID" = "reservation_id"
Cabin = "door_name"
Arrive = "check_in"
Leave = "check_out"
"Guest name" = "guest_name"
[sources.channel.skip]
State = ["cancelled"]

[user_levels.sites]
"Lakeside Lodge" = "Guest 4pm-11am"
"""


def write_exports(folder):
    pms = folder / "pms-2027-03-24.csv"
    pms.write_bytes(PMS.encode("cp1252"))
    channel = folder / "channel-2027-03-24.csv"
    channel.write_text(CHANNEL, encoding="utf-8")
    return pms, channel


def test_each_file_is_read_with_its_own_sources_settings(tmp_path, plan_file, read_warnings):
    """Each file is read with its source's encoding, formats, headers and skip values (the
    glob matches case aside), and no line warns about the other source's headers."""
    pms, channel = write_exports(tmp_path)
    code, plan, errors = plan_file([pms, channel], SOURCES)
    assert (code, errors) == (0, [])
    assert plan.select("reservation_id", "outcome", "starts_at", "ends_at", "message").rows() == [
        ("P-1", "planned", "2027-03-25T15:30:00-07:00", "2027-03-28T10:30:00-07:00", None),
        ("P-2", "skipped", None, None, "Status is storniert ([sources.pms.skip])"),
        ("C-1", "planned", "2027-03-26T16:00:00-04:00", "2027-03-29T11:00:00-04:00", None),
        ("C-2", "skipped", None, None, "State is Cancelled ([sources.channel.skip])"),
    ]
    assert plan["name"][0].startswith("P-1 Jürgen Müller [opl-")
    assert read_warnings == []


def test_a_file_no_source_matches_and_a_source_with_no_file_are_said_once(
    tmp_path, plan_file, read_warnings
):
    """A file no source's glob matches is read with the top-level settings, said in one line;
    a source that matches none of the files is said in one line too (its bookings would be
    counted as gone)."""
    source = tmp_path / "extra.csv"
    source.write_text(
        "reservation_id,site_name,door_name,check_in,check_out\n"
        "X1,Lakeside Lodge,Room 101,2027-03-25,2027-03-28\n"
    )
    code, plan, _ = plan_file(source, SOURCES)
    assert code == 0
    assert plan["reservation_id"].to_list() == ["X1"]
    assert read_warnings == [
        f"{source} matches no [sources.*] files pattern (pms: 'PMS-*.csv', channel:"
        " 'channel-*'): read with the top-level [input] and [columns]",
        "[sources.pms] (files = 'PMS-*.csv') matches none of the files given: its bookings are"
        " absent from this run (apply refuses to run without them); give its export with the"
        " others",
        "[sources.channel] (files = 'channel-*') matches none of the files given: its bookings"
        " are absent from this run (apply refuses to run without them); give its export with"
        " the others",
    ]


def test_a_file_two_sources_match_is_said_once_naming_both(tmp_path, plan_file, read_warnings):
    """A file both sources' globs match is read with the first, in one line naming both and
    the first; the second source, whose glob matched a file, is not said to match none."""
    pms, _ = write_exports(tmp_path)
    config = SOURCES.replace('files = "channel-*"', 'files = "*.csv"')
    code, plan, _ = plan_file(pms, config)
    assert code == 0
    assert plan["reservation_id"].to_list() == ["P-1", "P-2"]
    assert read_warnings == [
        f"{pms} matches the files pattern of [sources.pms] (files = 'PMS-*.csv') and"
        " [sources.channel] (files = '*.csv'): read with [sources.pms], the first in the"
        " config; make the patterns tell the systems' files apart"
    ]


def test_a_file_that_does_not_exist_is_said_before_any_source(tmp_path, plan_file, read_warnings):
    """A glob the shell didn't expand (no such file): exit 2 saying so, and no line about the
    sources it would have matched."""
    missing = tmp_path / "pms-*.csv"
    code, _, errors = plan_file(missing, SOURCES)
    assert code == 2
    assert errors == [
        f"error: reservation file {missing} does not exist"
        " (check the path, and that tonight's export was written)"
    ]
    assert read_warnings == []


def test_a_sources_own_checks_name_the_source(tmp_path, plan_file, read_warnings):
    """A source's [columns] key its file lacks is said of that file only, naming the source's
    table; a missing column's hint names the source's tables too."""
    pms, channel = write_exports(tmp_path)
    config = SOURCES.replace('Cabin = "door_name"', 'Cabn = "door_name"')
    code, _, errors = plan_file([pms, channel], config)
    assert code == 2
    assert read_warnings == [
        f"[sources.channel.columns] 'Cabn' matches no header of {channel}; did you mean"
        ' "Cabin"? (its headers: Booking ID, Cabin, Arrive, Leave, Guest name, State; door_name'
        " is read from a header of that name, if any)"
    ]
    assert errors == [
        f"error: reservation file {channel} lacks column device_id or door_name; it has"
        " ['Booking ID', 'Cabin', 'Arrive', 'Leave', 'Guest name', 'State'] (rename the file's"
        " headers with a [sources.channel.columns] table in the config)"
    ]


COLUMN_NAMES = (
    "['reservation_id', 'device_id', 'door_name', 'site_name', 'check_in', 'check_out',"
    " 'guest_name', 'user_level', 'check_in_date', 'check_in_time', 'check_out_date',"
    " 'check_out_time']"
)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[sources.pms]\nfiles = "pms-*.csv"\nencodng = "cp1252"\n',
            "unknown key encodng in [sources.pms] (known: encoding, date_format, time_format,"
            " sheet, header_row, skip, files, columns) (did you mean encoding?)",
        ),
        (
            '[sources.pms]\nfiles = "exports/pms-*.csv"\n',
            "[sources.pms] files 'exports/pms-*.csv' names a folder: the pattern is matched"
            " against the file's name only (e.g. pms-*.xlsx)",
        ),
        (
            '[sources.pms]\nencoding = "cp1252"\n',
            "[sources.pms] has no files (give the glob of its files' names, e.g. [sources.pms]"
            ' with files = "pms-*.csv")',
        ),
        (
            '[sources]\nfiles = "pms-*.csv"\n',
            "[sources] files = 'pms-*.csv' is not a source's table (write each source as a"
            " [sources.NAME] table with its files glob, e.g. [sources.pms] with files ="
            ' "pms-*.csv")',
        ),
        (
            '[sources.pms]\nfiles = "pms-*"\n[sources.pms.columns]\nBuchung = "booking"\n',
            "[sources.pms.columns] 'Buchung' maps to 'booking', which is not one of"
            f" {COLUMN_NAMES}",
        ),
        (
            '[sources.pms]\nfiles = "pms-*"\ndate_format = "%d.%m.%Y %H:%M"\n',
            "[sources.pms] date_format '%d.%m.%Y %H:%M' holds %H, which belongs in time_format"
            " (date and time combine as date_format, a space, time_format)",
        ),
        ("[input]\nheader_row = 0\n", "[input] header_row = 0 must be 1 or more"),
        (
            '[sources.pms]\nfiles = "pms-*"\nencoding = "klingon"\n',
            "[sources.pms] encoding 'klingon' is not a known text encoding (use e.g. utf-8,"
            " cp1252, utf-16 or latin-1, or remove it to detect)",
        ),
        (
            '[input]\nencoding = "base64"\n',
            "[input] encoding 'base64' is not a known text encoding (use e.g. utf-8, cp1252,"
            " utf-16 or latin-1, or remove it to detect)",
        ),
        (
            '[input]\ndate_format = "%d.%m.%Q"\n',
            "[input] date_format '%d.%m.%Q' holds %Q, which is no strftime directive (e.g."
            " %d.%m.%Y, %H:%M)",
        ),
        ("[sources.pms]\nfiles = 3\n", "[sources.pms] files = 3: input should be a valid string"),
    ],
)
def test_a_source_that_cant_be_right_is_refused_at_start(tmp_path, toml, message):
    """A source's typo, a folder in its glob, no glob, a source that isn't a table, a column
    that isn't the pipeline's, a time in its date format, a header row of 0, an encoding
    Python can't decode text with, a directive no format has, a glob that isn't text: exit 2
    at start, whatever the files, one line naming the table and the key."""
    path = tmp_path / "pipeline.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert refused.value.exit_code == 2
    assert refused.value.one_line() == f"config file {path}: {message}"


def two_systems_example() -> tuple[str, str, list[str]]:
    """The channel export, the config and the plan command of the guide's "Several systems
    in one night", as written there."""
    section = EXPORTS_PAGE.read_text().split("### Several systems in one night", 1)[1]
    blocks = section.split("\n## ", 1)[0].split("```")[1::2]
    export = next(block for block in blocks if block.startswith("text\nBooking ID,"))
    config = next(block for block in blocks if block.startswith("toml\n"))
    command = next(block for block in blocks if block.startswith("sh\n"))
    words = shlex.split(command.removeprefix("sh\n"))
    return export.removeprefix("text\n"), config.removeprefix("toml\n"), words


def test_the_guides_two_systems_example_plans_as_it_says(tmp_path, monkeypatch, read_warnings):
    """The guide's PMS and channel-manager exports with its hotel.toml, planned by its command
    as written: each booking on its door with its window and name, both cancellations
    excluded by their own source's values, and no warning about either system's settings."""
    pms_export, _ = pms_example()
    channel_export, config, words = two_systems_example()
    (tmp_path / "inputs").symlink_to(ROOT / "inputs")
    (tmp_path / "pms-2027-03-24.csv").write_bytes(pms_export.encode("cp1252"))
    (tmp_path / "channel-2027-03-24.csv").write_text(channel_export, encoding="utf-8")
    (tmp_path / "hotel.toml").write_text(config, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert words[0] == "oracode-provision"
    assert main(words[1:]) == 0
    (written,) = (tmp_path / "outputs").glob("plan-*.parquet")
    plan = pl.read_parquet(written)
    rows = {row["reservation_id"]: row for row in plan.iter_rows(named=True)}
    assert (rows["B-1001"]["door_name"], rows["B-1001"]["outcome"]) == ("Zimmer 3", "planned")
    assert (rows["CM-551"]["door_name"], rows["CM-551"]["user_level_name"]) == (
        "Zimmer 1",
        "Gast 15-11 Uhr",
    )
    assert (rows["CM-551"]["starts_at"], rows["CM-551"]["ends_at"]) == (
        "2027-03-26T15:00:00+01:00",
        "2027-03-29T11:00:00+02:00",
    )
    assert rows["CM-551"]["name"].startswith("CM-551 Zoë Martin [opl-")
    assert (rows["B-1002"]["outcome"], rows["CM-552"]["outcome"]) == ("skipped", "skipped")
    assert rows["CM-552"]["message"] == "Status is cancelled ([sources.channel.skip])"
    assert read_warnings == []
