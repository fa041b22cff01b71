"""Duplicates: rows of one reservation planned once, or all rejected when they disagree."""

from __future__ import annotations

import polars as pl

from pipeline.common.columns import CONTENT_COLUMNS
from pipeline.common.names import name_key_expr
from pipeline.common.reasons import (
    DUPLICATE_RESERVATION,
    DUPLICATE_RESERVATION_CONFLICT,
    EXCLUDED,
    is_open,
    reject,
    text,
)


def check_duplicates(frame: pl.DataFrame) -> tuple[pl.DataFrame, bool]:
    """Rows of one reservation on one door: identical copies are planned once, differing copies
    all conflict. One reservation on several doors (a group booking, a family in two rooms) is
    a row per door, each planned. Returns the frame, and whether any reservation_id repeats
    (only then can ``settle_same_door`` find anything).

    The door here is the row's as written (its device_id, else its door and site names):
    rows that name one door in two ways are found once the doors are known.
    """
    # Rows whose id's hash repeats (cheaper than comparing the strings): a hash collision
    # only adds a row the grouping below then finds alone, which changes nothing.
    repeated = frame.select(
        pl.col("reservation_id").hash().is_duplicated() & pl.col("reservation_id").is_not_null()
    ).to_series()
    if not repeated.any():
        return frame, False
    door = pl.coalesce(
        pl.col("device_id").str.strip_chars().str.to_lowercase(),
        pl.concat_str(
            name_key_expr(pl.col("door_name")),
            name_key_expr(pl.col("site_name")).fill_null(""),
            separator="\x1f",
        ),
    )
    # An excluded row is absent: a cancelled booking doesn't make its rebooking a duplicate.
    stays = frame.filter(repeated & ~pl.col("reason").eq_missing(EXCLUDED)).with_columns(_door=door)
    per_stay = stays.group_by("reservation_id", "_door").agg(
        _copies=pl.len(),
        _variants=pl.struct(CONTENT_COLUMNS).n_unique(),
        _first_row=pl.col("row").min(),
    )
    first = frame.select(
        pl.col("row").alias("_first_row"),
        pl.col("source_file").alias("_first_file"),
        pl.col("source_line").alias("_first_line"),
    )
    found = (
        stays.select("row", "reservation_id", "_door")
        .join(per_stay.filter(pl.col("_copies") > 1), on=["reservation_id", "_door"])
        .join(first, on="_first_row")
        .drop("reservation_id", "_door")
    )
    frame = frame.join(found, on="row", how="left", maintain_order="left")
    frame = reject(
        frame,
        pl.col("_variants") > 1,
        DUPLICATE_RESERVATION_CONFLICT,
        pl.format(
            "reservation_id {} appears {} times on door {} with different content; fix the source",
            "reservation_id",
            "_copies",
            pl.coalesce("device_id", "door_name"),
        ),
    )
    is_copy = (
        is_open() & pl.col("_first_row").is_not_null() & (pl.col("row") != pl.col("_first_row"))
    )
    frame = frame.with_columns(skipped=pl.col("skipped") | is_copy)
    frame = reject(
        frame,
        is_copy,
        DUPLICATE_RESERVATION,
        pl.format("identical to {} line {}", "_first_file", "_first_line"),
    )
    return frame.drop("_copies", "_variants", "_first_row", "_first_file", "_first_line"), True


def settle_same_door(plan: pl.DataFrame) -> pl.DataFrame:
    """The rows of one reservation that reached one door by different spellings (device_id and
    name, an alias and the name, with and without the site): the same window is one code
    (later copies ``duplicate_reservation``, skipped), different windows a conflict (every copy
    rejected). ``plan`` is the planned input rows' output (``PLAN_COLUMNS`` and ``row``)."""
    planned = plan.filter(pl.col("outcome") == "planned")
    same = planned.filter(pl.struct("reservation_id", "device_id").is_duplicated()).with_columns(
        _windows=pl.col("idempotency_tag").n_unique().over("reservation_id", "device_id"),
        _first_row=pl.col("row").min().over("reservation_id", "device_id"),
    )
    if same.is_empty():
        return plan
    first = plan.select(
        pl.col("row").alias("_first_row"),
        pl.col("source_file").alias("_first_file"),
        pl.col("source_line").alias("_first_line"),
    )
    same = same.join(first, on="_first_row")
    conflict = same.filter(pl.col("_windows") > 1).select(
        "row",
        outcome=text("rejected"),
        reason=text(DUPLICATE_RESERVATION_CONFLICT),
        message=pl.format(
            "reservation_id {} has rows with different windows for door {}; fix the source",
            "reservation_id",
            "door_name",
        ),
    )
    copies = same.filter((pl.col("_windows") == 1) & (pl.col("row") != pl.col("_first_row")))
    copies = copies.select(
        "row",
        outcome=text("skipped"),
        reason=text(DUPLICATE_RESERVATION),
        message=pl.format("the same code as {} line {}", "_first_file", "_first_line"),
    )
    settled = pl.concat([conflict, copies]).with_columns(
        idempotency_tag=pl.lit(None, pl.String), name=pl.lit(None, pl.String)
    )
    return plan.update(settled, on="row", include_nulls=True)
