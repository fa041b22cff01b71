"""Hostile reservation files: each gives exit 2 with one clear line, or row-level rejections."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.common.settings import Config
from pipeline.read.files import read_reservations
from tests.paths import ROOT, SANDBOX_DEVICES

HEADER = "reservation_id,site_name,door_name,check_in,check_out,user_level"
GOOD = "R1,Harbor View,Room 101,2027-03-12,2027-03-16,1"


def run_plan(tmp_path: Path, name: str, content: bytes, *extra: str) -> tuple[int, Path]:
    source = tmp_path / name
    source.write_bytes(content)
    out = tmp_path / "plan.csv"
    code = main(["plan", str(source), "--devices", str(SANDBOX_DEVICES), "--out", str(out), *extra])
    return code, out


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "is empty"),
        ("blank.csv", b"\n\n  \n", "is empty"),
        ("bomonly.csv", b"\xef\xbb\xbf\r\n", "is empty"),
        ("header.csv", HEADER.encode() + b"\n", "has a header but no rows"),
        (
            "nocheckout.csv",
            b"reservation_id,door_name,check_in\nR1,Room 101,2027-03-12\n",
            "lacks column check_out",
        ),
        (
            "nodoor.csv",
            b"reservation_id,check_in,check_out\nR1,2027-03-12,2027-03-16\n",
            "device_id or door_name",
        ),
        ("reservations.xlsx", b"PK\x03\x04", "is not a readable workbook"),
        ("reservations.docx", b"PK\x03\x04", "has extension '.docx'"),
        (
            "quote.csv",
            (HEADER + '\n"R1,Harbor View,Room 101,2027-03-12,2027-03-16,1\n').encode(),
            "can't be parsed",
        ),
        ("ragged.csv", (HEADER + "\n" + GOOD + ",extra,fields\n").encode(), "can't be parsed"),
    ],
)
def test_unusable_file_exits_2_with_one_line(tmp_path, capsys, name, content, message):
    """A file that can't be used stops the command with exit 2 and a line saying why."""
    code, out = run_plan(tmp_path, name, content)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err
    assert err.startswith("error: ")
    assert "\n" not in err
    assert not out.exists()


def test_missing_file_exits_2(tmp_path, capsys):
    """A path that doesn't exist is named in the error, with what to check."""
    missing = tmp_path / "nope.csv"
    code = main(["plan", str(missing), "--devices", str(SANDBOX_DEVICES)])
    assert code == 2
    assert capsys.readouterr().err == (
        f"error: reservation file {missing} does not exist"
        " (check the path, and that tonight's export was written)\n"
    )


def test_an_empty_file_is_said_with_what_to_do(tmp_path, capsys):
    """A file of 0 bytes: exit 2, one line saying it is empty and to export it again."""
    code, _ = run_plan(tmp_path, "tonight.csv", b"")
    assert code == 2
    assert capsys.readouterr().err == (
        f"error: reservation file {tmp_path / 'tonight.csv'} is empty"
        " (export it again from the property system: it wrote nothing)\n"
    )


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bom.csv", b"\xef\xbb\xbf" + f"{HEADER}\n{GOOD}\n".encode()),
        ("crlf.csv", f"{HEADER}\r\n{GOOD}\r\n".encode()),
        ("semicolon.csv", f"{HEADER}\n{GOOD}\n".replace(",", ";").encode()),
        ("tabs.tsv", f"{HEADER}\n{GOOD}\n".replace(",", "\t").encode()),
        (
            "spaces.csv",
            (
                " Reservation_ID , SITE_NAME ,door_name,check_in,check_out,user_level\n" + GOOD
            ).encode(),
        ),
    ],
)
def test_dialects_are_read(tmp_path, name, content):
    """BOM, CRLF, ';' or tab delimiters and untidy headers still give a planned row."""
    code, out = run_plan(tmp_path, name, content)
    plan = pl.read_csv(out)
    assert code == 0
    assert plan["outcome"].to_list() == ["planned"]


def test_non_utf8_bytes_become_a_row_rejection(tmp_path):
    """Bytes that aren't UTF-8 are replaced, and the row they break is rejected, not the file."""
    content = f"{HEADER}\n{GOOD}\nR2,Harbor View,Room 1\xff1,2027-03-12,2027-03-16,1\n".encode(
        "latin-1"
    )
    code, out = run_plan(tmp_path, "latin1.csv", content)
    plan = pl.read_csv(out)
    assert code == 1
    assert plan["reason"].to_list() == [None, "unknown_device"]


def test_a_10_mb_line_is_a_row_rejection(tmp_path):
    """A 10 MB field is rejected on its row with the column named; other rows are planned."""
    huge = "x" * 10_000_000
    content = f"{HEADER},guest_name\n{GOOD},{huge}\n{GOOD.replace('R1', 'R2')},Ann\n".encode()
    code, out = run_plan(tmp_path, "huge.csv", content)
    plan = pl.read_csv(out)
    assert code == 1
    assert plan["reason"].to_list() == ["invalid_row", None]
    assert plan["message"][0].startswith("guest_name is 10000000 characters long")


