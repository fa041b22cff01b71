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
                    "_reserve",
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

    ``candidates`` must carry ``_door`` (an integer per door) and be sorted by it and then in
    allocation order; ``used_codes`` carries ``_door`` too.
    """
    if candidates.is_empty():
        decided = candidates.with_columns(
            _over=pl.lit(False), _message=pl.lit(None, pl.String)
        ).join(used, on="device_id", how="left")
        return decided, pl.DataFrame(schema={"device_id": pl.String, "after": pl.Int64})
    candidates = candidates.with_row_index("_order")
    count = candidates.height
    # Only doors with rows to decide: the others' codes are counted in ``used`` alone.
    codes = used_codes.join(candidates.select("_door").unique(), on="_door", how="semi").select(
        "_door",
        pl.col("starts_at_utc").fill_null(EARLIEST),
        pl.col("ends_at_utc").fill_null(LATEST),
    )
    no_row = pl.lit(None, pl.UInt32)
    events = (
        pl.concat(
            [
                codes.select("_door", _t="starts_at_utc", _delta=pl.lit(1, pl.Int8), _order=no_row),
                codes.select("_door", _t="ends_at_utc", _delta=pl.lit(-1, pl.Int8), _order=no_row),
                candidates.select(
                    "_door", _t="starts_at_utc", _delta=pl.lit(1, pl.Int8), _order="_order"
                ),
                candidates.select(
                    "_door", _t="ends_at_utc", _delta=pl.lit(-1, pl.Int8), _order="_order"
                ),
            ]
        )
        # Ends before starts at one instant: windows that only touch don't overlap.
        .sort("_door", "_t", "_delta")
        .with_columns(_door_cap=pl.col("_door").replace_strict(*_caps(candidates)))
    )
    # Every code adds one and takes it away again, so each door's running total starts from
    # zero: one cumulative sum over all doors is each door's own.
    load_all = events["_delta"].cast(pl.Int32).cum_sum()
    is_over = (load_all > events["_door_cap"]).cast(pl.Int32)
    over_before = is_over.cum_sum() - is_over
    starts, ends = _positions(events, count)
    # Whether the window [start, end) holds an instant over the cap with every row taken.
    is_contested = (over_before.gather(ends) - over_before.gather(starts)) > 0
    event_order = events["_order"]
    is_contested_event = is_contested.gather(event_order.fill_null(0)) & event_order.is_not_null()
    base = (
        events["_delta"]
        .cast(pl.Int32)
        .zip_with(~is_contested_event, pl.Series([0], dtype=pl.Int32))
    )
    contested = pl.DataFrame(
        {"_order": pl.int_range(count, eager=True, dtype=pl.UInt32), "_a": starts, "_b": ends}
    ).filter(is_contested)
    contested = contested.with_columns(_cap=candidates["_cap"].gather(contested["_order"]))
    refused = _decide_contested(base.cum_sum().to_list(), contested)
    refused_frame = pl.DataFrame(
        refused, schema={"_order": pl.UInt32, "_peak": pl.Int64, "_at": pl.UInt32}, orient="row"
    )
    refused_frame = refused_frame.with_columns(
        _peak_at=events["_t"].gather(refused_frame["_at"])
    ).drop("_at")
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
                "_reserve",
                "_peak",
                pl.col("_peak_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
        )
    )
    is_refused = pl.zeros(count, pl.Boolean, eager=True).scatter(refused_frame["_order"], True)
    is_refused_event = is_refused.gather(event_order.fill_null(0)) & event_order.is_not_null()
    final = (
        events["_delta"].cast(pl.Int32).zip_with(~is_refused_event, pl.Series([0], dtype=pl.Int32))
    )
    after = (
        pl.DataFrame({"_door": events["_door"], "_load": final.cum_sum()})
        .group_by("_door")
        .agg(after=pl.col("_load").max().cast(pl.Int64))
        .join(candidates.select("_door", "device_id").unique("_door"), on="_door")
        .select("device_id", "after")
    )
    decided = decided.join(used, on="device_id", how="left")
    return decided, after


def _caps(candidates: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
    doors = candidates.select("_door", "_cap").unique("_door")
    return doors["_door"], doors["_cap"]


def _positions(events: pl.DataFrame, count: int) -> tuple[pl.Series, pl.Series]:
    """Where each candidate's start and end event is in ``events``, by candidate order."""
    index = pl.int_range(events.height, eager=True, dtype=pl.UInt32)
    is_row = events["_order"].is_not_null()
    is_start = is_row & (events["_delta"] == 1)
    is_end = is_row & (events["_delta"] == -1)
    starts = pl.zeros(count, pl.UInt32, eager=True).scatter(
        events["_order"].filter(is_start), index.filter(is_start)
    )
    ends = pl.zeros(count, pl.UInt32, eager=True).scatter(
        events["_order"].filter(is_end), index.filter(is_end)
    )
    return starts, ends


def _decide_contested(load: list[int], contested: pl.DataFrame) -> list[tuple[int, int, int]]:
    """The contested rows, in allocation order, against the load of everything else taken;
    returns the refused ones as ``(order, peak, at)``: the most codes already valid within the
    window, and the event where that is. ``load`` is changed in place."""
    refused: list[tuple[int, int, int]] = []
    for order, a, b, cap in contested.select("_order", "_a", "_b", "_cap").iter_rows():
        window = load[a:b]
        peak = max(window)
        if peak < cap:
            load[a:b] = [value + 1 for value in window]
        else:
            refused.append((order, peak, a + window.index(peak)))
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
