"""Rejecting a row's user level choice: none fits, several do, or the one chosen can't be
made; each message lists the door's levels, or suggests the closest names."""

from __future__ import annotations

import polars as pl

from pipeline.catalog.checks import SEE_DOORS
from pipeline.common.names import did_you_mean, name_key_expr
from pipeline.common.reasons import (
    AMBIGUOUS_USER_LEVEL,
    MASTER_USER_LEVEL_UNSUPPORTED,
    NO_MATCHING_USER_LEVEL,
    ONE_TIME_USE_UNSUPPORTED,
    UNKNOWN_USER_LEVEL,
    USER_LEVEL_TIMES_MISMATCH,
    is_open,
    reject,
    text,
)
from pipeline.plan.rounding import how_far


def level_lists(levels: pl.DataFrame) -> dict[str, str]:
    """Per door, a readable list of its user levels for rejection messages."""
    flags = pl.concat_str(
        pl.when("is_24_hour").then(text(", 24-hour")),
        pl.when("is_biweekly").then(text(", biweekly")),
        pl.when("is_master").then(text(", master")),
        pl.when("is_one_shot").then(text(", one-shot")),
        ignore_nulls=True,
    )
    described = pl.format(
        "{} (prefix {}, {}→{}{})",
        "level_name",
        "level_prefix",
        *_clock_times("level_check_in", "level_check_out"),
        flags,
    )
    lists = (
        levels.sort("device_id", "level_prefix")
        .group_by("device_id", maintain_order=True)
        .agg(described.str.join("; "))
    )
    return dict(lists.iter_rows())


def _clock_times(*columns: str) -> list[pl.Expr]:
    """Times of day as ``HH:MM``, for messages."""
    return [pl.col(column).dt.strftime("%H:%M") for column in columns]


def _level_suggestions(
    frame: pl.DataFrame, hit: pl.Expr, wanted: str, levels: pl.DataFrame
) -> pl.Expr:
    """`` (did you mean ...?)`` with the door's closest level names, for the rows ``hit`` whose
    ``wanted`` level isn't on their door; worked out once per distinct door and name."""
    pairs = frame.filter(is_open() & hit.fill_null(False)).select(
        _door_and(wanted), "device_id", wanted
    )
    pairs = pairs.unique("_pair")
    if pairs.is_empty():
        return text("")
    names = dict(
        levels.join(pairs.select("device_id"), on="device_id", how="semi")
        .group_by("device_id")
        .agg("level_name")
        .iter_rows()
    )
    hints = {
        pair: did_you_mean(name, names.get(device_id, []), form=" ({})")
        for pair, device_id, name in pairs.iter_rows()
    }
    return _door_and(wanted).replace_strict(hints, default="", return_dtype=pl.String)


def _door_and(column: str) -> pl.Expr:
    return pl.concat_str("device_id", name_key_expr(pl.col(column)), separator="\x1f").alias(
        "_pair"
    )


