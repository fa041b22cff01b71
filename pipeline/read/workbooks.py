"""Workbooks (``.xlsx``, ``.xls``, ``.ods``) through Polars' calamine engine (fastexcel).

One sheet is read: ``[input] sheet``, or the first. It is read whole, without a header, every
cell on its own as the text a CSV export would carry: a date cell ``2027-03-25``, a date-time
cell ``2027-03-25T15:30:00``, a time cell (a duration, or a date-time on Excel's day zero)
``15:30:00``, a whole number without ``.0``. Reading cell by cell, not column by column, keeps
a date cell a date whatever else its column holds: a title above the headers, a "Total
reservations: 3" line under the data. The table starts under its header row, found as
``layout`` says.
"""

from __future__ import annotations

from pathlib import Path

import fastexcel
import polars as pl

from pipeline.errors import InputFileError
from pipeline.read.layout import HEADER_SEARCH_ROWS, find_header_row
from pipeline.read.sources import FileSettings

WORKBOOK_EXTENSIONS = {".xlsx", ".xlsm", ".xls", ".ods"}
# Excel counts days from 1899-12-30 (1899-12-31 in some writers): a time-only cell is a
# date-time on that day.
_DAY_ZERO_YEAR = 1900
# How calamine writes a date or date-time cell as text (a fraction of a second when the
# cell's number doesn't land on one), and how an .ods date-time cell is written.
_DATE_TIME = r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?$"


def read_workbook(path: Path, settings: FileSettings) -> tuple[pl.DataFrame, int]:
    """The table of the file's sheet (``read_sheet``): the rows under its header row, named by
    it, and the sheet row of the first of them. A column with neither a header nor a value is
    left out; one with values but no header is named ``(column N)``.

    Raises InputFileError as ``read_sheet`` does, for an empty sheet, and for a ``header_row``
    past the sheet's end.
    """
    grid = read_sheet(path, settings.input.sheet, settings.section)
    if grid.height == 0:
        raise InputFileError(f"reservation file {path}: its sheet is empty")
    top = grid.head(HEADER_SEARCH_ROWS).rows()
    index = find_header_row(top, settings.columns, settings.input.header_row)
    if index >= grid.height:
        raise InputFileError(
            f"reservation file {path} has no row {index + 1}: its sheet ends at row {grid.height}",
            hint=f"set {settings.section} header_row to the row that holds the headers",
        )
    cells = grid.row(index)
    body = grid.slice(index + 1)
    body.columns = _header_names(cells)
    kept = [
        name
        for name, cell in zip(body.columns, cells, strict=True)
        if cell is not None or body[name].null_count() < body.height
    ]
    return body.select(kept), index + 2


def _header_names(cells: tuple[str | None, ...]) -> list[str]:
    """Unique column names from a header row's cells: the text, ``(column N)`` for an empty
    cell, ``_2``, ``_3`` ... after a repeated one (the first keeps its name, and wins)."""
    names: list[str] = []
    for number, cell in enumerate(cells, start=1):
        name = cell.strip() if cell is not None and cell.strip() else f"(column {number})"
        unique, count = name, 1
        while unique in names:
            count += 1
            unique = f"{name}_{count}"
        names.append(unique)
    return names


def read_sheet(path: Path, sheet: str | None, section: str) -> pl.DataFrame:
    """The sheet's cells as text (null for an empty cell), one frame row per sheet row from
    the sheet's first row (frame row 0 is sheet row 1), the columns named ``column_1``, ...

    Raises InputFileError for a file that isn't a readable workbook, or a ``sheet`` it lacks
    (naming the sheets it has and ``section``'s setting).
    """
    try:
        reader = fastexcel.read_excel(path)
        names = reader.sheet_names
    except (fastexcel.FastExcelError, OSError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0]
        raise InputFileError(
            f"reservation file {path} is not a readable workbook: {detail}",
            hint="save it again from the spreadsheet program, or export CSV",
        ) from exc
    chosen = _pick_sheet(path, names, sheet, section)
    try:
        # skip_rows=0: without it, leading empty rows are dropped and rows lose their number.
        text = reader.load_sheet(chosen, header_row=None, skip_rows=0, dtypes="string")
        # A time cell in an .ods file is a duration, which has no text form: read it apart.
        durations = reader.load_sheet(chosen, header_row=None, skip_rows=0, dtypes="duration")
        cells, times = text.to_polars(), durations.to_polars()
    except (fastexcel.FastExcelError, pl.exceptions.PolarsError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0]
        raise InputFileError(
            f"reservation file {path}: sheet {chosen!r} can't be read: {detail}"
        ) from exc
    names = [f"column_{n}" for n in range(1, cells.width + 1)]
    cells.columns, times.columns = names, names
    return pl.DataFrame(
        [_as_text(cells[name], times[name]) for name in names],
        schema=dict.fromkeys(names, pl.String),
    )


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


def _as_text(cells: pl.Series, times: pl.Series) -> pl.Series:
    """One column's cells as text: date and date-time cells (written by calamine as
    ``2027-03-25 15:30:00``) as ISO dates, date-times and times of day, rounded to the second
    (a cell's number seldom lands on one); a duration cell as ``15:30:00``; the rest as is.

    A date-time at midnight is a date unless its column holds other date-times: a column
    typed as dates reads as dates, as Polars reads a whole date column."""
    frame = pl.DataFrame({"cell": cells, "time": times})
    cell = pl.col("cell")
    moment = (
        pl.when(cell.str.contains(_DATE_TIME))
        .then(cell.str.replace("T", " ").str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False))
        .dt.round("1s")
    )
    frame = frame.with_columns(moment=moment)
    moment = pl.col("moment")
    is_day_zero = moment.dt.year() < _DAY_ZERO_YEAR
    is_midnight = moment.dt.time() == pl.time(0)
    has_times = (~is_day_zero & ~is_midnight).any()
    seconds = pl.col("time").dt.total_seconds()
    return frame.select(
        pl.when(moment.is_null() & cell.is_null() & seconds.is_not_null())
        .then(
            pl.format(
                "{}:{}:{}",
                (seconds // 3600).cast(pl.String).str.zfill(2),
                (seconds % 3600 // 60).cast(pl.String).str.zfill(2),
                (seconds % 60).cast(pl.String).str.zfill(2),
            )
        )
        .when(moment.is_null())
        .then(cell)
        .when(is_day_zero)
        .then(moment.dt.strftime("%H:%M:%S"))
        .when(is_midnight & ~has_times)
        .then(moment.dt.strftime("%Y-%m-%d"))
        .otherwise(moment.dt.strftime("%Y-%m-%dT%H:%M:%S"))
        .alias(cells.name)
    ).to_series()
