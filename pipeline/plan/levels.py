"""Choosing each reservation's user level: named, by its times, a configured default, or the
door's only guest level. Every path is a join on keys, never a loop over rows.
"""

from __future__ import annotations

import polars as pl

from pipeline.catalog.doors import DeviceCatalog
from pipeline.common.names import name_key, name_key_expr
from pipeline.common.reasons import is_open
from pipeline.common.settings import Config
from pipeline.plan.level_rejections import level_lists, reject_level_choices
from pipeline.plan.rounding import (
    BIWEEKLY_DAYS,
    MEASURED,
    SLOT_COLUMNS,
    apply_rounding,
    measure_named,
    round_unmatched,
    stay_columns,
    stay_days,
)


def _default_levels(frame: pl.DataFrame, config: Config) -> pl.DataFrame:
    """Per open row, the configured default level's key (door setting wins over site setting)."""
    defaults = config.user_levels
    if not defaults.doors and not defaults.sites:
        return frame.with_columns(_default=pl.lit(None, pl.String))
    door_keys = {name_key(k): v for k, v in defaults.doors.items()}
    site_keys = {name_key(k): v for k, v in defaults.sites.items()}
    door_default = (
        pl.col("device_id")
        .str.to_lowercase()
        .replace_strict(door_keys, default=None, return_dtype=pl.String)
    )
    door_default = door_default.fill_null(
        name_key_expr(pl.col("door_name")).replace_strict(
            door_keys, default=None, return_dtype=pl.String
        )
    )
    site_default = name_key_expr(pl.col("site_name")).replace_strict(
        site_keys, default=None, return_dtype=pl.String
    )
    return frame.with_columns(_default=door_default.fill_null(site_default))


LEVEL_COLUMNS = (
    "level_name",
    "level_prefix",
    "level_check_in",
    "level_check_out",
    "level_zone",
    "is_24_hour",
    "is_biweekly",
    "is_master",
    "is_one_shot",
)


def select_user_levels(frame: pl.DataFrame, catalog: DeviceCatalog, config: Config) -> pl.DataFrame:
    """Pick each open row's user level: named, else by its times, else the door's default.

    Every path is a join on keys (door + name, door + times, door alone), so a row meets only
    the levels that can fit it; ``_options`` counts the equally good ones (more than one is
    ``ambiguous_user_level``, unless the configured default is one of them). Rows with only
    dates and no level wanted, usually most of them, take their door's choice by a join
    straight onto the frame. Rows whose times no level has exactly are rounded to the nearest
    level within ``[plan] slot_tolerance_minutes`` (``slots``): their dates move with a
    level's time across midnight, and their message says how each end moved.
    """
    frame = _default_levels(frame, config).with_columns(
        _stay_days=stay_days(),
        _named=pl.col("user_level").is_not_null(),
        _timed=pl.col("check_in_time").is_not_null(),
    )
    frame = frame.with_columns(
        _fortnight=pl.col("_stay_days") == BIWEEKLY_DAYS,
        _by_door=is_open() & ~pl.col("_named") & ~pl.col("_timed") & pl.col("_default").is_null(),
    )
    # A configured default applies to dates-only rows; a row with times picks by its times,
    # the default only settling a tie between levels equally near them.
    wanted = (
        pl.when(pl.col("_named"))
        .then(pl.col("user_level"))
        .when(~pl.col("_timed"))
        .then(pl.col("_default"))
    )
    rows = frame.filter(is_open() & ~pl.col("_by_door")).select(
        "row",
        "device_id",
        "door_zone",
        *stay_columns(frame),
        "_named",
        "_timed",
        "_fortnight",
        name_key_expr(wanted).alias("_wanted_key"),
        wanted.str.strip_chars().alias("_wanted_text"),
        name_key_expr(pl.col("_default")).alias("_default_key"),
    )
    tolerance = config.plan.slot_tolerance_minutes * 60
    levels = catalog.levels.sort("device_id", "level_prefix")
    eligible = levels.filter(~pl.col("is_master") & ~pl.col("is_one_shot"))
    candidates = _ranked_candidates(rows, levels, eligible)
    candidates, nearest = round_unmatched(rows, candidates, eligible, tolerance)
    frame = frame.join(_pick_best(candidates), on="row", how="left", maintain_order="left").join(
        _door_defaults(eligible),
        on=["device_id", "_fortnight", "_by_door"],
        how="left",
        maintain_order="left",
        suffix="_by_door",
    )
    # A row took one path or the other: its door's choice fills what the ranking left null.
    picked = [*LEVEL_COLUMNS, "_options", "_option_names"]
    frame = frame.with_columns(pl.coalesce(c, f"{c}_by_door").alias(c) for c in picked).drop(
        f"{c}_by_door" for c in picked
    )
    # Several fitting levels is no choice at all: keep none of them on the row.
    frame = frame.with_columns(
        pl.when(pl.col("_options") == 1).then(pl.col(c)).alias(c) for c in LEVEL_COLUMNS
    )
    frame = measure_named(frame, nearest, tolerance)
    frame = reject_level_choices(frame, level_lists(levels), levels, tolerance)
    return apply_rounding(frame).drop(
        "_options", "_option_names", "_fortnight", "_by_door", *SLOT_COLUMNS
    )


