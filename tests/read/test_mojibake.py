"""A wrong encoding is caught: a UTF-8 file under a cp1252 setting is read as UTF-8; text that
reads as UTF-8 decoded as cp1252 is refused, naming the line; real cp1252 text is left alone.
No code name is made from mis-decoded text."""

from __future__ import annotations

import pytest

from pipeline.common.errors import InputFileError
from pipeline.common.settings import Config
from pipeline.read.files import read_reservations
from tests.read.xlsx import write_xlsx

HEADER = "reservation_id,site_name,door_name,check_in,check_out,guest_name"
LEVEL = '[user_levels.sites]\n"Harbor View" = "Guest 3:30pm-10:30am"\n'


@pytest.mark.parametrize(
    ("text", "is_mojibake"),
    [
        ("JÃ¼rgen MÃ¼ller", True),  # ü
        ("RenÃ©", True),  # é
        ("AnnulÃ©", True),
        ("Ã\u00a0la carte", True),  # à: Ã and a no-break space
        ("ZoÃ«", True),
        ("Å\u0081ukasz", True),  # Ł, its second byte unassigned in cp1252 (latin-1's C1)
        ("Ð\u0098Ð²Ð°Ð½", True),  # Иван
        ("Guest\u00e2\u20ac\u2122s room", True),  # a right single quote
        ("Suite \u00e2\u20ac\u201c Meerblick", True),  # an en dash
        ("\u00f0\u0178\u02dc\u20ac", True),  # an emoji
        ("Jürgen Müller", False),
        ("SÃO PAULO", False),  # Ã then a letter
        ("São Paulo", False),
        ("Zoë Ångström", False),
        ("François “Frank” Dupré", False),
        ("CAFÉ”", False),  # É then ”: would be ɔ, an IPA letter, no name's
        ("José\u2019s suite", False),
        ("ÖZTÜRK \u2013 Müller-Lüdenscheidt", False),
        ("«Ñandú»", False),
        ("Zimmer 3 ½", False),
        # A pair of a lead and continuations, in text that doesn't turn back into UTF-8.
        ("Jean «\u00a0Dédé\u00a0» Martin", False),  # é, a no-break space, »
        ("Café\u00a0\u2013 Vue mer", False),  # é, a no-break space, an en dash
        ("José\u00a0²", False),
    ],
)
def test_mojibake_is_told_from_real_accented_text(tmp_path, text, is_mojibake):
    """Each case by hand, as a UTF-8 export's guest name: UTF-8 read as cp1252 (or latin-1)
    is refused; real names, typographic quotes, dashes and no-break spaces included, are
    read as they are, even where they hold a pair that looks like it."""
    source = tmp_path / "export.csv"
    source.write_text(f"{HEADER}\nR1,Harbor View,Room 101,2027-03-25,2027-03-28,{text}\n")
    if is_mojibake:
        with pytest.raises(InputFileError, match="UTF-8 text read as cp1252"):
            read_reservations([source], Config())
    else:
        assert read_reservations([source], Config())["guest_name"].to_list() == [text]


def test_a_utf8_file_under_a_cp1252_setting_is_read_as_utf8(tmp_path, plan_file, read_warnings):
    """`encoding = "cp1252"` on a file that is UTF-8: read as UTF-8 with a warning, and the
    names reach the codes as written (not ``JÃ¼rgen MÃ¼ller``)."""
    source = tmp_path / "export.csv"
    source.write_text(
        f"{HEADER}\nR1,Harbor View,Room 101,2027-03-25,2027-03-28,Jürgen Müller\n",
        encoding="utf-8",
    )
    code, plan, _ = plan_file(source, f'[input]\nencoding = "cp1252"\n{LEVEL}')
    assert code == 0
    assert plan["name"][0].startswith("R1 Jürgen Müller [opl-")
    assert read_warnings == [
        f"{source} is UTF-8, not cp1252 as [input] encoding says: read as UTF-8, which keeps its"
        ' names\' letters; set encoding = "utf-8" there if its exports are UTF-8 now'
    ]


def test_an_ascii_file_under_any_setting_is_read_without_a_word(tmp_path, plan_file, read_warnings):
    """A file of ASCII alone reads the same in every encoding: no warning."""
    source = tmp_path / "export.csv"
    source.write_text(f"{HEADER}\nR1,Harbor View,Room 101,2027-03-25,2027-03-28,Ann Lee\n")
    code, _, _ = plan_file(source, f'[input]\nencoding = "latin-1"\n{LEVEL}')
    assert (code, read_warnings) == (0, [])


