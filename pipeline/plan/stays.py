"""Parsing a reservation's ``check_in`` / ``check_out`` text into lock-local dates and times.

Accepted: a date (``2027-03-12``), a local date-time without offset (``2027-03-12T15:00``,
``2027-03-12 15:00:00``) meaning the lock's own local time, or a date-time with an explicit
offset or ``Z``, which is converted to the lock's zone once the door is known.
"""

from __future__ import annotations

import polars as pl

from pipeline.catalog.doors import is_known_zone
from pipeline.common.stays import FIRST_YEAR, LAST_YEAR

# What may follow the date: a time of day, then an optional offset.
_TIME_PART = (
    r"^[Tt ](?<hour>\d{1,2}):(?<minute>\d{2})(?::(?<second>\d{2})(?:\.\d+)?)?"
    r"\s*(?<offset>[Zz]|[+-]\d{2}(?::?\d{2})?)?$"
)
# UTC offsets in use run from -12:00 to +14:00.
MAX_OFFSET_MINUTES = 14 * 60
STAY_FORMATS = "YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (lock-local) or with an offset/Z, year 2000-2099"


def parse_stays(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """Add ``{column}_date``, ``{column}_time``, ``{column}_offset_min`` and ``{column}_ok``.

    ``_time`` is null for a date-only value; ``_offset_min`` is null unless an offset was
    given; ``_ok`` is False when the text is present but not one of the accepted forms.
    The date is cut from the first ten characters of every value; the regular expression
    only runs on the values that carry more than a date.
    """
    text = pl.col(column)
    frame = frame.with_columns(
        text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).alias(f"{column}_date"),
        pl.lit(None, pl.Time).alias(f"{column}_time"),
        pl.lit(None, pl.Int32).alias(f"{column}_offset_min"),
        (text.is_null() | (text.str.len_bytes() == 10)).alias(f"{column}_ok"),
    )
    timed = frame.filter(text.str.len_bytes() > 10).select(
        "row", text.str.slice(10).str.extract_groups(_TIME_PART).alias("_parts")
    )
    if timed.height == 0:
        return frame.with_columns(_date_ok(column))
    timed = timed.unnest("_parts")
    clock = pl.format(
        "{}:{}:{}", pl.col("hour").str.zfill(2), "minute", pl.col("second").fill_null("00")
    ).str.to_time("%H:%M:%S", strict=False)
    digits = pl.col("offset").str.replace_all(r"[^0-9]", "")
    offset_minutes = digits.str.slice(2, 2).replace("", "0").cast(pl.Int32, strict=False)
    minutes = digits.str.slice(0, 2).cast(pl.Int32, strict=False) * 60 + offset_minutes
    sign = pl.when(pl.col("offset").str.starts_with("-")).then(-1).otherwise(1)
    timed = timed.select(
        "row",
        clock.alias(f"{column}_time"),
        pl.when(pl.col("offset").str.to_uppercase() == "Z")
        .then(0)
        .otherwise(sign * minutes)
        .cast(pl.Int32)
        .alias(f"{column}_offset_min"),
        (
            clock.is_not_null()
            & (
                pl.col("offset").is_null()
                | (pl.col("offset").str.to_uppercase() == "Z")
                | ((offset_minutes < 60) & (minutes <= MAX_OFFSET_MINUTES))
            )
        ).alias(f"{column}_ok"),
    )
    frame = frame.update(timed, on="row")
    return frame.with_columns(_date_ok(column))


def _date_ok(column: str) -> pl.Expr:
    date = pl.col(f"{column}_date")
    in_range = date.dt.year().is_between(FIRST_YEAR, LAST_YEAR)
    is_ok = pl.col(column).is_null() | (pl.col(f"{column}_ok") & date.is_not_null() & in_range)
    return is_ok.alias(f"{column}_ok")


def to_lock_local(frame: pl.DataFrame, column: str, zone_column: str) -> pl.DataFrame:
    """Convert ``column``'s date/time that carried an offset into the lock's local date/time.

    The instant itself is kept as ``{column}_utc`` (naive UTC; added only when some row
    carried an offset): in the hour a DST change repeats, the local time alone can't say which
    of the two it was, and rounding measures from the instant.
    Works zone by zone (Polars takes a zone as a literal), so the cost is one pass per zone.
    """
    has_offset = pl.col(f"{column}_offset_min").is_not_null()
    needs = frame.filter(has_offset & pl.col(zone_column).is_not_null())
    converted = []
    for (zone,), part in needs.group_by(zone_column):
        if not is_known_zone(str(zone)):
            continue  # planning rejects these rows with unknown_time_zone
        instant = pl.col(f"{column}_date").dt.combine(pl.col(f"{column}_time")) - pl.duration(
            minutes=pl.col(f"{column}_offset_min")
        )
        local = (
            instant.dt.replace_time_zone("UTC")
            .dt.convert_time_zone(str(zone))
            .dt.replace_time_zone(None)
        )
        converted.append(
            part.select(
                "row",
                local.dt.date().alias(f"{column}_date"),
                local.dt.time().alias(f"{column}_time"),
                instant.alias(f"{column}_utc"),
            )
        )
    if not converted:
        return frame
    frame = frame.with_columns(pl.lit(None, pl.Datetime("us")).alias(f"{column}_utc"))
    return frame.update(pl.concat(converted), on="row")
