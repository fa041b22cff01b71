"""Duplicates: rows of one reservation planned once, or all rejected when they disagree."""

from __future__ import annotations

import polars as pl

from pipeline.plan.reasons import (
    DUPLICATE_RESERVATION,
    DUPLICATE_RESERVATION_CONFLICT,
    EXCLUDED,
    is_open,
    reject,
)
from pipeline.settings import CONTENT_COLUMNS


def check_duplicates(frame: pl.DataFrame) -> pl.DataFrame:
    """Same reservation_id: identical copies are planned once, differing copies all conflict."""
    content = pl.struct(CONTENT_COLUMNS)
    # Rows whose id's hash repeats (cheaper than comparing the strings): a hash collision
    # only adds a row the grouping below then finds alone, which changes nothing.
    repeated = frame.select(
        pl.col("reservation_id").hash().is_duplicated() & pl.col("reservation_id").is_not_null()
    ).to_series()
    if not repeated.any():
        return frame
    # An excluded row is absent: a cancelled booking doesn't make its rebooking a duplicate.
    per_id = (
        frame.filter(repeated & ~pl.col("reason").eq_missing(EXCLUDED))
        .group_by("reservation_id")
        .agg(
            _copies=pl.len(),
            _variants=content.n_unique(),
            _first_row=pl.col("row").min(),
        )
    )
    first = frame.select(
        pl.col("row").alias("_first_row"),
        pl.col("source_file").alias("_first_file"),
        pl.col("source_line").alias("_first_line"),
    )
    frame = frame.join(
        per_id.join(first, on="_first_row"), on="reservation_id", how="left", maintain_order="left"
    )
    frame = reject(
        frame,
        pl.col("_variants") > 1,
        DUPLICATE_RESERVATION_CONFLICT,
        pl.format(
            "reservation_id {} appears {} times with different content; fix the source",
            "reservation_id",
            "_copies",
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
    return frame.drop("_copies", "_variants", "_first_row", "_first_file", "_first_line")
