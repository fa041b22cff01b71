"""Bytes the encoding couldn't read (U+FFFD) never make a code's name, find a door or a level,
or decide a skip: their row is rejected naming the column, the line and the fix; the file's
other rows go on."""

from __future__ import annotations

import pytest

HEADER = "reservation_id;site_name;door_name;check_in;check_out;guest_name;user_level;Status"
GOOD = "B-1;Harbor View;Room 101;2027-03-25;2027-03-28;Jürgen;;confirmé"
LEVEL = '[user_levels.sites]\n"Harbor View" = "Guest 3:30pm-10:30am"\n'
SKIP = '[input.skip]\nStatus = ["annulé"]\n'
FIX = ": set [input] encoding to the file's own, or mend that line"


def cp1252_export(*rows: str) -> bytes:
    """The header, a good row and ``rows``, in cp1252; ``#`` stands for 0x81, a byte cp1252
    leaves undefined (read, it becomes U+FFFD)."""
    return "\r\n".join([HEADER, GOOD, *rows, ""]).encode("cp1252").replace(b"#", b"\x81")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "B-2;Harbor View;Room 102;2027-03-26;2027-03-29;Zo#;;confirmé",
            "guest_name 'Zo\ufffd' holds a byte the file's encoding can't read (line 3)",
        ),
        (
            "B-2;Harbor View;Room 1#2;2027-03-26;2027-03-29;Zoë;;confirmé",
            "door_name 'Room 1\ufffd2' holds a byte the file's encoding can't read (line 3)",
        ),
        (
            "B-2;Harbor Vi#w;Room 102;2027-03-26;2027-03-29;Zoë;;confirmé",
            "site_name 'Harbor Vi\ufffdw' holds a byte the file's encoding can't read (line 3)",
        ),
        (
            "B-2;Harbor View;Room 102;2027-03-26;2027-03-29;Zoë;Day Pa#s;confirmé",
            "user_level 'Day Pa\ufffds' holds a byte the file's encoding can't read (line 3)",
        ),
        (
            "B-#2;Harbor View;Room 102;2027-03-26;2027-03-29;Zoë;;confirmé",
            "reservation_id 'B-\ufffd2' holds a byte the file's encoding can't read (line 3)",
        ),
        (
            "B-2;Harbor View;Room 102;2027-03-26;2027-03-29;Zoë;;annul#",
            "Status 'annul\ufffd' holds a byte the file's encoding can't read (line 3), so"
            " [input.skip] can't tell whether to skip the row",
        ),
    ],
    ids=["guest_name", "door_name", "site_name", "user_level", "reservation_id", "skip"],
)
def test_an_unreadable_byte_rejects_its_row_alone(tmp_path, plan_file, row, message):
    """Each column a code's name, door or level is made of, and a skip column: the row holding
    U+FFFD there is rejected (invalid_row) with the column, its value, the line and the fix;
    the good row plans."""
    source = tmp_path / "export.csv"
    source.write_bytes(cp1252_export(row))
    code, plan, errors = plan_file(source, f'[input]\nencoding = "cp1252"\n{SKIP}{LEVEL}')
    assert (code, errors) == (1, [])
    assert plan.select("reservation_id", "outcome", "reason").rows()[0] == (
        "B-1",
        "planned",
        None,
    )
    assert plan.select("outcome", "reason", "message").rows()[1] == (
        "rejected",
        "invalid_row",
        message + FIX,
    )
    assert plan["name"][1] is None


def test_a_row_its_skip_value_excludes_is_skipped_whatever_its_name_holds(tmp_path, plan_file):
    """A cancelled booking is excluded by its readable skip value even when its name holds an
    unreadable byte (excluded comes first, as for any other problem of the row)."""
    source = tmp_path / "export.csv"
    source.write_bytes(cp1252_export("B-2;Harbor View;Room 102;2027-03-26;2027-03-29;Zo#;;annulé"))
    code, plan, _ = plan_file(source, f'[input]\nencoding = "cp1252"\n{SKIP}{LEVEL}')
    assert code == 0
    assert plan.select("outcome", "reason").rows()[1] == ("skipped", "excluded")


def test_the_section_of_a_sources_file_is_named(tmp_path, plan_file):
    """A source's file: the fix names that source's setting, and its skip table."""
    source = tmp_path / "pms-night.csv"
    source.write_bytes(cp1252_export("B-2;Harbor View;Room 102;2027-03-26;2027-03-29;Zoë;;annul#"))
    config = '[sources.pms]\nfiles = "pms-*"\nencoding = "cp1252"\n[sources.pms.skip]\n'
    code, plan, _ = plan_file(source, config + 'Status = ["annulé"]\n' + LEVEL)
    assert code == 1
    assert plan["message"][1] == (
        "Status 'annul\ufffd' holds a byte the file's encoding can't read (line 3), so"
        " [sources.pms.skip] can't tell whether to skip the row: set [sources.pms] encoding to"
        " the file's own, or mend that line"
    )
