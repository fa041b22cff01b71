"""Reading reservation files (CSV, Parquet or a workbook, by extension) into one table of
canonical columns.

Every value is kept as text here: planning parses it and turns a bad value into a row-level
rejection that names the column, instead of failing the whole file. What fails the whole file
(exit 2) is what makes its rows meaningless: unreadable, empty, malformed CSV, a missing column,
dates that read two ways. The text encoding is ``encodings``' business, the dates' ``dates``',
workbooks ``workbooks``', and the ``[input.skip]`` marks ``exclusions``'.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from pipeline.catalog.checks import did_you_mean
from pipeline.catalog.doors import name_key
from pipeline.errors import InputFileError
from pipeline.read.dates import normalise_stays
from pipeline.read.encodings import REPLACEMENT_CHARACTER, decode_export
from pipeline.read.exclusions import EXCLUDED_COLUMN, mark_excluded, skip_columns
from pipeline.read.workbooks import WORKBOOK_EXTENSIONS, read_workbook
from pipeline.settings import CANONICAL_COLUMNS, SPLIT_COLUMNS, Config

log = logging.getLogger(__name__)
# Whether a row's [input.skip] columns hold an unreadable byte (dropped before the table leaves).
_UNREADABLE_SKIP = "_unreadable_skip"

CSV_EXTENSIONS = {".csv", ".tsv", ".txt"}
PARQUET_EXTENSIONS = {".parquet", ".pq"}
_DELIMITERS = (",", ";", "\t", "|")
# The columns a file may bring: the canonical ones and the split check-in/out date and time.
_READ_COLUMNS = (*CANONICAL_COLUMNS, *SPLIT_COLUMNS)
# How many lines a warning names before it says "and N more".
_LINES_SHOWN = 10


def read_reservations(paths: Sequence[Path], config: Config) -> pl.DataFrame:
    """Read every file into one table of the canonical columns, all as stripped text or null.

    ``check_in`` / ``check_out`` are ISO text (or a value as written that didn't read, for
    planning to reject). Adds ``excluded_because`` (why ``[input.skip]`` excludes the row, or
    null), ``source_file`` and ``source_line`` (the line of the row in a CSV, the row number in
    a Parquet file, the sheet row in a workbook) so every result can point back at its input,
    and ``row`` (0-based position over all files). Raises InputFileError for a file that can't
    be used; logs a warning line for what it read but the operator should know (a guessed
    encoding or date format, replacement characters, an ``[input.skip]`` key without a column).
    """
    frames = [_read_one(path, config) for path in paths]
    table = pl.concat(frames, how="vertical") if frames else _empty()
    # The CSV reader hands back one chunk per batch; planning is ~40 % faster on contiguous
    # columns, so pay for one copy here.
    return table.with_row_index("row").rechunk()


def check_input_file(path: Path) -> None:
    """Raise InputFileError (exit 2) unless ``path`` is a regular file we can name, saying what
    it is instead: missing, a directory, a FIFO (never opened: reading one would wait for a
    writer), a symlink loop or a broken symlink, a name that isn't UTF-8."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise InputFileError(f"reservation file {path} {_stat_problem(path, exc)}") from exc
    kind = _not_a_file(mode)
    if kind is not None:
        raise InputFileError(
            f"reservation file {path} is {kind}", hint="give a CSV, Parquet or workbook file"
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


def _read_one(path: Path, config: Config) -> pl.DataFrame:
    suffix = path.suffix.lower()
    check_input_file(path)
    if suffix in CSV_EXTENSIONS:
        frame = _scan_csv(path, config.input.encoding)
    elif suffix in PARQUET_EXTENSIONS:
        frame = _scan_parquet(path)
    elif suffix in WORKBOOK_EXTENSIONS:
        frame = read_workbook(path, config.input.sheet).lazy()
    else:
        raise InputFileError(
            f"reservation file {path} has extension {suffix!r}",
            hint="use .csv, .parquet, .xlsx, .xls or .ods",
        )
    # Line 1 is the header in a CSV file and a sheet; a Parquet file has none.
    first_line = 1 if suffix in PARQUET_EXTENSIONS else 2
    try:
        schema = frame.collect_schema()
    except pl.exceptions.PolarsError as exc:
        raise InputFileError(f"reservation file {path} has no readable header: {exc}") from exc
    renamed = _rename_to_canonical(schema.names(), config)
    _warn_unmatched_renames(path, schema.names(), config)
    _require_columns(path, renamed)
    present = [source for source, target in renamed.items() if target is not None]
    skips = skip_columns(config.input.skip, renamed, str(path))
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
        mark_excluded(skips),
        # An [input.skip] value with an unreadable byte may fail to match: say so with the rest.
        pl.any_horizontal(
            pl.lit(False),
            *(
                pl.col(source).cast(pl.String).str.contains(REPLACEMENT_CHARACTER, literal=True)
                for source in skips
            ),
        ).alias(_UNREADABLE_SKIP),
    ).select(
        *(_clean(name) for name in _READ_COLUMNS if name in CANONICAL_COLUMNS or name in found),
        EXCLUDED_COLUMN,
        _UNREADABLE_SKIP,
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
    table = normalise_stays(table, config.input, str(path))
    _warn_replacement_characters(table, str(path))
    return table.select(*CANONICAL_COLUMNS, EXCLUDED_COLUMN, "source_file", "source_line")


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


def _scan_csv(path: Path, encoding: str | None) -> pl.LazyFrame:
    decoded = decode_export(path, encoding)
    separator = max(_DELIMITERS, key=decoded.header.count)
    return pl.scan_csv(
        decoded.source,
        separator=separator,
        infer_schema=False,
        encoding="utf8-lossy",
        raise_if_empty=True,
        missing_columns="insert",
    )


def _warn_replacement_characters(table: pl.DataFrame, source: str) -> None:
    """A warning naming the lines whose values hold U+FFFD: bytes the encoding couldn't read,
    which would otherwise reach a code's name on the lock as they are."""
    hit = pl.any_horizontal(
        pl.col(_UNREADABLE_SKIP).fill_null(False),
        *(
            pl.col(name).str.contains(REPLACEMENT_CHARACTER, literal=True)
            for name in CANONICAL_COLUMNS
        ),
    )
    lines = table.filter(hit)["source_line"]
    if lines.len() == 0:
        return
    shown = ", ".join(str(line) for line in lines.head(_LINES_SHOWN))
    more = f" and {lines.len() - _LINES_SHOWN} more" if lines.len() > _LINES_SHOWN else ""
    skip = (
        " (an [input.skip] value among them may not match)"
        if table[_UNREADABLE_SKIP].fill_null(False).any()
        else ""
    )
    log.warning(
        "%s: line(s) %s%s hold a replacement character (\N{REPLACEMENT CHARACTER}): bytes the"
        " encoding can't read%s; set [input] encoding to the file's encoding",
        source,
        shown,
        more,
        skip,
    )


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


def _rename_to_canonical(headers: list[str], config: Config) -> dict[str, str | None]:
    """Map each header to its canonical column (None when it is not one we use)."""
    renamed: dict[str, str | None] = {}
    mapping = {name_key(k): v for k, v in config.columns.items()}
    for header in headers:
        clean = header.strip().lstrip("\ufeff")
        target = mapping.get(name_key(clean))
        if target is None and clean.lower() in _READ_COLUMNS:
            target = clean.lower()
        if target is not None and target in renamed.values():
            target = None  # the first header that maps to a column wins
        renamed[header] = target
    return renamed


def _warn_unmatched_renames(path: Path, headers: list[str], config: Config) -> None:
    """One warning line per ``[columns]`` key that no header of the file matches (a typo, or
    another export's header): the column it names would otherwise be missing without a word."""
    present = {name_key(header.strip().lstrip("\ufeff")) for header in headers}
    for key, target in config.columns.items():
        if name_key(key) not in present:
            log.warning(
                f"[columns] {key!r} matches no header of {path}"
                f"{did_you_mean(key, headers, form='; {}')} (its headers: {', '.join(headers)};"
                f" {target} is read from a header of that name, if any)"
            )


def _require_columns(path: Path, renamed: dict[str, str | None]) -> None:
    found = set(renamed.values())
    missing = [
        name
        for name in ("reservation_id", "check_in", "check_out")
        if name not in found and f"{name}_date" not in found
    ]
    if not found & {"device_id", "door_name"}:
        missing.append("device_id or door_name")
    if not missing:
        return
    headers = list(renamed)
    hint = "rename the file's headers with a [columns] table in the config"
    if len(headers) == 1 and any(sep in headers[0] for sep in _DELIMITERS):
        hint = "the delimiter was guessed wrong: the header is one column"
    raise InputFileError(
        f"reservation file {path} lacks column {', '.join(missing)}; it has {headers}",
        hint=hint,
    )


def _empty() -> pl.DataFrame:
    schema = dict.fromkeys(CANONICAL_COLUMNS, pl.String)
    return pl.DataFrame(
        schema={
            **schema,
            EXCLUDED_COLUMN: pl.String,
            "source_file": pl.String,
            "source_line": pl.Int64,
        }
    )