MIXED = (
    f"{HEADER}\nR1,Harbor View,Room 101,2027-03-25,2027-03-28,Ann\n"
    "R2,Harbor View,Room 102,2027-03-25,2027-03-28,Jürgen Müller\n".encode()
    + b"R3,Harbor View,Room 103,2027-03-25,2027-03-28,Ren\xe9\n"
)


@pytest.mark.parametrize(
    ("content", "config", "shown", "hint"),
    [
        (
            # Mostly UTF-8 with one stray byte: it doesn't decode as UTF-8, and does as cp1252.
            MIXED,
            '[input]\nencoding = "cp1252"\n',
            "line 3 reads 'JÃ¼rgen MÃ¼ller': UTF-8 text read as cp1252 (it would read"
            " 'Jürgen Müller')",
            'the file is likely UTF-8: set [input] encoding = "utf-8"',
        ),
        (
            # Garbled before it was saved: UTF-8 bytes of the mis-decoded text.
            (
                HEADER + "\nR1,Harbor View,Room 101,2027-03-25,2027-03-28,RenÃ© Ã\u0081lvarez\n"
            ).encode(),
            None,
            "line 2 reads 'RenÃ© Ã\\x81lvarez': UTF-8 text read as cp1252 (it would read"
            " 'René Álvarez')",
            "the file itself holds the garbled text: export it again from the property system"
            " as UTF-8, or mend those values",
        ),
        (
            # In an [input.skip] column: "Annulé" would fail to match, and the stay be made.
            (
                HEADER + ",Status\nR1,Harbor View,Room 101,2027-03-25,2027-03-28,Ann,AnnulÃ©\n"
            ).encode(),
            '[input.skip]\nStatus = ["Annulé"]\n',
            "line 2 reads 'AnnulÃ©': UTF-8 text read as cp1252 (it would read 'Annulé')",
            "the file itself holds the garbled text: export it again from the property system"
            " as UTF-8, or mend those values",
        ),
    ],
    ids=["cp1252-setting", "double-encoded", "skip-column"],
)
def test_mojibake_is_refused_naming_the_line(tmp_path, plan_file, content, config, shown, hint):
    """Text that reads as UTF-8 decoded as cp1252: exit 2 before any row is planned, one line
    naming the line, the value, what it should read and what to do; no plan is written."""
    source = tmp_path / "export.csv"
    source.write_bytes(content)
    code, plan, errors = plan_file(source, (config or "") + LEVEL)
    assert (code, plan) == (2, None)
    assert errors == [f"error: reservation file {source} {shown} ({hint})"]


def test_mojibake_in_a_workbook_is_refused(tmp_path, plan_file):
    """A workbook's text comes decoded, so garbled names in it were garbled before: refused."""
    rows = [
        ["reservation_id", "site_name", "door_name", "check_in", "check_out", "guest_name"],
        ["R1", "Harbor View", "Room 101", "2027-03-25", "2027-03-28", "ZoÃ« Martin"],
    ]
    source = write_xlsx(tmp_path / "export.xlsx", {"Sheet": rows})
    code, _, errors = plan_file(source, LEVEL)
    assert code == 2
    assert errors[0].startswith(
        f"error: reservation file {source} line 2 reads 'ZoÃ« Martin': UTF-8 text read as"
        " cp1252 (it would read 'Zoë Martin')"
    )


def test_real_cp1252_names_are_read_as_they_are(tmp_path, plan_file, read_warnings):
    """A cp1252 export whose names hold Ã, quotes and dashes beside accented letters is read
    as written, without a warning, and its names reach the codes."""
    names = ["SÃO PAULO", "François “Frank” Dupré", "José\u2019s \u2013 Zoë", "ÖZTÜRK «Ñandú»"]
    rows = "".join(
        f"R{n},Harbor View,Room 10{n},2027-03-25,2027-03-28,{name}\n"
        for n, name in enumerate(names, start=1)
    )
    source = tmp_path / "export.csv"
    source.write_bytes(f"{HEADER}\n{rows}".encode("cp1252"))
    code, plan, _ = plan_file(source, f'[input]\nencoding = "cp1252"\n{LEVEL}')
    assert code == 0
    assert [name.split(" [opl-")[0] for name in plan["name"]] == [
        f"R{n} {name}" for n, name in enumerate(names, start=1)
    ]
    assert read_warnings == []
