"""The one CSV writer: no live formula, every text cell quoted, Excel's UTF-8 mark on files."""

from __future__ import annotations

import io

import polars as pl
import pytest

from pipeline.csvfiles import csv_text, write_csv


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
