"""Dates and times as exports write them, turned into the ISO text planning parses.

``check_in`` / ``check_out`` may hold dates or date-times in the ``[input]`` formats, or be
split into ``check_in_date`` + ``check_in_time`` (and check-out) columns, which combine. Each
column becomes ``2027-03-25`` or ``2027-03-25T15:30`` text, so ``plan.stays`` stays the one
parser of stays; a value that doesn't match is passed on as written, and planning rejects its
row with the column named.

Without a configured format, a column that is ISO 8601 is left alone; any other is read in the
one candidate format that reads most of its values, and a warning line says which format and
which value settled it. When two formats read as many values but give different dates
(``03/04/2027``: March or April?), the read stops (InputFileError, exit 2): never a silent guess.

Formats are tried on a column's distinct values only (a year of stays has a few hundred), and
the results are mapped back onto the rows: the cost over ISO input is one hash lookup per value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import polars as pl

from pipeline.common.columns import SPLIT_COLUMNS
from pipeline.common.errors import InputFileError
from pipeline.common.input_settings import InputConfig
from pipeline.common.stays import FIRST_YEAR, LAST_YEAR

log = logging.getLogger(__name__)

STAY_DATE_COLUMNS = ("check_in", "check_out")

# Candidates when no format is configured, month-first and day-first alike, so that a column
# holding only days up to 12 is found ambiguous instead of read either way. ``%B`` also reads
# abbreviated names; ``%b`` is tried first so the warning shows the format as written.
DATE_FORMATS = (
    "%Y-%m-%d",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%d.%m.%Y",
    "%m.%d.%Y",
    "%m-%d-%Y",
    "%d-%m-%Y",
    "%Y/%m/%d",
    "%m/%d/%y",
    "%d/%m/%y",
    "%d.%m.%y",
    "%b %d, %Y",
    "%B %d, %Y",
    "%b %d %Y",
    "%B %d %Y",
    "%d %b %Y",
    "%d %B %Y",
    "%d-%b-%Y",
    "%d-%b-%y",
)
# Times of day never contradict each other: each value fits at most one of these.
TIME_FORMATS = ("%H:%M", "%H:%M:%S", "%I:%M %p", "%I:%M:%S %p", "%I:%M%p")
# ISO times are always accepted beside a configured time format.
ISO_TIME_FORMATS = ("%H:%M", "%H:%M:%S")
ISO_FORMAT = DATE_FORMATS[0]
# What planning reads as it is: an ISO date, with a time and an offset or not.
_ISO_STAY = (
    r"^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*"
    r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?)?$"
)
_ISO_TIME = r"^\d{1,2}:\d{2}(?::\d{2})?$"


@dataclass(frozen=True)
class Reading:
    """How a column's distinct ``values`` read in ``date_format`` (None for a time column):
    ``iso``, aligned with them, is the ISO text or null where a value doesn't read; ``shown``
    is the format with the time formats used, for messages."""

    values: pl.Series
    iso: pl.Series
    date_format: str | None
    shown: str


def normalise_stays(
    frame: pl.DataFrame, settings: InputConfig, source: str, section: str
) -> pl.DataFrame:
    """Replace ``check_in`` / ``check_out`` (and any split columns) by ISO text.

    ``frame`` holds the stay columns as stripped text or null, and ``source_line``; ``source``
    names the file in messages, ``section`` where its settings are written. Returns the frame
    without the split columns. Raises InputFileError when a column without a configured format
    can be read two ways.
    """
    isos: dict[str, pl.Expr] = {}
    for column in (*STAY_DATE_COLUMNS, *SPLIT_COLUMNS):
        if column in frame.columns:
            is_time = column.endswith("_time")
            isos[column] = _to_iso(frame, column, settings, source, section, is_time=is_time)
    combined = []
    for stay in STAY_DATE_COLUMNS:
        date_column = f"{stay}_date" if f"{stay}_date" in isos else stay
        date_iso = isos.get(date_column, pl.lit(None, pl.String))
        date = pl.coalesce(date_iso, pl.col(date_column)) if date_column in isos else date_iso
        time_column = f"{stay}_time"
        if time_column not in isos:
            combined.append(date.alias(stay))
            continue
        time_iso, time = isos[time_column], pl.col(time_column)
        combined.append(
            pl.when(time.is_null())
            .then(date)
            .when(date_iso.is_not_null() & time_iso.is_not_null())
            .then(pl.concat_str(date_iso, pl.lit("T"), time_iso))
            # A part that didn't read: both as written, for the row's rejection to show.
            .otherwise(pl.concat_str(pl.col(date_column), time, separator=" "))
            .alias(stay)
        )
    split = [column for column in SPLIT_COLUMNS if column in frame.columns]
    return frame.with_columns(combined).drop(split)


def _to_iso(
    frame: pl.DataFrame,
    column: str,
    settings: InputConfig,
    source: str,
    section: str,
    *,
    is_time: bool,
) -> pl.Expr:
    """The column as ISO text, null where a value doesn't read (the caller keeps those)."""
    values = frame.get_column(column).drop_nulls().unique(maintain_order=True)
    configured = settings.time_format if is_time else settings.date_format
    pattern = _ISO_TIME if is_time else _ISO_STAY
    if configured is None and (values.len() == 0 or values.str.contains(pattern).all()):
        return pl.col(column)
    times = [*_with_iso(settings.time_format)] if settings.time_format else list(TIME_FORMATS)
    if is_time:
        reading = _time_reading(values, times)
    elif configured is not None:
        reading = _date_reading(values, configured, times)
    else:
        reading = _detect_date_format(frame, column, values, source, section, times)
    if reading.date_format != ISO_FORMAT or configured is not None:
        # (An ISO column with a few bad values is today's input: the rows say it, no line.)
        _warn_unread(frame, column, reading, pattern, source)
    return pl.col(column).replace_strict(reading.values, reading.iso, default=None)


