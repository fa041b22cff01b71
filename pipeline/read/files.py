"""Reading reservation files (CSV, Parquet or a workbook, by extension) into one table of
canonical columns.

Every value is kept as text here: planning parses it and turns a bad value into a row-level
rejection that names the column, instead of failing the whole file. What fails the whole file
(exit 2) is what makes its rows meaningless: unreadable, empty, malformed CSV, a missing column,
text read in the wrong encoding, dates that read two ways. Each file is read with its source's
settings (``sources``); the text encoding is ``encodings``' business (and ``mojibake``'s), the
header row and the rows after the data ``layout``'s, the dates' ``dates``', workbooks
``workbooks``', and the ``[input.skip]`` marks ``exclusions``'.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from pipeline.common.columns import CANONICAL_COLUMNS
from pipeline.common.errors import InputFileError
from pipeline.common.settings import Config
from pipeline.read.dates import normalise_stays
from pipeline.read.encodings import DecodedExport, decode_export
from pipeline.read.exclusions import EXCLUDED_COLUMN, mark_excluded, skip_columns
from pipeline.read.headers import (
    READ_COLUMNS,
    rename_to_canonical,
    require_columns,
    warn_unmatched_renames,
)
from pipeline.read.layout import drop_trailing_rows, find_header_row, guess_delimiter, split_lines
from pipeline.read.mojibake import (
    MOJIBAKE_COLUMN,
    NAME_COLUMNS,
    refuse_mojibake,
    suspect_mojibake,
)
from pipeline.read.sources import FileSettings, require_every_source, settings_by_file
from pipeline.read.unreadable import (
    UNREADABLE_COLUMN,
    UNREADABLE_SKIP,
    mark_unreadable,
    unreadable_skip,
)
from pipeline.read.workbooks import WORKBOOK_EXTENSIONS, read_workbook

log = logging.getLogger(__name__)

CSV_EXTENSIONS = {".csv", ".tsv", ".txt"}
PARQUET_EXTENSIONS = {".parquet", ".pq"}


def read_reservations(paths: Sequence[Path], config: Config) -> pl.DataFrame:
    """Read every file into one table of the canonical columns, all as stripped text or null.

    ``check_in`` / ``check_out`` are ISO text (or a value as written that didn't read, for
    planning to reject). Adds ``excluded_because`` (why ``[input.skip]`` excludes the row, or
    null), ``unreadable_because`` (why its text can't be trusted: bytes its encoding couldn't
    read, for planning to reject; or null), ``source_file`` and ``source_line`` (the line of
    the row in a CSV, the row number in a Parquet file, the sheet row in a workbook) so every
    result can point back at its input, and ``row`` (0-based position over all files). Each
    file is read with its source's
    settings (``settings_by_file``) from its header row; the rows after its data that hold no
    reservation are left out (one info line). Raises InputFileError for a file that can't be
    used or holds mis-decoded text; logs a warning line for what it read but the operator
    should know (a guessed encoding or date format, replacement characters, an
    ``[input.skip]`` key without a column, a file no source matches).
    """
    for path in paths:
        check_input_file(path)
    settings = settings_by_file(paths, config)
    frames = [_read_one(path, each) for path, each in zip(paths, settings, strict=True)]
    table = pl.concat(frames, how="vertical") if frames else _empty()
    # The CSV reader hands back one chunk per batch; planning is ~40 % faster on contiguous
    # columns, so pay for one copy here.
    return table.with_row_index("row").rechunk()


def check_inputs(paths: Sequence[Path], config: Config) -> None:
    """What ``apply`` checks before it opens the ledger: every file as ``check_input_file``
    does, then every configured source as ``require_every_source`` does (UsageError, exit 2,
    for a source whose export is missing: apply would orphan its codes)."""
    for path in paths:
        check_input_file(path)
    require_every_source(paths, config)


def check_input_file(path: Path) -> None:
    """Raise InputFileError (exit 2) unless ``path`` is a regular file we can name, saying what
    it is instead: missing, a directory, a FIFO (never opened: reading one would wait for a
    writer), a symlink loop or a broken symlink, a name that isn't UTF-8."""
    try:
        stats = path.stat()
    except OSError as exc:
        raise InputFileError(
            f"reservation file {path} {_stat_problem(path, exc)}",
            hint="check the path, and that tonight's export was written",
        ) from exc
    mode = stats.st_mode
    kind = _not_a_file(mode)
    if kind is not None:
        raise InputFileError(
            f"reservation file {path} is {kind}", hint="give a CSV, Parquet or workbook file"
        )
    if stats.st_size == 0:
        raise InputFileError(
            f"reservation file {path} is empty",
            hint="export it again from the property system: it wrote nothing",
        )
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError as exc:
        # Polars takes paths as UTF-8 text, and a row's source_file must be written out.
        raise InputFileError(
            f"reservation file {path} has a name that isn't UTF-8",
            hint="rename it, or link it under a UTF-8 name",
        ) from exc


