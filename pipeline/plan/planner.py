"""Planning: for each reservation row, the door, the user level, the lock-local window, the rules.

Everything here is decided with Polars expressions over whole columns: there is no per-row
Python loop. Each step only touches rows that no earlier step rejected, and the first reason
found is the one a row keeps. Once duplicates are settled, a big input is decided in slices
side by side, one per core (``SLICE_ROWS``).

The reason codes a row may get here, each with its meaning, are in ``reasons``.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import polars as pl

from pipeline.catalog.doors import DeviceCatalog
from pipeline.common.columns import CANONICAL_COLUMNS
from pipeline.common.reasons import (
    BIWEEKLY_NEEDS_14_DAYS,
    BLANK_ROW,
    DAILY_BOUND_TIMES_DIFFER,
    DURATION_EXCEEDS_31_DAYS,
    EXCLUDED,
    IN_THE_PAST,
    INVALID_ROW,
    INVALID_WINDOW,
    reject,
    text,
)
from pipeline.common.settings import Config
from pipeline.plan.doors import resolve_doors
from pipeline.plan.duplicates import check_duplicates, settle_same_door
from pipeline.plan.levels import select_user_levels
from pipeline.plan.naming import name_codes
from pipeline.plan.rounding import BIWEEKLY_DAYS
from pipeline.plan.stay_doors import ALSO_FOR, plan_stay_doors, stay_door_targets
from pipeline.plan.stays import STAY_FORMATS, parse_stays, to_lock_local
from pipeline.plan.windows import compute_windows
from pipeline.read.exclusions import EXCLUDED_COLUMN
from pipeline.read.unreadable import UNREADABLE_COLUMN

PLAN_COLUMNS = (
    "reservation_id",
    "device_id",
    "door_name",
    "site_name",
    "user_level_name",
    "user_level_prefix",
    "starts_at",
    "ends_at",
    "starts_at_utc",
    "ends_at_utc",
    "max_time_rounding",
    "idempotency_tag",
    "name",
    ALSO_FOR,
    "outcome",
    "reason",
    "message",
    "source_file",
    "source_line",
)
# What deciding a row gives (the doors of the stay a ``[doors.also]`` row serves come after).
DECIDED_COLUMNS = tuple(column for column in PLAN_COLUMNS if column != ALSO_FOR)

# Oracode windows over 31 consecutive days are refused by the lock (product page, "Duration").
MAX_WINDOW = dt.timedelta(days=31)
# A daily-bound code uses the same time of day at both ends; the product page's own example
# ends at 23:59 for a 00:00 start, so "the same" allows the one-minute inclusive end.
DAILY_BOUND_SLACK_SECONDS = 60
# No field of a reservation is legitimately longer; a longer one is a broken export.
MAX_FIELD_CHARS = 1_000
# After the duplicate check each row is decided from itself and the catalog alone, so a big
# input is planned in slices side by side, one per core of Polars' pool: each slice's work runs
# without the GIL, where many of Polars' string operations on one frame use a single core. A
# slice smaller than this isn't worth its thread.
SLICE_ROWS = 100_000


def plan_reservations(
    reservations: pl.DataFrame,
    catalog: DeviceCatalog,
    config: Config,
    *,
    now: dt.datetime,
    slice_rows: int = SLICE_ROWS,
) -> pl.DataFrame:
    """Plan every reservation row; returns one row per input row with the PLAN_COLUMNS.

    ``reservations`` is what ``read_reservations`` returns. ``now`` (timezone-aware) decides
    ``in_the_past``. Deterministic: the same input, catalog, config and ``now`` give the same
    output, including tags and names, however the rows are sliced (``slice_rows``).
    """
    frame = reservations.with_columns(
        reason=pl.lit(None, pl.String),
        message=pl.lit(None, pl.String),
        skipped=pl.lit(False),
    )
    frame = _check_values(frame)
    frame, repeats = check_duplicates(frame)
    step = functools.partial(_decide_rows, catalog=catalog, config=config, now=now)

    def decide(rows: pl.DataFrame) -> pl.DataFrame:
        return _in_slices(rows, step, slice_rows)

    decided = decide(frame)
    if repeats:
        decided = settle_same_door(decided)
    decided = decided.with_columns(pl.lit(None, pl.String).alias(ALSO_FOR))
    targets = stay_door_targets(config, catalog) if config.doors.also else {}
    if not targets:
        return decided.sort("row").select(PLAN_COLUMNS)
    # Each stay's rows on the doors it also needs follow its own row.
    stays = plan_stay_doors(frame, decided, targets, decide)
    decided = pl.concat(
        [decided.with_columns(_part=pl.lit(0, pl.Int64)), stays.select(*decided.columns, "_part")],
        how="vertical_relaxed",
    )
    return decided.sort("row", "_part").select(PLAN_COLUMNS)


def _decide_rows(
    frame: pl.DataFrame, *, catalog: DeviceCatalog, config: Config, now: dt.datetime
) -> pl.DataFrame:
    """Door, user level, window, rules and name: each row from itself and the catalog alone."""
    frame = resolve_doors(frame, catalog, config)
    frame = to_lock_local(frame, "check_in", "door_zone")
    frame = to_lock_local(frame, "check_out", "door_zone")
    frame = select_user_levels(frame, catalog, config)
    frame = compute_windows(frame, catalog.levels)
    frame = _check_rules(frame, now)
    # Named and in order: a slice's working columns may come out in another order than the
    # next slice's (e.g. one whose rows all lack dates), and slices are joined by position.
    return _name_codes(frame, config).select("row", *DECIDED_COLUMNS)


def _in_slices(
    frame: pl.DataFrame, step: Callable[[pl.DataFrame], pl.DataFrame], slice_rows: int
) -> pl.DataFrame:
    """``step`` over consecutive slices of ``frame`` in threads, the results in frame order.

    Only for a step that decides each row on its own and returns the same columns in the same
    order for any rows. The results are joined relaxed, so should a slice ever type a column
    differently (say, all null in it), the common type wins instead of the run failing.
    """
    # At least two whenever the rows allow, so the sliced path is the one tested everywhere.
    count = min(max(2, pl.thread_pool_size()), frame.height // max(slice_rows, 1))
    if count < 2:
        return step(frame)
    size = -(-frame.height // count)
    with ThreadPoolExecutor(count, thread_name_prefix="plan") as pool:
        parts = list(
            pool.map(step, (frame.slice(start, size) for start in range(0, frame.height, size)))
        )
    return pl.concat(parts, how="vertical_relaxed")


def _check_values(frame: pl.DataFrame) -> pl.DataFrame:
    frame = parse_stays(parse_stays(frame, "check_in"), "check_out")
    # First: a cancelled booking is excluded whatever else is wrong with it.
    if EXCLUDED_COLUMN in frame.columns:
        is_excluded = pl.col(EXCLUDED_COLUMN).is_not_null()
        frame = reject(frame, is_excluded, EXCLUDED, pl.col(EXCLUDED_COLUMN))
        frame = frame.with_columns(skipped=is_excluded)
    # Exports often end in empty lines: skip them rather than fail the run over them.
    is_blank = pl.all_horizontal(pl.col(CANONICAL_COLUMNS).is_null())
    frame = frame.with_columns(skipped=pl.col("skipped") | is_blank)
    frame = reject(frame, is_blank, BLANK_ROW, text("the row has no values"))
    if UNREADABLE_COLUMN in frame.columns:
        unreadable = pl.col(UNREADABLE_COLUMN)
        frame = reject(frame, unreadable.is_not_null(), INVALID_ROW, unreadable)
    frame = reject(
        frame, pl.col("reservation_id").is_null(), INVALID_ROW, text("reservation_id is empty")
    )
    frame = reject(
        frame,
        pl.col("device_id").is_null() & pl.col("door_name").is_null(),
        INVALID_ROW,
        text("device_id and door_name are both empty: one is needed to find the door"),
    )
    too_long = pl.coalesce(
        pl.when(pl.col(column).str.len_chars() > MAX_FIELD_CHARS).then(
            pl.format(
                f"{column} is {{}} characters long; at most {MAX_FIELD_CHARS} are accepted",
                pl.col(column).str.len_chars(),
            )
        )
        for column in CANONICAL_COLUMNS
    )
    frame = reject(frame, too_long.is_not_null(), INVALID_ROW, too_long)
    for column in ("check_in", "check_out"):
        frame = reject(frame, pl.col(column).is_null(), INVALID_ROW, text(f"{column} is empty"))
        frame = reject(
            frame,
            ~pl.col(f"{column}_ok"),
            INVALID_ROW,
            pl.format(f"{column} {{}} is not {STAY_FORMATS}", pl.col(column)),
        )
    return reject(
        frame,
        pl.col("check_in_time").is_null() != pl.col("check_out_time").is_null(),
        INVALID_ROW,
        text("check_in and check_out must both have a time of day, or neither"),
    )


def _check_rules(frame: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
    span = pl.col("_end_local") - pl.col("_start_local")
    frame = reject(
        frame,
        pl.col("ends_at_utc") <= pl.col("starts_at_utc"),
        INVALID_WINDOW,
        pl.format("ends_at {} is not after starts_at {}", "ends_at", "starts_at"),
    )
    frame = reject(
        frame,
        span > MAX_WINDOW,
        DURATION_EXCEEDS_31_DAYS,
        pl.format(
            "the window {} → {} is longer than 31 days, the most a lock accepts",
            "starts_at",
            "ends_at",
        ),
    )
    frame = reject(
        frame,
        pl.col("is_biweekly") & (pl.col("_stay_days") != BIWEEKLY_DAYS),
        BIWEEKLY_NEEDS_14_DAYS,
        pl.format(
            "user level {} is biweekly: the stay must be 14 days, not {}",
            "level_name",
            "_stay_days",
        ),
    )
    seconds_in = pl.col("level_check_in").cast(pl.Int64) // 1_000_000_000
    seconds_out = pl.col("level_check_out").cast(pl.Int64) // 1_000_000_000
    gap = (seconds_in - seconds_out).abs()
    frame = reject(
        frame,
        pl.col("is_24_hour") & (pl.min_horizontal(gap, 86_400 - gap) > DAILY_BOUND_SLACK_SECONDS),
        DAILY_BOUND_TIMES_DIFFER,
        pl.format("24-hour user level {} has different check-in and check-out times", "level_name"),
    )
    return reject(
        frame,
        pl.col("ends_at_utc") <= pl.lit(now).dt.convert_time_zone("UTC"),
        IN_THE_PAST,
        pl.format("the window ends at {}, which has already passed", "ends_at"),
    )


def _name_codes(frame: pl.DataFrame, config: Config) -> pl.DataFrame:
    frame = frame.with_columns(
        outcome=pl.when(pl.col("skipped"))
        .then(text("skipped"))
        .when(pl.col("reason").is_null())
        .then(text("planned"))
        .otherwise(text("rejected")),
        user_level_name=pl.col("level_name"),
        user_level_prefix=pl.col("level_prefix"),
        max_time_rounding=pl.when(pl.col("is_24_hour"))
        .then(text("1d"))
        .when(pl.col("is_24_hour").is_not_null())
        .then(text("1h")),
        starts_at_utc=pl.col("starts_at_utc_text"),
        ends_at_utc=pl.col("ends_at_utc_text"),
    )
    return name_codes(frame, config.name_template)
