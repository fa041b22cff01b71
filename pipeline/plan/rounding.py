"""Rounding a booking's times to a user level, as Seam does, before anything is sent.

Seam rounds an Oracode booking's times to a user level (a time slot) when that takes at most
an hour, and makes the code with the level's times, not the booking's ("No time slots found"
beyond it). The plan does the same here, so that what is sent, tagged, budgeted and recorded
is the code Seam really makes: the level's exact times.

How far a level is from a booking, at each end: the real time between the booking's instant and
the level's nearest instant at that end (its time of day on the booking's date, or on the day
before or after when that is nearer: a 23:45 check-in is 15 minutes from a 00:00 level the next
day). Real time rather than the difference of the wall-clock times, because Seam rounds booking
*instants* to the slot's, and the guest's door opens by the real clock: on the night the clocks
go forward, 01:30 → 03:00 is 30 minutes, not 90; the two only differ across a DST change. A
level is *within* the tolerance when both ends are (60 minutes itself is within, as Seam's
"exceeds one hour" reads). The *nearest* level has the nearest farther end, then the smaller sum
of both ends; levels equally near are a tie for the caller to settle.

A wall time a DST change skips (02:30 on a spring-forward night) is read with the offset in
force before the change, as Python's zoneinfo reads it; one that happens twice means the
earlier instant. A booking written with an offset or ``Z`` is its own instant.
"""

from __future__ import annotations

import polars as pl

from pipeline.catalog.doors import is_known_zone
from pipeline.common.reasons import is_open, note, text

SECONDS_PER_DAY = 86_400
# How a rounded row's message begins (the summaries count those rows by it).
ROUNDED_NOTE = "rounded to user level"
# A biweekly user level is a code valid for exactly two weeks (product page, "User Levels").
BIWEEKLY_DAYS = 14
# Transitions of one zone are months apart; three hours before a skipped wall time is always on
# the near side of its gap, where the offset in force before the change applies.
_BEFORE_A_GAP = pl.duration(hours=3)
_INSTANT = pl.Datetime("us")


def booking_instants(rows: pl.DataFrame) -> pl.DataFrame:
    """Add ``_in_utc`` / ``_out_utc``: each end of the booking as an instant (naive UTC).

    ``rows`` has the lock-local ``check_in_date`` / ``_time`` (and ``check_out_*``), the
    ``door_zone`` they are in, and, when some rows gave an offset, ``check_in_utc`` /
    ``check_out_utc`` (``stays.to_lock_local``): those instants are taken as they are.
    """
    for column, out in (("check_in", "_in_utc"), ("check_out", "_out_utc")):
        wall = pl.col(f"{column}_date").dt.combine(pl.col(f"{column}_time"))
        rows = _instants(rows, wall, "door_zone", out)
        if f"{column}_utc" in rows.columns:
            rows = rows.with_columns(pl.coalesce(f"{column}_utc", out).alias(out))
    return rows


