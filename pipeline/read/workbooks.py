"""Workbooks (``.xlsx``, ``.xls``, ``.ods``) through Polars' calamine engine (fastexcel).

One sheet is read: ``[input] sheet``, or the first. Cells come typed, and each becomes the text
a CSV export would carry: a date cell ``2027-03-25``, a date-time cell ``2027-03-25T15:30:00``,
a time cell (a duration, or a date-time on Excel's day zero) ``15:30:00``, a whole number
without ``.0``. The read stage treats the result as it treats a CSV file's columns.
"""

from __future__ import annotations

from pathlib import Path

import fastexcel
import polars as pl

from pipeline.errors import InputFileError

WORKBOOK_EXTENSIONS = {".xlsx", ".xlsm", ".xls", ".ods"}
# Excel counts days from 1899-12-30 (1899-12-31 in some writers): a time-only cell is a
# date-time on that day.
_DAY_ZERO_YEAR = 1900


def read_workbook(path: Path, sheet: str | None, section: str = "[input]") -> pl.DataFrame:
    """The sheet's rows as text columns (null for an empty cell), the first row the header.

    Raises InputFileError for a file that isn't a readable workbook, or a ``sheet`` it lacks
    (naming the sheets it has and ``section``'s setting).
    """
    try:
        names = fastexcel.read_excel(path).sheet_names
    except (fastexcel.FastExcelError, OSError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0]
        raise InputFileError(
            f"reservation file {path} is not a readable workbook: {detail}",
            hint="save it again from the spreadsheet program, or export CSV",
        ) from exc
    chosen = _pick_sheet(path, names, sheet, section)
    try:
        frame = pl.read_excel(path, engine="calamine", sheet_name=chosen, infer_schema_length=None)
    except (fastexcel.FastExcelError, pl.exceptions.PolarsError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0]
        raise InputFileError(
            f"reservation file {path}: sheet {chosen!r} can't be read: {detail}"
        ) from exc
    return frame.select(_as_text(name, dtype) for name, dtype in frame.schema.items())


def _pick_sheet(path: Path, names: list[str], sheet: str | None, section: str) -> str:
    if not names:
        raise InputFileError(f"reservation file {path} has no sheets")
    if sheet is None:
        return names[0]
    if sheet in names:
        return sheet
    folded = [name for name in names if name.casefold() == sheet.strip().casefold()]
    if folded:
        return folded[0]
    raise InputFileError(
        f"reservation file {path} has no sheet {sheet!r}; its sheets: {', '.join(names)}",
        hint=f"set {section} sheet to one of them",
    )


def _as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        is_time_only = column.dt.year() < _DAY_ZERO_YEAR
        text = (
            pl.when(is_time_only)
            .then(column.dt.strftime("%H:%M:%S"))
            .otherwise(column.dt.strftime("%Y-%m-%dT%H:%M:%S"))
        )
    elif isinstance(dtype, pl.Date):
        text = column.dt.strftime("%Y-%m-%d")
    elif isinstance(dtype, pl.Duration):
        seconds = column.dt.total_seconds()
        text = pl.format(
            "{}:{}:{}",
            (seconds // 3600).cast(pl.String).str.zfill(2),
            (seconds % 3600 // 60).cast(pl.String).str.zfill(2),
            (seconds % 60).cast(pl.String).str.zfill(2),
        )
    elif dtype.is_float():
        # A number typed into a cell is a float: 1001 is a reservation id, not 1001.0.
        is_whole = column == column.floor()
        text = (
            pl.when(is_whole)
            .then(column.cast(pl.Int64, strict=False).cast(pl.String))
            .otherwise(column.cast(pl.String))
        )
    else:
        # One text cell makes calamine type a whole column as text, its date cells written
        # "2027-03-25 00:00:00" and its time cells "1899-12-31 15:30:00": read them back as
        # the date and the time they are, not as midnight or a date in 1899.
        text = (
            column.cast(pl.String)
            .str.replace(r"^(\d{4}-\d{2}-\d{2}) 00:00:00$", "$1")
            .str.replace(r"^1899-12-3[01] (\d{2}:\d{2}:\d{2})$", "$1")
        )
    return text.alias(name)
