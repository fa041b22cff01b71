"""An .xlsx writer for the tests that types each cell as Excel does: a date, a date-time and a
time of day are numbers with a date or time format, an int or float a number, the rest text;
laid out cell by cell, so a sheet can hold a title above its headers and a total under them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import xlsxwriter

from tests.read.ods import Cell


def write_xlsx(path: Path, sheets: dict[str, Sequence[Sequence[Cell]]]) -> Path:
    """Write ``sheets`` (name -> rows; None leaves a cell empty) as an .xlsx file at ``path``."""
    with xlsxwriter.Workbook(path) as workbook:
        formats = {
            dt.datetime: workbook.add_format({"num_format": "dd.mm.yyyy hh:mm"}),
            dt.date: workbook.add_format({"num_format": "dd.mm.yyyy"}),
            dt.time: workbook.add_format({"num_format": "hh:mm"}),
        }
        for name, rows in sheets.items():
            sheet = workbook.add_worksheet(name)
            for row_number, row in enumerate(rows):
                for column, value in enumerate(row):
                    if value is None:
                        continue
                    if isinstance(value, dt.date | dt.time):
                        sheet.write_datetime(row_number, column, value, formats[type(value)])
                    else:
                        sheet.write(row_number, column, value)
    return path
