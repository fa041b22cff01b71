"""The one way this tool writes CSV: every CSV file it makes (results, plans, pins, report
sections, the doors list) and the doors list on standard output go through ``write_csv``.

What is written there comes partly from outside (guest names, reservation ids, door names from
an export or from Seam), and the people who read these files open them in Excel, LibreOffice
or Google Sheets. So, as OWASP's CSV-injection guidance describes:
- a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
  single quote in front (``'=HYPERLINK(...)``): a spreadsheet shows it as text, never runs it;
- every text cell is quoted, with its own quotes doubled, so that no separator or line break
  inside a value can start a cell of its own.
Typed numbers, dates, times and booleans are written as they are: their text is only a
number or an ISO date (``-3``, ``2027-03-26T15:00:00-07:00`` starts with a digit), which a
spreadsheet reads as a value and which can hold neither a formula nor a separator. A ``-3``
in a *text* column is quoted like any text starting with ``-``: there it may be the start of
``-3+cmd|...``, which a spreadsheet would run. Empty cells stay empty (not ``""``), so that a
missing value reads back as missing.

Files start with a UTF-8 byte-order mark: Excel reads a CSV as UTF-8 only when it begins with
one (without it, "Jürgen Müller" comes out as "JÃ¼rgen MÃ¼ller"), and Polars, pandas and
Python's ``utf-8-sig`` codec read it as the mark it is. CSV text on standard output has none:
it goes to other programs, not to a spreadsheet.
"""

from __future__ import annotations

import codecs
import io
from typing import BinaryIO

import polars as pl

# The characters a spreadsheet may take as the start of a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_STARTS_A_FORMULA = "^[" + "".join("\\" + character for character in "=+-@") + "\t\r]"
# What a cell that could start a formula is given in front, so that it is read as text.
TEXT_MARK = "'"


def write_csv(frame: pl.DataFrame, stream: BinaryIO, *, bom: bool = True) -> None:
    """Write ``frame`` as CSV to ``stream``: text cells neutralised and quoted, typed values as
    they are, empty cells empty; with ``bom`` (files) a UTF-8 byte-order mark first."""
    if bom:
        stream.write(codecs.BOM_UTF8)
    neutralised(frame).write_csv(stream, quote_style="non_numeric")


def csv_text(frame: pl.DataFrame) -> str:
    """``frame`` as ``write_csv`` writes it, without the byte-order mark (for standard output)."""
    buffer = io.BytesIO()
    write_csv(frame, buffer, bom=False)
    return buffer.getvalue().decode("utf-8")


def neutralised(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every text cell that starts with one of ``FORMULA_STARTS`` prefixed with
    ``TEXT_MARK``; other columns untouched."""
    texts = [
        name
        for name, dtype in frame.schema.items()
        if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)
    ]
    if not texts:
        return frame
    return frame.with_columns(
        pl.when(pl.col(name).cast(pl.String).str.contains(_STARTS_A_FORMULA))
        .then(TEXT_MARK + pl.col(name).cast(pl.String))
        .otherwise(pl.col(name).cast(pl.String))
        .alias(name)
        for name in texts
    )
