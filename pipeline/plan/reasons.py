"""Giving rows their outcome: the one way every stage marks a row rejected or skipped.

A row keeps the first reason it is given; later stages only look at rows still open.
"""

from __future__ import annotations

import polars as pl


def reject(frame: pl.DataFrame, condition: pl.Expr, reason: str, message: pl.Expr) -> pl.DataFrame:
    """Give ``reason`` to the rows that meet ``condition`` and have no reason yet.

    The message is only built for the rows hit (usually few), then scattered into place.
    """
    hit = frame.select(pl.col("reason").is_null() & condition.fill_null(False)).to_series()
    positions = hit.arg_true()
    if positions.len() == 0:
        return frame
    messages = frame.filter(hit).select(message.cast(pl.String)).to_series()
    return frame.with_columns(
        frame["reason"].scatter(positions, reason),
        frame["message"].scatter(positions, messages),
    )


def is_open() -> pl.Expr:
    """Rows no stage has given a reason yet."""
    return pl.col("reason").is_null()


def text(value: str) -> pl.Expr:
    """A string literal, typed, for messages and reason columns."""
    return pl.lit(value, pl.String)
