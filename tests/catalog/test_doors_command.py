"""``oracode-provision doors``: every door with its site, zone, device_id and user levels."""

from __future__ import annotations

import io
import json
from typing import Any

import anyio
from rich.console import Console

from pipeline import commands
from pipeline.cli import main
from pipeline.cli.output import print_doors
from tests.paths import SANDBOX_DEVICES

DEVICES = ["doors", "--devices", str(SANDBOX_DEVICES)]
HAUPTEINGANG_ID = "5a8950cc-5c88-56a3-b8a7-1cb17456c161"
HAUPTEINGANG = f'"Alpenhof","Haupteingang","{HAUPTEINGANG_ID}","Europe/Berlin","false"'
# Text cells quoted, numbers (the prefix) and empty cells as they are
# (``pipeline.common.csvfiles``).
CSV_HEAD = [
    '"site_name","door_name","device_id","zone","can_program_offline",'
    '"user_level","prefix","check_in","check_out","flags"',
    f'{HAUPTEINGANG},"Gast 15-11 Uhr",1,"15:00","11:00",',
    f'{HAUPTEINGANG},"Tagesgast 24h",3,"12:00","12:00","24h"',
    f'{HAUPTEINGANG},"Zwei Wochen",4,"15:00","11:00","biweekly"',
    f'{HAUPTEINGANG},"Reinigung einmalig",8,"09:00","12:00","one-shot"',
]


def level(name: str, prefix: int, check_in: str, check_out: str, *flags: str) -> dict[str, Any]:
    """A user level as the JSON lists it."""
    return {
        "user_level": name,
        "prefix": prefix,
        "check_in": check_in,
        "check_out": check_out,
        "flags": list(flags),
    }


def test_csv_lists_each_door_and_level_on_a_line(capsys):
    """--format csv prints one line per door and user level, sorted by site and door."""
    assert main([*DEVICES, "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:5] == CSV_HEAD
    assert len(lines) == 1 + 59
    assert (
        '"Harbor View","Room 101","2d02807a-3db5-53f8-b233-df6e7c9a4048","America/Los_Angeles",'
        '"true","Owner Master",9,"00:00","00:00","master"'
    ) in lines


def test_json_lists_each_door_with_its_levels(capsys):
    """--format json prints the doors, each with its user levels and their flags as a list."""
    assert main([*DEVICES, "--format", "json"]) == 0
    doors = json.loads(capsys.readouterr().out)
    assert len(doors) == 13
    assert doors[11] == {
        "site_name": "Lakeside Lodge",
        "door_name": "Room 101",
        "device_id": "9c276189-cef4-5ad0-8507-1f18214bd00f",
        "zone": "America/New_York",
        "can_program_offline": True,
        "user_levels": [
            level("Guest 4pm-11am", 1, "16:00", "11:00"),
            level("Late Guest 6pm-12pm", 2, "18:00", "12:00"),
            level("Weekly 24h", 3, "14:00", "14:00", "24h"),
            level("Manager Master", 9, "00:00", "00:00", "master"),
        ],
    }


def test_table_shows_a_door_per_row_with_its_levels():
    """The table has a row per door, its levels a line each with prefix, times and flags."""
    listing = anyio.run(lambda: commands.list_doors(devices=SANDBOX_DEVICES)).listing
    stream = io.StringIO()
    print_doors(listing, "table", Console(file=stream, width=150, highlight=False))
    lines = stream.getvalue().splitlines()
    assert lines[0].strip() == "13 dormakaba Oracode doors"
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines[4:8]]
    assert cells == [
        [
            "Alpenhof",
            "Haupteingang",
            HAUPTEINGANG_ID,
            "Europe/Berlin",
            "no",
            "1 Gast 15-11 Uhr 15:00→11:00",
        ],
        ["", "", "", "", "", "3 Tagesgast 24h 12:00→12:00 (24h)"],
        ["", "", "", "", "", "4 Zwei Wochen 15:00→11:00 (biweekly)"],
        ["", "", "", "", "", "8 Reinigung einmalig 09:00→12:00 (one-shot)"],
    ]


def test_out_writes_the_file_and_says_so(tmp_path, capsys):
    """--out writes the csv to the file (the same text as printed, after Excel's UTF-8 mark)
    and one line saying where."""
    out = tmp_path / "doors.csv"
    assert main([*DEVICES, "--format", "csv", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote 13 doors to {out}\n"
    assert out.read_text(encoding="utf-8").startswith("\ufeff")
    assert out.read_text(encoding="utf-8-sig").splitlines()[:5] == CSV_HEAD


def test_out_needs_a_file_format(tmp_path, capsys):
    """--out with the table format is exit 2 and one line, before the doors are read."""
    assert main([*DEVICES, "--out", str(tmp_path / "doors.txt")]) == 2
    assert capsys.readouterr().err == "error: --out needs --format csv or json\n"
