"""Where the table is in a file: the row that holds its headers, and the rows after its data.

Property systems put a report title, a date range or a blank row above the headers, and a
total, a blank row or a footnote under the data. The header row is the first of the first
``HEADER_SEARCH_ROWS`` rows that names every column a file must bring (after the file's
``[columns]`` renames), or the row ``header_row`` says. Rows after the last reservation that
are none (``is_reservation``: two of an id, a door and both dates) are left out with one
``info:`` line counting them; a row among the data is never left out, whatever it holds
(planning rejects it, with its reason).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence

import polars as pl

from pipeline.read.headers import DELIMITERS, missing_columns, rename_to_canonical

log = logging.getLogger(__name__)

HEADER_SEARCH_ROWS = 20
# A bare number (a count, a sum) is no date, even in a date column.
_NUMBER = r"^[-+]?\d+(?:[.,]\d+)?$"


def find_header_row(
    rows: Sequence[Sequence[str | None]], columns: Mapping[str, str], header_row: int | None
) -> int:
    """The 0-based index in ``rows`` (a file's first rows, cells as text) of its header row:
    ``header_row - 1`` when set; else the first of the first HEADER_SEARCH_ROWS rows whose
    cells name every column a file must bring (``columns`` renaming them), else the one that
    names most, else the first row that isn't empty (the missing-column error names its
    cells)."""
    if header_row is not None:
        return header_row - 1
    best: int | None = None
    best_count = 0
    for index, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        headers = [cell for cell in row if cell is not None and cell.strip()]
        if not headers:
            continue
        renamed = rename_to_canonical(headers, columns)
        if not missing_columns(renamed):
            return index
        count = sum(target is not None for target in renamed.values())
        if best is None or count > best_count:
            best, best_count = index, count
    return best or 0


def split_lines(head: str) -> list[list[str]]:
    """The first HEADER_SEARCH_ROWS lines of a CSV file's text, each split at the delimiter it
    holds most (a title line has its own, or none)."""
    lines = [line.removesuffix("\r") for line in head.split("\n")[:HEADER_SEARCH_ROWS]]
    return [_split(line, guess_delimiter(line)) for line in lines]


def _split(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        # A line the csv module won't take (a carriage return in an unquoted field, a field
        # over its size limit) is no header row: its cells, roughly, for the search.
        return line.split(delimiter)


def guess_delimiter(line: str) -> str:
    """The delimiter a header line holds most (``,`` when it holds none)."""
    return max(DELIMITERS, key=line.count)


def is_reservation(columns: Sequence[str]) -> pl.Expr:
    """Whether a row of a table with ``columns`` (the canonical ones and any split ones, as
    stripped text or null) may be a reservation: it holds two of an id, a door (device_id or
    door_name) and both ends of a stay (each a date that isn't a bare number); a booking whose
    id is missing is one, for planning to reject. A total ("Total reservations: 3", "Total,,,,,2
    guests"), a "Printed:" line with its date, a blank row or a footnote holds one at most."""

    def dated(stay: str) -> pl.Expr:
        return pl.any_horizontal(
            pl.lit(False),
            *(
                pl.col(name).is_not_null() & ~pl.col(name).str.contains(_NUMBER)
                for name in (stay, f"{stay}_date")
                if name in columns
            ),
        )

    has_id = pl.col("reservation_id").is_not_null()
    door = pl.col("device_id").is_not_null() | pl.col("door_name").is_not_null()
    dates = dated("check_in") & dated("check_out")
    return has_id & (door | dates) | door & dates


def drop_trailing_rows(table: pl.DataFrame, source: str) -> pl.DataFrame:
    """``table`` without the rows after its last reservation (``is_reservation``), with one
    ``info:`` line counting them and naming their lines (``source_line``)."""
    found = is_reservation(table.columns)
    if table.tail(1).select(found).item():
        return table  # the usual file: nothing after its last reservation
    kept = table.select(found.arg_true().max()).item()
    end = -1 if kept is None else int(kept)
    dropped = table.height - end - 1
    if dropped == 0:
        return table
    lines = table["source_line"].slice(end + 1)
    where = f"line {lines[0]}" if dropped == 1 else f"lines {lines[0]}-{lines[-1]}"
    log.info(
        "%s: %d row%s after the data (%s) hold%s no reservation (not two of an id, a door and"
        " both dates: a total, a note or a blank row): left out",
        source,
        dropped,
        "" if dropped == 1 else "s",
        where,
        "s" if dropped == 1 else "",
    )
    return table.head(end + 1)
