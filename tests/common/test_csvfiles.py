"""The one CSV writer: no live formula, every text cell quoted, Excel's UTF-8 mark on files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import pytest

from pipeline.catalog.doors import read_device_file
from pipeline.catalog.listing import list_door_levels
from pipeline.cli import main
from pipeline.commands import export_report
from pipeline.common.csvfiles import csv_text, write_csv
from tests.apply_helpers import start_sandbox
from tests.paths import SANDBOX_DEVICES


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://x","click")', '"\'=HYPERLINK(""http://x"",""click"")"'),
        ("+1+2", '"\'+1+2"'),
        ("-2+3+cmd|' /C calc'!A0", "\"'-2+3+cmd|' /C calc'!A0\""),
        ("@SUM(A1)", '"\'@SUM(A1)"'),
        ("\tTab", '"\'\tTab"'),
        ("\rReturn", '"\'\rReturn"'),
        ("Jürgen Müller", '"Jürgen Müller"'),
        ("a, b", '"a, b"'),
        ("2027-03-26T15:00:00-07:00", '"2027-03-26T15:00:00-07:00"'),
        ("Ana =1+1", '"Ana =1+1"'),
    ],
)
def test_a_text_cell_that_could_start_a_formula_gets_a_quote_in_front(value, written):
    """=, +, -, @, tab and CR at a text cell's start are neutralised with a single quote; every
    text cell is quoted; other text is left as it is."""
    text = csv_text(pl.DataFrame({"guest_name": [value]}))
    assert text == f'"guest_name"\n{written}\n'


def test_typed_numbers_dates_and_empty_cells_are_written_as_values():
    """A typed -3 is a number (it can't hold a formula) and stays unquoted; an empty cell stays
    empty, so it reads back as missing, not as an empty text."""
    frame = pl.DataFrame(
        {"rows": [-3, 4], "share": [-0.5, None], "guest_name": [None, "-3"], "ok": [True, None]}
    )
    text = csv_text(frame)
    assert text.splitlines() == [
        '"rows","share","guest_name","ok"',
        '-3,-0.5,,"true"',
        '4,,"\'-3",',
    ]
    back = pl.read_csv(io.StringIO(text))
    assert back["rows"].to_list() == [-3, 4]
    assert back["guest_name"].to_list() == [None, "'-3"]


def test_a_file_starts_with_excel_s_utf8_mark_and_reads_back():
    """Files start with the UTF-8 byte-order mark (Excel reads UTF-8 only so); Polars reads the
    header without it."""
    stream = io.BytesIO()
    write_csv(pl.DataFrame({"guest_name": ["Jürgen Müller"]}), stream)
    data = stream.getvalue()
    assert data.startswith(b'\xef\xbb\xbf"guest_name"')
    assert pl.read_csv(io.BytesIO(data)).to_dicts() == [{"guest_name": "Jürgen Müller"}]


# -- every writer: a hostile value from an export or from Seam never reaches a CSV as a formula

EVIL = '=HYPERLINK("http://evil.example/","click")'
WRITTEN = '"\'=HYPERLINK(""http://evil.example/"",""click"")"'
ROW = "Harbor View,Room 101,2027-03-12,2027-03-16,1"


def export_with(tmp_path: Path, reservation_id: str) -> Path:
    source = tmp_path / "export.csv"
    source.write_text(
        "reservation_id,site_name,door_name,check_in,check_out,user_level\n"
        f'"{reservation_id.replace(chr(34), chr(34) * 2)}",{ROW}\n',
        encoding="utf-8",
    )
    return source


def test_the_plan_csv_holds_no_formula(tmp_path):
    """plan --out x.csv: a reservation id that is a formula is written as text."""
    out = tmp_path / "plan.csv"
    source = export_with(tmp_path, EVIL)
    assert main(["plan", str(source), "--devices", str(SANDBOX_DEVICES), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8-sig")
    assert text.splitlines()[1].startswith(WRITTEN + ",")
    assert pl.read_csv(out)["reservation_id"].to_list() == [f"'{EVIL}"]


def test_the_doors_csv_holds_no_formula(tmp_path):
    """doors --format csv --out: a door named like a formula (Seam's data) is written as text,
    in the file and on standard output alike."""
    payload = json.loads(SANDBOX_DEVICES.read_text())
    payload["devices"][0]["properties"]["dormakaba_oracode_metadata"]["door_name"] = EVIL
    devices = tmp_path / "devices.json"
    devices.write_text(json.dumps(payload))
    out = tmp_path / "doors.csv"
    assert main(["doors", "--devices", str(devices), "--format", "csv", "--out", str(out)]) == 0
    assert f'"Harbor View",{WRITTEN},' in out.read_text(encoding="utf-8-sig")
    printed = csv_text(list_door_levels(read_device_file(devices)))
    assert f'"Harbor View",{WRITTEN},' in printed


@pytest.mark.virtual_time
@pytest.mark.anyio
async def test_the_results_and_report_csvs_hold_no_formula(tmp_path, monkeypatch):
    """apply's results CSV and report --format csv: a reservation id that is a formula, on a
    door that doesn't exist (so the report names it too), is text in every file."""
    run = start_sandbox(json.loads(SANDBOX_DEVICES.read_text()), tmp_path, monkeypatch)
    export = pl.DataFrame(
        {
            "reservation_id": [EVIL, "-2+3+cmd|' /C calc'!A0"],
            "site_name": ["Harbor View", "Harbor View"],
            "door_name": ["Room 101", "@Room 999"],
            "check_in": ["2027-03-12", "2027-03-12"],
            "check_out": ["2027-03-16", "2027-03-16"],
            "user_level": ["1", "1"],
        }
    )
    applied = await run.apply(export)
    results = applied.out.read_text(encoding="utf-8-sig")
    assert applied.out.suffix == ".csv"
    assert WRITTEN in results
    assert "\"'-2+3+cmd|' /C calc'!A0\"" in results
    assert '"\'@Room 999"' in results
    folder = tmp_path / "report"
    await export_report(ledger_path=run.ledger, fmt="csv", out=folder)
    people = (folder / "needs_a_person.csv").read_text(encoding="utf-8-sig")
    assert "\"'-2+3+cmd|' /C calc'!A0\"" in people
    assert '"\'@Room 999"' in (folder / "outcomes.csv").read_text(encoding="utf-8-sig")