def test_config_renames_headers(tmp_path):
    """A [columns] table maps the property system's headers to the pipeline's."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[columns]\n"Ref" = "reservation_id"\n"Door" = "door_name"\n"In" = "check_in"\n'
        '"Out" = "check_out"\n"Site" = "site_name"\n'
    )
    content = b"Ref,Site,Door,In,Out\nR1,Harbor View,Room 102,2027-03-12T15:30,2027-03-16T10:30\n"
    code, out = run_plan(tmp_path, "pms.csv", content, "--config", str(config))
    assert code == 0
    assert pl.read_csv(out)["user_level_name"].to_list() == ["Guest 3:30pm-10:30am"]


def test_parquet_with_typed_columns(tmp_path):
    """Parquet dates and datetimes are read as the same values a CSV would carry."""
    import datetime as dt

    source = tmp_path / "r.parquet"
    pl.DataFrame(
        {
            "reservation_id": ["R1", "R2"],
            "site_name": ["Harbor View"] * 2,
            "door_name": ["Room 101", "Room 102"],
            "check_in": [dt.datetime(2027, 3, 12, 15, 30), dt.datetime(2027, 3, 12, 15, 30)],
            "check_out": [dt.datetime(2027, 3, 16, 10, 30), dt.datetime(2027, 3, 16, 10, 30)],
        }
    ).write_parquet(source)
    out = tmp_path / "plan.jsonl"
    code = main(["plan", str(source), "--devices", str(SANDBOX_DEVICES), "--out", str(out)])
    assert code == 0
    assert pl.read_ndjson(out)["starts_at"].to_list() == ["2027-03-12T15:30:00-08:00"] * 2


def test_output_file_is_owner_only(tmp_path):
    """Result files are created readable by their owner only."""
    code, out = run_plan(tmp_path, "ok.csv", f"{HEADER}\n{GOOD}\n".encode())
    assert code == 0
    assert out.stat().st_mode & 0o777 == 0o600


def test_several_files_and_line_numbers(tmp_path):
    """Rows from several files are planned together and point back at file and line."""
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(f"{HEADER}\n{GOOD}\n")
    second.write_text(
        f"{HEADER}\n{GOOD.replace('R1', 'R2')}\n,Harbor View,Room 101,2027-03-12,2027-03-16,1\n"
    )
    out = tmp_path / "plan.csv"
    code = main(
        ["plan", str(first), str(second), "--devices", str(SANDBOX_DEVICES), "--out", str(out)]
    )
    plan = pl.read_csv(out)
    assert code == 1
    assert plan.select("source_file", "source_line").rows() == [
        (str(first), 2),
        (str(second), 2),
        (str(second), 3),
    ]


@pytest.mark.slow
def test_module_entry_point_prints_no_traceback(tmp_path):
    """`python -m pipeline` on a broken file: one line on stderr, exit 2, no traceback."""
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "plan", str(bad), "--devices", str(SANDBOX_DEVICES)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_short_rows_are_rejected_on_their_own(tmp_path):
    """A line with fewer fields than the header reads as empty values: a row-level rejection."""
    code, out = run_plan(
        tmp_path, "short.csv", f"{HEADER}\n{GOOD}\nR2,Harbor View,Room 101,2027-03-12\n".encode()
    )
    plan = pl.read_csv(out)
    assert code == 1
    assert plan["message"].to_list()[1] == "check_out is empty"


def test_config_column_names_match_any_case(tmp_path):
    """[columns] keys match the file's headers whatever their case and spacing."""
    config = tmp_path / "c.toml"
    config.write_text('[columns]\n"Booking Ref" = "reservation_id"\n')
    content = f"BOOKING  REF,site_name,door_name,check_in,check_out,user_level\n{GOOD}\n".encode()
    code, out = run_plan(tmp_path, "pms.csv", content, "--config", str(config))
    assert code == 0
    assert pl.read_csv(out)["reservation_id"].to_list() == ["R1"]


def test_control_characters_in_a_guest_name_never_reach_a_code_name(tmp_path):
    """A NUL, a line break and a tab in a guest's name each become a space, folded: the code
    name is ``R1 Ana Ruiz Jr [tag]``, and the guest's name read is ``Ana Ruiz Jr``."""
    content = (
        b"reservation_id,site_name,door_name,check_in,check_out,user_level,guest_name\n"
        b'R1,Harbor View,Room 101,2027-03-12,2027-03-16,1,"Ana\x00Ruiz\r\n\tJr\x07"\n'
    )
    source = tmp_path / "names.csv"
    source.write_bytes(content)
    read = read_reservations([source], Config())
    assert read["guest_name"].to_list() == ["Ana Ruiz Jr"]
    code, out = run_plan(tmp_path, "names.csv", content)
    planned = pl.read_csv(out)
    assert code == 0
    tag = planned["idempotency_tag"][0]
    assert planned["name"].to_list() == [f"R1 Ana Ruiz Jr [{tag}]"]


@pytest.mark.parametrize("made", ["folder", "empty"])
def test_plan_checks_its_files_before_it_asks_seam(tmp_path, capsys, made):
    """A folder or a 0-byte file given to plan is said before Seam is asked: here there is no
    API key, and the line is the file's, not the key's."""
    path = tmp_path / "tonight.csv"
    if made == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"")
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: reservation file {path} is ")
    assert "API key" not in err


def test_a_row_left_out_on_a_name_that_is_no_door_is_no_door_in_the_plan_table(tmp_path, capsys):
    """A cancelled row ([input.skip]) on a room name no door has: the per-door table lists the
    real door only, not a door of the cancelled row's own."""
    config = tmp_path / "pipeline.toml"
    config.write_text('[input.skip]\nStatus = ["storniert"]\n')
    source = tmp_path / "tonight.csv"
    source.write_text(
        "reservation_id,site_name,door_name,check_in,check_out,Status\n"
        "R1,Alpenhof,Zimmer 1,2027-03-12,2027-03-16,\n"
        "R2,Alpenhof,Zimmer Drei,2027-03-12,2027-03-16,storniert\n"
    )
    out = tmp_path / "plan.csv"
    args = ["plan", str(source), "--devices", str(SANDBOX_DEVICES), "--config", str(config)]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = printed[printed.index("Plan per door") :]
    assert "Zimmer 1" in table
    assert "Zimmer Drei" not in table