def reject_level_choices(
    frame: pl.DataFrame, level_lists: dict[str, str], levels: pl.DataFrame, tolerance: int
) -> pl.DataFrame:
    """Reject the rows whose level choice failed (``tolerance``: the seconds a booking may be
    rounded by, for the messages of rows with times)."""
    minutes = f"{tolerance // 60} min ([plan] slot_tolerance_minutes)"
    none_chosen = pl.col("level_name").is_null() & pl.col("_options").is_null()
    listed = pl.col("device_id").replace_strict(level_lists, default="none", return_dtype=pl.String)
    named_unknown = none_chosen & pl.col("_named")
    frame = reject(
        frame,
        named_unknown,
        UNKNOWN_USER_LEVEL,
        pl.format(
            f"door {{}} has no user level {{}}{{}}; its levels: {{}} {SEE_DOORS}",
            "door_name",
            "user_level",
            _level_suggestions(frame, named_unknown, "user_level", levels),
            listed,
        ),
    )
    default_unknown = none_chosen & pl.col("_default").is_not_null() & ~pl.col("_timed")
    frame = reject(
        frame,
        default_unknown,
        UNKNOWN_USER_LEVEL,
        pl.format(
            "the configured default user level {} is not on door {}{}; its levels: {}"
            f" {SEE_DOORS}",
            "_default",
            "door_name",
            _level_suggestions(frame, default_unknown, "_default", levels),
            listed,
        ),
    )
    frame = reject(
        frame,
        none_chosen & pl.col("_timed") & pl.col("_near_name").is_not_null(),
        NO_MATCHING_USER_LEVEL,
        pl.format(
            f"no user level of door {{}} is within {minutes} of {{}}→{{}} at both ends; the"
            " nearest, {} ({}→{}), is {}; its levels: {}",
            "door_name",
            *_clock_times("check_in_time", "check_out_time"),
            "_near_name",
            *_clock_times("_near_in", "_near_out"),
            how_far(),
            listed,
        ),
    )
    frame = reject(
        frame,
        none_chosen & pl.col("_timed"),
        NO_MATCHING_USER_LEVEL,
        pl.format(
            "no user level of door {} runs {}→{}; its levels: {}",
            "door_name",
            *_clock_times("check_in_time", "check_out_time"),
            listed,
        ),
    )
    frame = reject(
        frame,
        none_chosen,
        NO_MATCHING_USER_LEVEL,
        pl.format(
            "door {} has no guest user level for a {}-day stay; its levels: {}",
            "door_name",
            "_stay_days",
            listed,
        ),
    )
    several = pl.col("_options") > 1
    frame = reject(
        frame,
        several & pl.col("_timed") & ~pl.col("_named"),
        AMBIGUOUS_USER_LEVEL,
        pl.format(
            "door {} has {} user levels equally near {}→{} ({}); name one in user_level or set"
            " a default for the door or its site ([user_levels.*])",
            "door_name",
            "_options",
            *_clock_times("check_in_time", "check_out_time"),
            "_option_names",
        ),
    )
    frame = reject(
        frame,
        several,
        AMBIGUOUS_USER_LEVEL,
        pl.format(
            "door {} has {} user levels that fit ({}); name one in user_level or set a default",
            "door_name",
            "_options",
            "_option_names",
        ),
    )
    frame = reject(
        frame,
        pl.col("is_master"),
        MASTER_USER_LEVEL_UNSUPPORTED,
        pl.format("user level {} is a master level; Seam can't create master codes", "level_name"),
    )
    frame = reject(
        frame,
        pl.col("is_one_shot"),
        ONE_TIME_USE_UNSUPPORTED,
        pl.format("user level {} is one-time-use; Seam can't create those codes", "level_name"),
    )
    # A named hourly level is rounded to within the tolerance (``rounding.measure_named``); a
    # daily-bound one keeps its exact times.
    mismatch = (
        pl.col("_named")
        & pl.col("_timed")
        & ~(
            (pl.col("level_check_in") == pl.col("check_in_time"))
            & (pl.col("level_check_out") == pl.col("check_out_time"))
        )
    )
    beyond = pl.col("_far").is_null() | (pl.col("_far") > tolerance)
    frame = reject(
        frame,
        mismatch & ~pl.col("is_24_hour") & pl.col("_far").is_not_null() & beyond,
        USER_LEVEL_TIMES_MISMATCH,
        pl.format(
            "user level {} runs {}→{} but the row says {}→{}: the level is {}, more than the"
            f" {minutes} a booking may be rounded by",
            "level_name",
            *_clock_times("level_check_in", "level_check_out"),
            *_clock_times("check_in_time", "check_out_time"),
            how_far(),
        ),
    )
    return reject(
        frame,
        mismatch & (pl.col("is_24_hour") | beyond),
        USER_LEVEL_TIMES_MISMATCH,
        pl.format(
            "user level {} runs {}→{} but the row says {}→{}",
            "level_name",
            *_clock_times("level_check_in", "level_check_out"),
            *_clock_times("check_in_time", "check_out_time"),
        ),
    )
