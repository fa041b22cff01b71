"""Lock-local windows: a reservation's dates at its user level's times, in the level's zone,
each end written with that instant's own UTC offset (DST can change it mid-stay).
"""

from __future__ import annotations

import polars as pl

from pipeline.catalog.doors import known_zones
from pipeline.common.reasons import NONEXISTENT_LOCAL_TIME, UNKNOWN_TIME_ZONE, reject, text


def compute_windows(frame: pl.DataFrame, levels: pl.DataFrame) -> pl.DataFrame:
    """starts_at/ends_at on the reservation's dates at the level's times, in the level's zone."""
    frame = frame.with_columns(
        _start_local=pl.col("check_in_date").dt.combine(pl.col("level_check_in")),
        _end_local=pl.col("check_out_date").dt.combine(pl.col("level_check_out")),
    )
    frame = reject(
        frame,
        pl.col("level_name").is_not_null()
        & ~pl.col("level_zone").is_in(known_zones(frame, "level_zone")).fill_null(False),
        UNKNOWN_TIME_ZONE,
        pl.format("user level {} has an unknown time zone {}", "level_name", "level_zone"),
    )
    # A window end depends only on (date, level time, zone): localise each distinct one once,
    # from the stay dates in use and the catalog's (zone, time) pairs (a few hundred rows).
    dates = pl.concat([frame["check_in_date"], frame["check_out_date"]]).drop_nulls().unique()
    pairs = pl.concat(
        [
            levels.select("level_zone", pl.col(time).alias("_time"))
            for time in ("level_check_in", "level_check_out")
        ]
    )
    pairs = pairs.filter(pl.col("level_zone").is_in(known_zones(levels, "level_zone"))).unique()
    walls = pairs.join(dates.alias("_date").to_frame(), how="cross").select(
        "level_zone", pl.col("_date").dt.combine(pl.col("_time")).alias("_wall")
    )
    localized = [_localize(part, str(zone)) for (zone,), part in walls.group_by("level_zone")]
    schema: dict[str, pl.DataType] = {
        "level_zone": pl.String(),
        "_wall": pl.Datetime("us"),
        "_local": pl.String(),
        "_utc": pl.Datetime("us", "UTC"),
        "_utc_text": pl.String(),
    }
    instants = pl.concat(localized) if localized else pl.DataFrame(schema=schema)
    for naive, name in (("_start_local", "starts_at"), ("_end_local", "ends_at")):
        frame = frame.join(
            instants.rename(
                {
                    "_wall": naive,
                    "_local": name,
                    "_utc": f"{name}_utc",
                    "_utc_text": f"{name}_utc_text",
                }
            ),
            on=["level_zone", naive],
            how="left",
            maintain_order="left",
        )
    for end, naive in (("starts_at", "_start_local"), ("ends_at", "_end_local")):
        frame = reject(
            frame,
            pl.col(f"{end}_utc").is_null(),
            NONEXISTENT_LOCAL_TIME,
            pl.format(
                "{} {} does not exist in {} (the clocks skip it for daylight saving time)",
                text(end),
                pl.col(naive).dt.strftime("%Y-%m-%d %H:%M"),
                "level_zone",
            ),
        )
    return frame


def _localize(walls: pl.DataFrame, zone: str) -> pl.DataFrame:
    """Each wall time of ``zone`` as lock-local ISO 8601 with its own offset, plus UTC.

    The strings are assembled from parts (wall time as given, offset from the zone rules)
    rather than formatted with ``strftime``, which is several times slower.
    """
    # In a DST fold (the hour that repeats) the earlier instant is used, so the code is valid
    # from the first time the lock's clock shows the time; a DST gap gives null.
    walls = walls.with_columns(
        _utc=pl.col("_wall")
        .dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
    )
    utc_wall = pl.col("_utc").dt.replace_time_zone(None)
    offset = (pl.col("_wall") - utc_wall).dt.total_minutes()
    return walls.with_columns(
        _local=pl.concat_str(
            _iso_wall(pl.col("_wall")),
            offset.replace_strict(_OFFSETS, default=None, return_dtype=pl.String),
        ),
        _utc_text=pl.concat_str(_iso_wall(utc_wall), text("Z")),
    )


def _iso_wall(wall: pl.Expr) -> pl.Expr:
    return pl.concat_str(
        wall.dt.date().cast(pl.String), text("T"), wall.dt.time().cast(pl.String).str.slice(0, 8)
    )


# Every UTC offset in use is a whole number of quarter hours between -12:00 and +14:00.
_OFFSETS = {
    minutes: f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    for minutes in range(-12 * 60, 14 * 60 + 1, 15)
}