def _stat_problem(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "is a symlink loop"
    if isinstance(exc, FileNotFoundError) and path.is_symlink():
        return f"is a symlink to {os.readlink(path)}, which does not exist"
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return "does not exist"
    return f"can't be read: {exc.strerror or exc}"


def _not_a_file(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO, not a file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a file"
    return "not a regular file"


def _read_one(path: Path, settings: FileSettings) -> pl.DataFrame:
    suffix = path.suffix.lower()
    decoded: DecodedExport | None = None  # a CSV file's text
    if suffix in CSV_EXTENSIONS:
        decoded = decode_export(path, settings.input.encoding, settings.section)
        frame, first_line = _scan_csv(decoded, settings)
    elif suffix in PARQUET_EXTENSIONS:
        # A Parquet file has no header line: its first row is row 1.
        frame, first_line = _scan_parquet(path), 1
    elif suffix in WORKBOOK_EXTENSIONS:
        table, first_line = read_workbook(path, settings)
        frame = table.lazy()
    else:
        raise InputFileError(
            f"reservation file {path} has extension {suffix!r}",
            hint="use .csv, .parquet, .xlsx, .xls or .ods",
        )
    try:
        schema = frame.collect_schema()
    except pl.exceptions.PolarsError as exc:
        header_row = settings.input.header_row
        if decoded is not None and header_row is not None:
            lines = _line_count(decoded)
            if header_row > lines:
                raise InputFileError(
                    f"reservation file {path} has no line {header_row}: it ends at line {lines}",
                    hint=f"set {settings.section} header_row to the line that holds the headers",
                ) from exc
        raise InputFileError(f"reservation file {path} has no readable header: {exc}") from exc
    renamed = rename_to_canonical(schema.names(), settings.columns)
    warn_unmatched_renames(path, schema.names(), settings.columns, settings.columns_section)
    require_columns(path, renamed, settings.columns_section, settings.section)
    present = [source for source, target in renamed.items() if target is not None]
    skips = skip_columns(settings.input.skip, renamed, str(path), settings.skip_section)
    for source in (*present, *skips):
        if not _is_textual(schema[source]):
            raise InputFileError(
                f"reservation file {path}: column {source} has type {schema[source]};"
                " the input needs text, date or number columns",
                hint="export that column as text",
            )
    found = {target for target in renamed.values() if target is not None}
    frame = frame.select(
        *(pl.col(source).alias(str(renamed[source])) for source in present),
        *(pl.lit(None, pl.String).alias(name) for name in CANONICAL_COLUMNS if name not in found),
        mark_excluded(skips, settings.skip_section),
        unreadable_skip(skips),
        # The names a code may carry and the skip values: a date can't turn into a name.
        suspect_mojibake(
            []
            if decoded is not None and decoded.is_ascii
            else [*(name for name in present if renamed[name] in NAME_COLUMNS), *skips]
        ),
    ).select(
        *(_clean(name) for name in READ_COLUMNS if name in CANONICAL_COLUMNS or name in found),
        EXCLUDED_COLUMN,
        UNREADABLE_SKIP,
        MOJIBAKE_COLUMN,
    )
    try:
        table = frame.collect()
    except pl.exceptions.PolarsError as exc:
        detail = str(exc).strip().splitlines()[0]
        raise InputFileError(
            f"reservation file {path} can't be parsed: {detail}",
            hint="check quoting and that every line has the same number of fields",
        ) from exc
    if table.height == 0:
        raise InputFileError(f"reservation file {path} has a header but no rows")
    table = table.with_columns(
        pl.lit(str(path)).alias("source_file"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + first_line).alias("source_line"),
    )
    table = drop_trailing_rows(table, str(path))
    if table.height == 0:
        raise InputFileError(f"reservation file {path} has a header but no reservations")
    refuse_mojibake(table, str(path), decoded.encoding if decoded else None, settings.section)
    table = normalise_stays(table, settings.input, str(path), settings.section)
    table = mark_unreadable(table, str(path), settings.section, settings.skip_section)
    return table.select(
        *CANONICAL_COLUMNS, EXCLUDED_COLUMN, UNREADABLE_COLUMN, "source_file", "source_line"
    )


def _clean(name: str) -> pl.Expr:
    """A column as stripped text, empty as null. A guest's name reaches the code's name on the
    lock and every file we write: a NUL, a line break or a tab in it is a broken export, never
    part of the name, so each run of spaces holding a control character becomes one space."""
    column = pl.col(name)
    if name == "guest_name":
        # Only runs holding a control character: ordinary spaces are left to the regex engine's
        # quick scan instead of being replaced one by one (1M names: 0.06 s instead of 0.13 s).
        column = column.str.replace_all(r"[\s\p{Cc}]*\p{Cc}[\s\p{Cc}]*", " ")
    return column.str.strip_chars().replace("", None).alias(name)


def _scan_csv(decoded: DecodedExport, settings: FileSettings) -> tuple[pl.LazyFrame, int]:
    """The CSV file as Polars scans it from its header row, and the line of its first row."""
    index = find_header_row(split_lines(decoded.head), settings.columns, settings.input.header_row)
    lines = decoded.head.split("\n", index + 1)
    header = lines[index] if index < len(lines) else ""
    frame = pl.scan_csv(
        decoded.source,
        separator=guess_delimiter(header),
        skip_lines=index,
        infer_schema=False,
        encoding="utf8-lossy",
        raise_if_empty=True,
        missing_columns="insert",
    )
    return frame, index + 2


def _line_count(decoded: DecodedExport) -> int:
    """How many lines the CSV file holds (its last may lack a line end)."""
    data = decoded.source.read_bytes() if isinstance(decoded.source, Path) else decoded.source
    return data.count(b"\n") + (not data.endswith(b"\n"))


def _scan_parquet(path: Path) -> pl.LazyFrame:
    try:
        frame = pl.scan_parquet(path)
        schema = frame.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputFileError(f"reservation file {path} is not a readable Parquet file") from exc
    # Columns that can't be text (lists, structs, binary) are left as they are: unused ones
    # are dropped, and _read_one names a used one.
    return frame.select(
        _as_text(name, dtype) if _is_textual(dtype) else pl.col(name)
        for name, dtype in schema.items()
    )


def _is_textual(dtype: pl.DataType) -> bool:
    """Whether a column of this type reads as the text a CSV export would carry."""
    return not (dtype.is_nested() or isinstance(dtype, pl.Binary | pl.Object))


def _as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    """Typed Parquet columns become the same text a CSV export would carry."""
    column = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            return column.dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias(name)
        return column.dt.strftime("%Y-%m-%dT%H:%M:%S").alias(name)
    if isinstance(dtype, pl.Date):
        return column.dt.strftime("%Y-%m-%d").alias(name)
    return column.cast(pl.String).alias(name)


def _empty() -> pl.DataFrame:
    schema = dict.fromkeys(CANONICAL_COLUMNS, pl.String)
    return pl.DataFrame(
        schema={
            **schema,
            EXCLUDED_COLUMN: pl.String,
            UNREADABLE_COLUMN: pl.String,
            "source_file": pl.String,
            "source_line": pl.Int64,
        }
    )
