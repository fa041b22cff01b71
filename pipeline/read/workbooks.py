"""Workbooks (``.xlsx``, ``.xls``, ``.ods``) through Polars' calamine engine (fastexcel).

One sheet is read: ``[input] sheet``, or the first. It is loaded once, whole, without a header,
every cell as text; the table starts under its header row, found as ``layout`` says. Each cell
of the table is then read on its own, as the text a CSV export would carry: a date cell
``2027-03-25``, a date-time cell ``2027-03-25T15:30:00``, a time cell (a duration, or a
date-time on Excel's day zero) ``15:30:00``, a whole number without ``.0``. What the rest of
its column holds (another booking's date-time, a title or a "Total reservations: 3" line)
changes nothing.

An .xlsx or .xls file doesn't tell a date cell from a date-time cell at midnight: calamine
gives both as the same date-time (it reads a cell's number format only as far as "a date or
a duration"). So a cell at midnight is read as a date, from itself alone: a date cell is then
always a date, and a date-time cell at 00:00 beside one with a time of day makes its row
rejected for mixing a date and a date-time, never a window that ends at midnight unasked.
"""

from __future__ import annotations

from pathlib import Path

import fastexcel
import polars as pl

from pipeline.common.errors import InputFileError
from pipeline.read.layout import HEADER_SEARCH_ROWS, find_header_row
from pipeline.read.sources import FileSettings

WORKBOOK_EXTENSIONS = {".xlsx", ".xlsm", ".xls", ".ods"}
# Excel counts days from 1899-12-30 (1899-12-31 in some writers): a time-only cell is a
# date-time on that day.
_DAY_ZERO_YEAR = 1900
# How calamine writes a date-time cell as text (a fraction of a second when the cell's number
# doesn't land on one), and how an .ods date-time cell is written.
_DATE_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f")


def read_workbook(path: Path, settings: FileSettings) -> tuple[pl.DataFrame, int]:
    """The table of the file's sheet (``read_sheet``): the rows under its header row, named by
    it, each cell as text, and the sheet row of the first of them. A column with neither a
    header nor a value is left out; one with values but no header is named ``(column N)``.

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
    return body.select(_cell_text(name) for name in kept), index + 2


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
    """The sheet's cells as calamine writes them as text (null for an empty cell), one frame
    row per sheet row from the sheet's first row (frame row 0 is sheet row 1), the columns
    named ``column_1``, ...; an .ods time cell as ``15:30:00``.

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
        cells = reader.load_sheet(chosen, header_row=None, skip_rows=0, dtypes="string")
        frame = cells.to_polars()
        frame.columns = [f"column_{n}" for n in range(1, frame.width + 1)]
        if path.suffix.lower() == ".ods":
            frame = _with_ods_times(frame, reader, chosen)
    except (fastexcel.FastExcelError, pl.exceptions.PolarsError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0]
        raise InputFileError(
            f"reservation file {path}: sheet {chosen!r} can't be read: {detail}"
        ) from exc
    return frame


def _with_ods_times(frame: pl.DataFrame, reader: fastexcel.ExcelReader, sheet: str) -> pl.DataFrame:
    """``frame`` with the .ods file's time cells filled in: a time cell there is a duration,
    which has no text form, so it is loaded apart (the file is parsed once, when opened: this
    costs a conversion, not a second reading of the sheet)."""
    loaded = reader.load_sheet(sheet, header_row=None, skip_rows=0, dtypes="duration")
    times = loaded.to_polars()
    times.columns = frame.columns
    return frame.with_columns(
        pl.coalesce(pl.col(name), _duration_text(times[name])).alias(name) for name in frame.columns
    )


def _duration_text(durations: pl.Series) -> pl.Series:
    seconds = durations.dt.total_seconds()
    return pl.select(
        pl.format(
            "{}:{}:{}",
            *(
                part.cast(pl.String).str.zfill(2)
                for part in (seconds // 3600, seconds % 3600 // 60, seconds % 60)
            ),
        )
    ).to_series()


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


def _cell_text(name: str) -> pl.Expr:
    """Each cell of column ``name`` on its own as the text a CSV export would carry (the
    module's rules): a date-time rounded to the second (a cell's number seldom lands on one),
    a date at midnight, a time on day zero; any other cell as calamine wrote it."""
    cell = pl.col(name)
    moment = pl.coalesce(
        cell.str.to_datetime(fmt, strict=False, time_unit="ms") for fmt in _DATE_TIME_FORMATS
    ).dt.round("1s")
    return (
        pl.when(moment.is_null())
        .then(cell)
        .when(moment.dt.year() < _DAY_ZERO_YEAR)
        .then(moment.dt.strftime("%H:%M:%S"))
        .when(moment.dt.time() == pl.time(0))
        .then(moment.dt.strftime("%Y-%m-%d"))
        .otherwise(moment.dt.strftime("%Y-%m-%dT%H:%M:%S"))
        .alias(name)
    )
