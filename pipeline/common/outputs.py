"""Writing output files: result tables (CSV, Parquet or JSONL by extension) and text, each
atomically and readable by its owner only (mode 0600: results hold PINs); and the checks, made
before any work, that they can be written where asked."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import polars as pl

from pipeline.common.csvfiles import write_csv
from pipeline.common.errors import UsageError

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


def _check_extension(path: Path) -> None:
    if path.suffix.lower() not in TABLE_EXTENSIONS:
        raise UsageError(
            f"output file {path} has extension {path.suffix!r}",
            hint="use .csv, .parquet or .jsonl",
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
