"""Allocation: which planned rows a door's budget can take, in allocation order.

Both functions take the candidate rows of budgeted doors, sorted by door and allocation order,
with ``budget`` and ``_cap`` (budget minus reserve) columns, and return them with ``_over``
(past the budget) and ``_message`` (why, for those), plus each door's count after the run.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

# A code without a start or an end is valid from always or until forever.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


def allocate_lifetime(
    candidates: pl.DataFrame, used: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every code ever made counts: the first ``cap - used`` rows of a door in order fit."""
    decided = (
        candidates.join(used, on="device_id", how="left")
        .with_columns(pl.col("used").fill_null(0).cast(pl.Int64))
        .with_columns(
            _room=(pl.col("_cap") - pl.col("used")).clip(lower_bound=0),
            _position=pl.int_range(1, pl.len() + 1).over("device_id"),
        )
        .with_columns(_over=pl.col("_position") > pl.col("_room"))
        .with_columns(
            _message=pl.when(pl.col("_over")).then(
                pl.format(
                    "door {} has a budget of {} codes (reserve {}): {} used, room for {} more;"
                    " this code is number {} in the door's allocation order (earliest starts_at"
                    " first, then reservation_id)",
                    "door_name",
                    "budget",
                    pl.col("budget") - pl.col("_cap"),
                    "used",
                    "_room",
                    "_position",
                )
            )
        )
    )
    after = decided.group_by("device_id").agg(
        after=pl.col("used").first() + (~pl.col("_over")).sum()
    )
    return decided, after


def peak_valid(codes: pl.DataFrame) -> pl.DataFrame:
    """``device_id, used``: the most of ``codes`` valid at one instant, per door."""
    starts = codes.select("device_id", _t=pl.col("starts_at_utc").fill_null(EARLIEST), _d=1)
    ends = codes.select("device_id", _t=pl.col("ends_at_utc").fill_null(LATEST), _d=-1)
    return (
        pl.concat([starts, ends])
        .sort("device_id", "_t", "_d")
        .group_by("device_id")
        .agg(used=pl.col("_d").cum_sum().max().cast(pl.Int64))
    )