def _ranked_candidates(
    rows: pl.DataFrame, levels: pl.DataFrame, eligible: pl.DataFrame
) -> pl.DataFrame:
    """Candidate levels for rows that name a level (or have a default) or give times."""
    by_name = rows.filter(pl.col("_wanted_key").is_not_null()).join(
        levels, left_on=["device_id", "_wanted_key"], right_on=["device_id", "level_key"]
    )
    by_prefix = rows.filter(pl.col("_named")).join(
        levels, left_on=["device_id", "_wanted_text"], right_on=["device_id", "level_prefix_text"]
    )
    timed = rows.filter(~pl.col("_named") & pl.col("_timed"))
    by_times = timed.join(
        eligible,
        left_on=["device_id", "check_in_time", "check_out_time"],
        right_on=["device_id", "level_check_in", "level_check_out"],
    ).with_columns(level_check_in="check_in_time", level_check_out="check_out_time")
    # Equal check-in and check-out times on a row ask for a daily-bound (24-hour) level.
    daily = (
        timed.filter(pl.col("check_in_time") == pl.col("check_out_time"))
        .join(
            eligible.filter("is_24_hour"),
            left_on=["device_id", "check_in_time"],
            right_on=["device_id", "level_check_in"],
        )
        .with_columns(level_check_in="check_in_time")
        .filter(pl.col("level_check_out") != pl.col("check_in_time"))
    )
    fits_stay = ~pl.col("is_biweekly") | pl.col("_fortnight")
    return pl.concat(
        [
            by_name.with_columns(_rank=pl.lit(0)),
            by_prefix.with_columns(_rank=pl.lit(1)),
            by_times.with_columns(_rank=pl.when(fits_stay).then(0).otherwise(1)),
            daily.with_columns(_rank=pl.when(fits_stay).then(0).otherwise(1)),
        ],
        how="diagonal",
    )


def _pick_best(candidates: pl.DataFrame) -> pl.DataFrame:
    """Per row, the best level and how many tie for best: best rank (a level that fits the
    stay's length first), then the nearest (``slots``: farther end, then both ends), then the
    configured default among equals; the lowest prefix first among what still ties."""
    measured = MEASURED[0] in candidates.columns
    # Rank, farther end, both ends (each under 10^6 seconds) as one number: one pass over rows.
    order = pl.col("_rank").cast(pl.Int64)
    if measured:
        order = order * 10**12 + pl.col("_far") * 10**6 + pl.col("_sum")
    candidates = candidates.filter(order == order.min().over("row"))
    if candidates["_default_key"].null_count() < candidates.height:
        is_default = (name_key_expr(pl.col("level_name")) == pl.col("_default_key")).fill_null(
            False
        )
        candidates = candidates.filter(~is_default.any().over("row") | is_default)
    return (
        candidates.sort("row", "level_prefix")
        .group_by("row", maintain_order=True)
        .agg(
            pl.col(*LEVEL_COLUMNS, *(MEASURED if measured else ())).first(),
            _options=pl.len(),
            _option_names=pl.col("level_name").str.join(", "),
        )
    )


def _door_defaults(eligible: pl.DataFrame) -> pl.DataFrame:
    """For dates-only rows without a configured default: the door's only guest level.

    Per door, once for other stays and once for 14-day stays (where a biweekly level also
    fits), keyed to be joined onto the rows marked ``_by_door``.
    """
    guest_levels = eligible.filter(~pl.col("is_24_hour"))
    return pl.concat(
        [
            guest_levels.filter(~pl.col("is_biweekly") | pl.lit(fortnight))
            .group_by("device_id", maintain_order=True)
            .agg(
                pl.col(*LEVEL_COLUMNS).first(),
                _options=pl.len(),
                _option_names=pl.col("level_name").str.join(", "),
            )
            .with_columns(_fortnight=pl.lit(fortnight), _by_door=pl.lit(True))
            for fortnight in (False, True)
        ]
    )
