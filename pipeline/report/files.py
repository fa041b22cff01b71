"""Writing the report (as JSON, the page, or a folder of tables) and the doors list through
``common.outputs`` (atomically, mode 0600); and the checks, made before any work, that they can
be written where asked."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from pipeline.catalog.listing import DOOR_FORMATS, doors_json
from pipeline.common.csvfiles import write_csv
from pipeline.common.errors import UsageError
from pipeline.common.outputs import (
    check_file_extension,
    check_output_folder,
    default_output_path,
    write_private,
    write_private_text,
    write_table,
)

if TYPE_CHECKING:
    from pipeline.report.summary import Report

REPORT_FORMATS = ("table", "csv", "parquet", "json", "html")
# The formats written as one file (the others: a folder of files, one per section).
REPORT_FILE_FORMATS = ("json", "html")


def check_report_out(out: Path | None, fmt: str) -> None:
    """Refuse, before the ledger is read (UsageError, exit 2), a format we don't write or an
    ``out`` it can't use or write (with no ``out``, csv, parquet and html need ``outputs/``)."""
    if fmt not in REPORT_FORMATS:
        raise UsageError(f"--format {fmt} is not one of {', '.join(REPORT_FORMATS)}")
    if out is not None:
        check_report_path(out, fmt)
    elif fmt in ("csv", "parquet", "html"):
        check_output_folder(default_output_path("report", now=dt.datetime.now(dt.UTC)).parent)


def check_report_path(out: Path, fmt: str) -> None:
    """Refuse an ``--out`` the format can't use, or that can't be written, before the ledger
    is read (UsageError, exit 2)."""
    if fmt == "table":
        raise UsageError("--out needs --format csv, parquet, json or html")
    if fmt in REPORT_FILE_FORMATS and out.is_dir():
        raise UsageError(f"--out {out} is a folder", hint=f"--format {fmt} writes one file")
    if fmt in REPORT_FILE_FORMATS:
        check_file_extension(out, fmt)
    if fmt not in REPORT_FILE_FORMATS and out.exists() and not out.is_dir():
        raise UsageError(
            f"--out {out} is a file",
            hint=f"--format {fmt} writes a folder of files, one per section",
        )
    # The report's own folder is made only when there is a report to put in it.
    check_output_folder(out if fmt not in REPORT_FILE_FORMATS and out.is_dir() else out.parent)


def write_report(report: Report, fmt: str, out: Path | None = None) -> list[Path]:
    """``json``: one file at ``out``; ``csv`` and ``parquet``: a folder ``out`` (default
    ``outputs/report-<UTC time>/``) holding one file per section (``runs.csv``, ``doors.csv``,
    ...). Mode 0600 like every output. Raises UsageError (exit 2) when it can't be written."""
    out = out or default_output_path("report", now=report.generated_at).with_suffix("")
    try:
        if fmt == "json":
            return [write_private_text(out, report.to_json())]
        sections = report.sections().items()
        return [write_table(frame, out / f"{name}.{fmt}") for name, frame in sections]
    except OSError as exc:
        raise UsageError(f"the report can't be written to {out}: {exc.strerror or exc}") from exc


def check_doors_out(out: Path | None, fmt: str) -> None:
    """Refuse, before the doors are listed (UsageError, exit 2), a format we don't write or an
    ``--out`` it can't use or write (``table`` is for the terminal only)."""
    if fmt not in DOOR_FORMATS:
        raise UsageError(f"--format {fmt} is not one of {', '.join(DOOR_FORMATS)}")
    if out is None:
        return
    if fmt == "table":
        raise UsageError("--out needs --format csv or json")
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder", hint="give the path of a file")
    check_output_folder(out.parent)


def write_doors(listing: pl.DataFrame, fmt: str, out: Path) -> Path:
    """The doors list (``list_door_levels``'s table) as ``csv`` or ``json`` at ``out``,
    atomically (mode 0600 like every output, though it holds no secret). Raises UsageError
    (exit 2) when it can't be written."""
    try:
        if fmt == "csv":
            return write_private(out, lambda stream: write_csv(listing, stream))
        return write_private_text(out, doors_json(listing))
    except OSError as exc:
        raise UsageError(f"the doors can't be written to {out}: {exc.strerror or exc}") from exc