def _with_iso(time_format: str) -> list[str]:
    """The configured time format, then the ISO ones (always accepted)."""
    return [time_format, *(fmt for fmt in ISO_TIME_FORMATS if fmt != time_format)]


def _time_reading(values: pl.Series, formats: list[str]) -> Reading:
    value = pl.col("value")
    read = pl.coalesce(value.str.to_time(fmt, strict=False) for fmt in formats)
    iso = pl.DataFrame({"value": values}).select(
        read.dt.strftime("%H:%M:%S").str.strip_suffix(":00")
    )
    return Reading(values, iso.to_series(), None, " or ".join(formats))


def _date_reading(values: pl.Series, date_format: str, time_formats: list[str]) -> Reading:
    """Each value as a date in ``date_format``, or a date-time in it plus one of the time
    formats; a year outside the planner's range doesn't count as read."""
    value = pl.col("value")
    table = pl.DataFrame({"value": values}).with_columns(
        *(
            value.str.to_datetime(f"{date_format} {fmt}", strict=False, time_unit="ms").alias(
                f"_t{n}"
            )
            for n, fmt in enumerate(time_formats)
        ),
        _day=value.str.to_date(date_format, strict=False),
    )
    moment = pl.coalesce([pl.col(f"_t{n}") for n in range(len(time_formats))] or [pl.lit(None)])
    moment = moment.cast(pl.Datetime("ms"))
    year = pl.coalesce(moment.dt.year(), pl.col("_day").dt.year())
    iso = table.select(
        pl.when(year.is_between(FIRST_YEAR, LAST_YEAR)).then(
            pl.coalesce(
                moment.dt.strftime("%Y-%m-%dT%H:%M:%S").str.strip_suffix(":00"),
                pl.col("_day").dt.strftime("%Y-%m-%d"),
            )
        )
    ).to_series()
    used = [
        fmt for n, fmt in enumerate(time_formats) if table.get_column(f"_t{n}").is_not_null().any()
    ]
    shown = f"{date_format} {' or '.join(used)}" if used else date_format
    return Reading(values, iso, date_format, shown)


def _warn_unread(
    frame: pl.DataFrame, column: str, reading: Reading, iso_pattern: str, source: str
) -> None:
    """A warning for the values the format doesn't read (ISO ones are read by planning)."""
    unread = reading.iso.is_null() & ~reading.values.str.contains(iso_pattern)
    if not unread.any():
        return
    rows = frame.filter(pl.col(column).is_in(reading.values.filter(unread).implode()))
    log.warning(
        "%s: %d %s value(s) don't read as %s (e.g. %r on line %d): their rows are rejected",
        source,
        rows.height,
        column,
        reading.shown,
        rows[column][0],
        rows["source_line"][0],
    )


def _detect_date_format(
    frame: pl.DataFrame,
    column: str,
    values: pl.Series,
    source: str,
    section: str,
    times: list[str],
) -> Reading:
    # ISO values are read by planning whatever the format: they settle nothing here (a column
    # mixing 2027-03-25 and 03/25/2027 is month-first, not ambiguous).
    is_iso = values.str.contains(_ISO_STAY)
    values = values.filter(~is_iso)
    readings = [_date_reading(values, fmt, times) for fmt in DATE_FORMATS]
    counts = [reading.iso.is_not_null().sum() for reading in readings]
    best = max(counts)
    if best == 0 and is_iso.any():
        # An ISO column with a few bad values is today's input: the rows say it, no line.
        return readings[0]
    if best == 0:
        # Nothing reads: every row is rejected, naming its value; say it once here too.
        example = values[0]
        line = frame.filter(pl.col(column) == example)["source_line"][0]
        log.warning(
            "%s: %s values read in no known date format (e.g. %r on line %d): their rows are"
            " rejected; set %s date_format (and time_format)",
            source,
            column,
            example,
            line,
            section,
        )
        return readings[0]
    tied = [reading for reading, count in zip(readings, counts, strict=True) if count == best]
    chosen = tied[0]
    for other in tied[1:]:
        differs = ~chosen.iso.eq_missing(other.iso)
        if differs.any():
            example = values.filter(differs)[0]
            raise InputFileError(
                f"reservation file {source}: {column} can be read as {chosen.shown} or as"
                f" {other.shown} (e.g. {example!r}), and no value settles which",
                hint=f'set {section} date_format, e.g. date_format = "{chosen.date_format}"',
            )
    if chosen.date_format != ISO_FORMAT:
        log.warning("%s", _settled_by(frame, column, chosen, readings, source, section))
    return chosen


def _settled_by(
    frame: pl.DataFrame,
    column: str,
    chosen: Reading,
    readings: list[Reading],
    source: str,
    section: str,
) -> str:
    """The warning for a detected format: the value (and its line) no other format reads."""
    read = chosen.iso.is_not_null()
    # Rivals: the formats that read some value otherwise (not %B beside %b, say).
    rivals = [reading for reading in readings if not chosen.iso.eq_missing(reading.iso).all()]
    rival = max(rivals, key=lambda reading: int((reading.iso.is_not_null() & read).sum()))
    only_chosen = read & rival.iso.is_null()
    rival_reads = bool((rival.iso.is_not_null() & read).any()) and bool(only_chosen.any())
    example = chosen.values.filter(only_chosen if rival_reads else read)[0]
    line = frame.filter(pl.col(column) == example)["source_line"][0]
    why = (
        f"{example!r} on line {line} can't be {rival.date_format}"
        if rival_reads
        else f"as {example!r} on line {line} is written"
    )
    return f"{source}: {column} read as {chosen.shown} ({why}); set {section} date_format to say so"
