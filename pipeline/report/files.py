"""Writing output files: result tables (CSV, Parquet or JSONL by extension), the report and
the doors list,
each atomically and readable by its owner only (mode 0600: results hold PINs); and the checks,
made before any work, that they can be written where asked."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import polars as pl

from pipeline.catalog.listing import DOOR_FORMATS, doors_json
from pipeline.csvfiles import write_csv
from pipeline.errors import UsageError

if TYPE_CHECKING:  # the report's sections come from the pins table too, which writes here
    from pipeline.report.summary import Report

TABLE_EXTENSIONS = {".csv", ".parquet", ".jsonl"}


def default_output_path(kind: str, *, now: dt.datetime, folder: Path = Path("outputs")) -> Path:
    """``outputs/<kind>-YYYYmmddTHHMMSSZ.parquet``: a new file per run, sortable by time."""
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return folder / f"{kind}-{stamp}.parquet"


def check_output_path(path: Path) -> None:
    """Refuse, before any work is done (UsageError, exit 2), an output file that couldn't be
    written at the end: an extension we can't write, a folder at its path, or a folder that
    can't be created or written in (read-only, a file in the way). Creates the folder when it
    is missing, as writing would; leaves nothing else behind."""
    _check_extension(path)
    if path.is_dir():
        raise UsageError(f"output file {path} is a folder", hint="give the path of a file")
    check_output_folder(path.parent)


def check_output_folder(folder: Path) -> None:
    """Create ``folder`` if missing and prove a file can be made in it (a temporary one,
    removed at once); raises UsageError (exit 2) saying why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileExistsError | NotADirectoryError):
            reason = "a file is in the way"
        raise UsageError(
            f"output folder {folder} can't be created: {reason}",
            hint="give an output path in a folder you can write to",
        ) from exc
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".write-check.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(
            f"output folder {folder} can't be written: {exc.strerror or exc}",
            hint="give an output path in a folder you can write to",
        ) from exc
    os.close(handle)
    os.unlink(probe)


# The endings of a file of each format we write one file of, the first the one to suggest.
FILE_EXTENSIONS = {"html": (".html", ".htm")}


def _check_extension(path: Path) -> None:
    if path.suffix.lower() not in TABLE_EXTENSIONS:
        raise UsageError(
            f"output file {path} has extension {path.suffix!r}",
            hint="use .csv, .parquet or .jsonl",
        )


def check_file_extension(out: Path, fmt: str) -> None:
    """Refuse (UsageError, exit 2) a file ``out`` whose name says another format than the
    ``fmt`` it would hold: a file named for one format opens as neither (Excel refuses a CSV
    named ``.xlsx``)."""
    wanted = FILE_EXTENSIONS.get(fmt, (f".{fmt}",))
    if out.suffix.lower() not in wanted:
        said = f"extension {out.suffix!r}" if out.suffix else "no extension"
        raise UsageError(
            f"--out {out} has {said}, but the file would be {fmt}",
            hint=f"end its name in {wanted[0]}, or choose the format with --format",
        )


def write_table(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` (CSV, Parquet or JSONL by extension) with ``write_private``."""
    _check_extension(path)
    suffix = path.suffix.lower()

    def write(stream: BinaryIO) -> None:
        if suffix == ".csv":
            write_csv(frame, stream)
        elif suffix == ".parquet":
            frame.write_parquet(stream)
        else:
            frame.write_ndjson(stream)

    return write_private(path, write)


def write_private_text(path: Path, text: str) -> Path:
    """``text`` as UTF-8 with ``write_private`` (surrogate escapes of a file name that isn't
    UTF-8 written as backslash escapes, not failing the write)."""
    data = text.encode("utf-8", "backslashreplace")

    def write(stream: BinaryIO) -> None:
        stream.write(data)

    return write_private(path, write)


def write_private(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write a file atomically, readable by its owner only (mode 0600).

    Result files may hold PINs, so the file is created 0600 from the start (never chmod-ed
    after the fact), and it appears under its name only once complete.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


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
