"""Bytes that say a CSV export is in another encoding than the one set (or detected) are one
line and exit 2, never a crash nor names made of replacement characters; lines ended by a
carriage return alone (Excel for Mac) are read."""

from __future__ import annotations

import io
import zipfile

import pytest

HEADER = "reservation_id;site_name;door_name;check_in;check_out;guest_name"
ROWS = (
    "B-1;Harbor View;Room 101;2027-03-25;2027-03-28;Jürgen Müller",
    "B-2;Harbor View;Room 102;2027-03-26;2027-03-29;Zoë Weiß \u2013 René",
)
LEVEL = '[user_levels.sites]\n"Harbor View" = "Guest 3:30pm-10:30am"\n'


def export(line_end: str = "\r\n") -> str:
    return line_end.join([HEADER, *ROWS, ""])


@pytest.mark.parametrize(
    ("content", "encoding"),
    [(export("\r").encode("cp1252"), None), (export("\r").encode(), "utf-8")],
    ids=["cp1252-detected", "utf-8-set"],
)
def test_an_export_whose_lines_end_in_a_carriage_return_is_read(
    tmp_path, plan_file, content, encoding
):
    """Excel for Mac's "CSV (Macintosh)": lines ended by \\r alone read line by line, each
    row numbered as its line, its names whole."""
    source = tmp_path / "mac.csv"
    source.write_bytes(content)
    config = f'[input]\nencoding = "{encoding}"\n' if encoding else ""
    code, plan, errors = plan_file(source, config + LEVEL)
    assert (code, errors) == (0, [])
    assert plan.select("reservation_id", "outcome", "source_line").rows() == [
        ("B-1", "planned", "2"),
        ("B-2", "planned", "3"),
    ]
    assert plan["name"][1].startswith("B-2 Zoë Weiß \u2013 René [opl-")


def test_a_carriage_return_inside_a_title_line_is_passed_over(tmp_path, plan_file):
    """A title line holding a lone \\r (which the csv module refuses) above the headers: the
    headers are found under it, and the booking plans."""
    source = tmp_path / "titled.csv"
    source.write_bytes(f"Report\rHarbor View, 24.03.2027\r\n{export()}".encode())
    code, plan, errors = plan_file(source, LEVEL)
    assert (code, errors) == (0, [])
    assert plan.select("reservation_id", "source_line").rows() == [("B-1", "3"), ("B-2", "4")]


def _zip() -> bytes:
    """A workbook's bytes (a zip archive), as a file named .csv holds them."""
    with zipfile.ZipFile(buffer := io.BytesIO(), "w") as archive:
        archive.writestr("sheet.xml", "<sheet/>" * 50)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "encoding", "shown", "hint"),
    [
        (
            export().encode("utf-16-be"),
            "cp1252",
            "line 1 holds a NUL byte every other byte: the file is likely UTF-16 (big-endian,"
            " without a byte-order mark), not cp1252 as [input] encoding says",
            'set [input] encoding = "utf-16-be"',
        ),
        (
            export().encode("utf-16"),
            "cp1252",
            "starts with a UTF-16 byte-order mark: it is UTF-16, not cp1252 as [input]"
            " encoding says",
            'set [input] encoding = "utf-16", or remove it to detect',
        ),
        (
            export().encode("cp1252"),
            "utf-8",
            "line 2 is not utf-8 as [input] encoding says: byte 0xFC in 'J\\xfcrgen M\\xfcller'"
            " (as cp1252 it reads 'Jürgen Müller')",
            'the file is likely cp1252: set [input] encoding = "cp1252"',
        ),
        (
            export().encode() + b"B-3;Harbor View;Room 103;2027-03-26;2027-03-29;Ren\xe9\r\n",
            "utf-8",
            "line 4 is not utf-8 as [input] encoding says: byte 0xE9 in 'Ren\\xe9' (as cp1252"
            " it reads 'René')",
            "the rest of the file is UTF-8: mend that value, or export the file again as UTF-8",
        ),
        (
            export().encode(),
            "utf-16",
            "is not utf-16 as [input] encoding says: it holds no NUL byte, as UTF-16 text of"
            " these letters would",
            'the file is likely utf-8: set [input] encoding = "utf-8", or remove it to detect',
        ),
        (
            _zip(),
            None,
            "line 1 holds NUL bytes: it is not a text export",
            "export the bookings again as CSV, or give a workbook under its own extension",
        ),
    ],
    ids=[
        "utf16be-under-cp1252",
        "utf16-bom-under-cp1252",
        "cp1252-under-utf8",
        "stray-byte-under-utf8",
        "utf8-under-utf16",
        "binary",
    ],
)
def test_bytes_of_another_encoding_are_one_line(
    tmp_path, plan_file, content, encoding, shown, hint
):
    """Each case by hand: exit 2 and one line naming the line (or the mark), what the file
    most likely is and the setting that reads it; no plan, no code name from such text."""
    source = tmp_path / "export.csv"
    source.write_bytes(content)
    config = f'[input]\nencoding = "{encoding}"\n' if encoding else ""
    code, plan, errors = plan_file(source, config + LEVEL)
    assert (code, plan) == (2, None)
    assert errors == [f"error: reservation file {source} {shown} ({hint})"]