def allocate_concurrent(
    candidates: pl.DataFrame, used_codes: pl.DataFrame, used: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """At no instant more than ``cap`` valid codes: a sweep over each door's start/end events.

    A row whose window never sees more than ``cap`` codes even if every row were taken is
    taken outright (all but the busiest doors' rows). Only the rest, the *contested* rows, are
    decided one by one in allocation order against the door's load; taking the others first
    gives the same answer as deciding every row in order, because none of them can push any
    instant of their own windows over the budget.
    """
    index = candidates.select("device_id").unique(maintain_order=True).with_row_index("_door")
    candidates = candidates.join(index, on="device_id").with_row_index("_order")
    codes = used_codes.join(index, on="device_id").select(
        "_door",
        pl.col("starts_at_utc").fill_null(EARLIEST).alias("_s"),
        pl.col("ends_at_utc").fill_null(LATEST).alias("_e"),
    )
    no_row = pl.lit(None, pl.UInt32)
    events = (
        pl.concat(
            [
                codes.select("_door", _t="_s", _delta=pl.lit(1, pl.Int32), _order=no_row),
                codes.select("_door", _t="_e", _delta=pl.lit(-1, pl.Int32), _order=no_row),
                candidates.select(
                    "_door", _t="starts_at_utc", _delta=pl.lit(1, pl.Int32), _order="_order"
                ),
                candidates.select(
                    "_door", _t="ends_at_utc", _delta=pl.lit(-1, pl.Int32), _order="_order"
                ),
            ]
        )
        # Ends before starts at one instant: windows that only touch don't overlap.
        .sort("_door", "_t", "_delta")
        .with_row_index("_k")
        .join(candidates.select("_door", "_cap").unique("_door"), on="_door")
        .with_columns(_load_all=pl.col("_delta").cum_sum().over("_door"))
        .with_columns(_flag=(pl.col("_load_all") > pl.col("_cap")).cast(pl.Int64))
        .with_columns(_flags_before=pl.col("_flag").cum_sum() - pl.col("_flag"))
    )
    ends = events.filter(pl.col("_order").is_not_null())
    bounds = (
        ends.filter(pl.col("_delta") == 1)
        .select("_order", _a="_k", _flags_a="_flags_before")
        .join(
            ends.filter(pl.col("_delta") == -1).select("_order", _b="_k", _flags_b="_flags_before"),
            on="_order",
        )
    )
    candidates = candidates.join(bounds, on="_order").with_columns(
        _contested=pl.col("_flags_b") > pl.col("_flags_a")
    )
    contested = candidates.filter(pl.col("_contested")).sort("_order")
    uncontested = candidates.filter(~pl.col("_contested")).select("_order")
    base = events.with_columns(
        _delta=pl.when(
            pl.col("_order").is_null() | pl.col("_order").is_in(uncontested["_order"].implode())
        )
        .then(pl.col("_delta"))
        .otherwise(0)
    )
    refused = _decide_contested(base, contested)
    refused_frame = pl.DataFrame(
        refused,
        schema={"_order": pl.UInt32, "_peak": pl.Int64, "_peak_at": pl.Datetime("us", "UTC")},
        orient="row",
    )
    decided = candidates.join(refused_frame, on="_order", how="left").with_columns(
        _over=pl.col("_peak").is_not_null()
    )
    decided = decided.with_columns(
        _message=pl.when(pl.col("_over")).then(
            pl.format(
                "door {} allows {} codes valid at once (reserve {}): {} would already be valid"
                " at {}, within this window, leaving none for it (allocation order: earliest"
                " starts_at first, then reservation_id)",
                "door_name",
                "budget",
                pl.col("budget") - pl.col("_cap"),
                "_peak",
                pl.col("_peak_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
        )
    )
    taken = decided.filter(~pl.col("_over")).select("_order")
    after = (
        events.with_columns(
            _final=pl.when(
                pl.col("_order").is_null() | pl.col("_order").is_in(taken["_order"].implode())
            )
            .then(pl.col("_delta"))
            .otherwise(0)
        )
        .group_by("_door")
        .agg(after=pl.col("_final").cum_sum().max().cast(pl.Int64))
        .join(index, on="_door")
        .select("device_id", "after")
    )
    decided = decided.join(used, on="device_id", how="left")
    return decided, after


def _decide_contested(
    base: pl.DataFrame, contested: pl.DataFrame
) -> list[tuple[int, int, dt.datetime]]:
    """The contested rows, in allocation order, against their door's load; returns the refused
    ones as ``(order, peak, when)``: the most codes already valid within the window, and when."""
    if contested.is_empty():
        return []
    doors = contested["_door"].unique()
    grids = (
        base.filter(pl.col("_door").is_in(doors.implode()))
        .with_columns(_base=pl.col("_delta").cum_sum().over("_door"))
        .group_by("_door", maintain_order=True)
        .agg(_first=pl.col("_k").first(), _load="_base", _times="_t")
    )
    rows = contested.group_by("_door", maintain_order=True).agg(
        "_order", "_a", "_b", pl.col("_cap").first()
    )
    refused: list[tuple[int, int, dt.datetime]] = []
    for grid, door_rows in zip(
        grids.sort("_door").iter_rows(named=True),
        rows.sort("_door").iter_rows(named=True),
        strict=True,
    ):
        load: list[int] = grid["_load"]
        first: int = grid["_first"]
        cap: int = door_rows["_cap"]
        for order, a, b in zip(door_rows["_order"], door_rows["_a"], door_rows["_b"], strict=True):
            window = load[a - first : b - first]
            peak = max(window)
            if peak < cap:
                for k in range(a - first, b - first):
                    load[k] += 1
            else:
                refused.append((order, peak, grid["_times"][a - first + window.index(peak)]))
    return refused


def skip_whole_doors(decided: pl.DataFrame) -> pl.DataFrame:
    """``--on-budget-exceeded skip-door``: a door that can't take all its rows takes none."""
    counts = decided.group_by("device_id").agg(
        _needed=pl.len(), _fits=(~pl.col("_over")).sum(), _any_over=pl.col("_over").any()
    )
    return (
        decided.join(counts, on="device_id")
        .with_columns(
            _message=pl.when(pl.col("_any_over")).then(
                pl.format(
                    "door {} skipped (--on-budget-exceeded skip-door): it needs {} new codes"
                    " and only {} of them fit in its budget of {}",
                    "door_name",
                    "_needed",
                    "_fits",
                    "budget",
                )
            ),
            _over=pl.col("_any_over"),
        )
        .drop("_needed", "_fits", "_any_over")
    )