def measure_levels(candidates: pl.DataFrame) -> pl.DataFrame:
    """How far each candidate level is from its row's booking, end by end.

    ``candidates`` are rows (``booking_instants`` done) joined with levels
    (``level_check_in``, ``level_check_out``, ``level_zone``). Adds ``_shift_in`` /
    ``_shift_out`` (days from the booking's date to the level's nearest instant: -1, 0 or 1),
    ``_off_in`` / ``_off_out`` (seconds from the booking to the level, signed: positive when
    the level is later), ``_far`` (the farther end, seconds) and ``_sum`` (both ends).
    """
    for end, booked, level in (
        ("in", "check_in", "level_check_in"),
        ("out", "check_out", "level_check_out"),
    ):
        wall_gap = _seconds_of_day(pl.col(level)) - _seconds_of_day(pl.col(f"{booked}_time"))
        shift = (
            pl.when(wall_gap > SECONDS_PER_DAY // 2)
            .then(-1)
            .when(wall_gap < -SECONDS_PER_DAY // 2)
            .then(1)
            .otherwise(0)
        )
        candidates = candidates.with_columns(shift.cast(pl.Int32).alias(f"_shift_{end}"))
        level_wall = (
            pl.col(f"{booked}_date") + pl.duration(days=pl.col(f"_shift_{end}"))
        ).dt.combine(pl.col(level))
        candidates = _instants(candidates, level_wall, "level_zone", f"_level_{end}_utc")
        offset = (pl.col(f"_level_{end}_utc") - pl.col(f"_{end}_utc")).dt.total_seconds()
        candidates = candidates.with_columns(offset.alias(f"_off_{end}"))
    return candidates.drop("_level_in_utc", "_level_out_utc").with_columns(
        _far=pl.max_horizontal(pl.col("_off_in").abs(), pl.col("_off_out").abs()),
        _sum=pl.col("_off_in").abs() + pl.col("_off_out").abs(),
    )


def _seconds_of_day(clock: pl.Expr) -> pl.Expr:
    return clock.cast(pl.Int64) // 1_000_000_000


def _instants(frame: pl.DataFrame, wall: pl.Expr, zone: str, out: str) -> pl.DataFrame:
    """Add ``out``: the instant (naive UTC) of the wall time ``wall`` in the zone named by the
    column ``zone``; each distinct (zone, wall time) is worked out once. Null for a zone Polars
    doesn't know (the plan rejects those rows for it)."""
    frame = frame.with_columns(wall.alias("_wall"))
    walls = frame.select(zone, "_wall").drop_nulls().unique()
    parts = [
        _localize(part, str(name))
        for (name,), part in walls.group_by(zone)
        if is_known_zone(str(name))
    ]
    schema = {zone: pl.String(), "_wall": _INSTANT, out: _INSTANT}
    known = pl.concat(parts).rename({"_utc": out}) if parts else pl.DataFrame(schema=schema)
    return frame.join(known, on=[zone, "_wall"], how="left", maintain_order="left").drop("_wall")


def _localize(walls: pl.DataFrame, zone: str) -> pl.DataFrame:
    def utc(wall: pl.Expr) -> pl.Expr:
        return (
            wall.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone("UTC")
            .dt.replace_time_zone(None)
        )

    wall = pl.col("_wall")
    offset_before = (wall - _BEFORE_A_GAP) - utc(wall - _BEFORE_A_GAP)
    return walls.with_columns(_utc=pl.coalesce(utc(wall), wall - offset_before))


def _minutes(seconds: pl.Expr) -> pl.Expr:
    """Whole minutes of a distance, for messages (a booking to the second rounds to them)."""
    return (seconds.abs() / 60).round(0).cast(pl.Int64)


def _direction(seconds: pl.Expr) -> pl.Expr:
    return pl.when(seconds > 0).then(text("later")).otherwise(text("earlier"))


def _clock_change(end: str, booked: str, level: str) -> pl.Expr:
    """``, across the clock change`` where the wall clocks differ by another amount than the
    real time (a DST change between the booking and the level); else empty."""
    wall_gap = (
        _seconds_of_day(pl.col(level))
        - _seconds_of_day(pl.col(f"{booked}_time"))
        + pl.col(f"_shift_{end}") * SECONDS_PER_DAY
    )
    return pl.when(wall_gap != pl.col(f"_off_{end}")).then(text(", across the clock change"))


def _day(end: str) -> pl.Expr:
    shift = pl.col(f"_shift_{end}")
    return (
        pl.when(shift > 0)
        .then(text(" the next day"))
        .when(shift < 0)
        .then(text(" the day before"))
        .otherwise(text(""))
    )


def moved_ends() -> pl.Expr:
    """What rounding did to a row, end by end, for its message: ``check-in 15:45 → 16:00 (15
    min later), check-out 10:15 → 11:00 (45 min later)``; an end already on the level's time is
    ``check-in 16:00 as booked``. Needs ``measure_levels``' columns and the level's times."""
    ends = []
    for end, label, booked, level in (
        ("in", "check-in", "check_in", "level_check_in"),
        ("out", "check-out", "check_out", "level_check_out"),
    ):
        offset = pl.col(f"_off_{end}")
        moved = pl.format(
            f"{label} {{}} → {{}}{{}} ({{}} min {{}}{{}})",
            _clock(f"{booked}_time"),
            _clock(level),
            _day(end),
            _minutes(offset),
            _direction(offset),
            _clock_change(end, booked, level).fill_null(""),
        )
        kept = pl.format(f"{label} {{}} as booked", _clock(f"{booked}_time"))
        ends.append(pl.when(offset == 0).then(kept).otherwise(moved))
    return pl.concat_str(ends, separator=", ")


def how_far() -> pl.Expr:
    """How far a level is from a booking, for a rejection: ``45 min later at check-in and 75
    min earlier at check-out``; an end on the level's time is ``exact at check-in``."""
    ends = []
    for end, label in (("in", "check-in"), ("out", "check-out")):
        offset = pl.col(f"_off_{end}")
        ends.append(
            pl.when(offset == 0)
            .then(text(f"exact at {label}"))
            .otherwise(pl.format(f"{{}} min {{}} at {label}", _minutes(offset), _direction(offset)))
        )
    return pl.concat_str(ends, separator=" and ")


def _clock(column: str) -> pl.Expr:
    return pl.col(column).dt.strftime("%H:%M")


# What rounding leaves on a row: how each end moves (``measure_levels``), and for a row no level
# is near enough, the nearest one (for its message).
MEASURED = ("_shift_in", "_shift_out", "_off_in", "_off_out")
NEAREST = ("_near_name", "_near_in", "_near_out")
SLOT_COLUMNS = (*MEASURED, "_far", *NEAREST)
_MEASURED_SCHEMA: dict[str, pl.DataType] = {
    "_shift_in": pl.Int32(),
    "_shift_out": pl.Int32(),
    "_off_in": pl.Int64(),
    "_off_out": pl.Int64(),
}
_NEAREST_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.UInt32(),
    **_MEASURED_SCHEMA,
    "_near_name": pl.String(),
    "_near_in": pl.Time(),
    "_near_out": pl.Time(),
}


def stay_days() -> pl.Expr:
    """Days from the check-in date to the check-out date."""
    return (pl.col("check_out_date") - pl.col("check_in_date")).dt.total_days()


def stay_columns(frame: pl.DataFrame) -> list[str]:
    """The booking's columns rounding measures from (its instants only where some were given)."""
    columns = ["check_in_date", "check_in_time", "check_out_date", "check_out_time"]
    return columns + [c for c in ("check_in_utc", "check_out_utc") if c in frame.columns]


def round_unmatched(
    rows: pl.DataFrame, candidates: pl.DataFrame, eligible: pl.DataFrame, tolerance: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Round the rows with times that no level fitting their stay has exactly.

    ``rows`` and their exact ``candidates`` are ``levels``' (a ``_rank`` of 0: fits the stay's
    length). A row with times, no named level and no such candidate meets every eligible level
    of its door: its candidates become the levels within ``tolerance`` seconds at both ends
    (hourly levels only: a daily-bound level keeps its exact rules, the same times or the same
    time at both ends), each with ``measure_levels``' columns and its rank. Returns the
    candidates (every row's, the others' measured as on time) and, for the rows left with none,
    the nearest hourly level (``NEAREST`` and how far it is) for their message.
    """
    matched = candidates.filter(pl.col("_rank") == 0).select("row")
    needs = rows.filter(pl.col("_timed") & ~pl.col("_named")).join(matched, on="row", how="anti")
    if needs.is_empty():
        return candidates, pl.DataFrame(schema=_NEAREST_SCHEMA)
    hourly = eligible.filter(~pl.col("is_24_hour"))
    measured = measure_levels(booking_instants(needs).join(hourly, on="device_id"))
    # A level at the row's own times is on time, whatever a DST change does to the instants.
    same_times = (pl.col("level_check_in") == pl.col("check_in_time")) & (
        pl.col("level_check_out") == pl.col("check_out_time")
    )
    measured = measured.with_columns(
        pl.when(same_times).then(0).otherwise(pl.col(c)).alias(c)
        for c in (*MEASURED, "_far", "_sum")
    )
    window_days = (
        pl.col("check_out_date")
        + pl.duration(days=pl.col("_shift_out"))
        - (pl.col("check_in_date") + pl.duration(days=pl.col("_shift_in")))
    ).dt.total_days()
    fitting = measured.filter(pl.col("_far") <= tolerance).with_columns(
        _rank=pl.when(~pl.col("is_biweekly") | (window_days == BIWEEKLY_DAYS)).then(0).otherwise(1)
    )
    # The exact candidates these rows had are found again among the measured levels, except a
    # daily-bound level's (its times, or the same time at both ends): those stay as they were.
    unmeasured = candidates.join(needs.select("row"), on="row", how="anti")
    daily = candidates.join(needs.select("row"), on="row", how="semi").filter("is_24_hour")
    on_time = [pl.lit(0, dtype).alias(name) for name, dtype in _MEASURED_SCHEMA.items()]
    on_time += [pl.lit(0, pl.Int64).alias("_far"), pl.lit(0, pl.Int64).alias("_sum")]
    others = pl.concat([unmeasured, daily], how="diagonal_relaxed").with_columns(on_time)
    chosen = pl.concat([fitting.select("row"), daily.select("row")])
    nearest = (
        measured.filter(pl.col("_far").is_not_null())
        .join(chosen, on="row", how="anti")
        .sort("row", "_far", "_sum", "level_prefix")
        .group_by("row", maintain_order=True)
        .first()
        .select(
            "row",
            *MEASURED,
            _near_name="level_name",
            _near_in="level_check_in",
            _near_out="level_check_out",
        )
    )
    return pl.concat([others, fitting], how="diagonal_relaxed"), nearest


def measure_named(frame: pl.DataFrame, nearest: pl.DataFrame, tolerance: int) -> pl.DataFrame:
    """Give every row ``SLOT_COLUMNS``: those its rounding left (``round_unmatched``), the
    ``nearest`` level of a row none was near enough, and for a row that names an hourly level
    and gives other times, how far that level is (the level is rounded to, within
    ``tolerance``: ``level_rejections`` rejects the row beyond it)."""
    frame = frame.with_columns(
        pl.lit(None, dtype).alias(name)
        for name, dtype in _NEAREST_SCHEMA.items()
        if name not in frame.columns
    )
    if not nearest.is_empty():
        frame = frame.update(nearest, on="row")
    off_level = ~(
        (pl.col("level_check_in") == pl.col("check_in_time"))
        & (pl.col("level_check_out") == pl.col("check_out_time"))
    )
    named = frame.filter(
        is_open()
        & pl.col("_named")
        & pl.col("_timed")
        & pl.col("level_name").is_not_null()
        & ~pl.col("is_24_hour")
        & off_level
    )
    if not named.is_empty():
        booked = named.select(
            "row",
            "door_zone",
            *stay_columns(frame),
            "level_check_in",
            "level_check_out",
            "level_zone",
        )
        frame = frame.update(
            measure_levels(booking_instants(booked)).select("row", *MEASURED), on="row"
        )
    return frame.with_columns(
        _far=pl.max_horizontal(pl.col("_off_in").abs(), pl.col("_off_out").abs())
    )


def apply_rounding(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows planned on a level whose times aren't the booking's: their dates move with a
    level's time across midnight, and their message says how each end moved (they stay open:
    a later rule may still reject them)."""
    moved = (
        is_open()
        & pl.col("level_name").is_not_null()
        & ((pl.col("_off_in") != 0) | (pl.col("_off_out") != 0)).fill_null(False)
    )
    shifted = moved & ((pl.col("_shift_in") != 0) | (pl.col("_shift_out") != 0))
    if frame.select(shifted.any()).item():
        frame = frame.with_columns(
            pl.when(shifted)
            .then(pl.col(f"{column}_date") + pl.duration(days=pl.col(f"_shift_{end}")))
            .otherwise(pl.col(f"{column}_date"))
            .alias(f"{column}_date")
            for column, end in (("check_in", "in"), ("check_out", "out"))
        ).with_columns(_stay_days=stay_days())
    return note(frame, moved, pl.format(f"{ROUNDED_NOTE} {{}}: {{}}", "level_name", moved_ends()))
