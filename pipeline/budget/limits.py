"""Budgets: how many codes each door may still take, and which planned rows get them.

Oracode codes can't be deleted and every door holds a limited number of them, so a code
planned past its door's budget is refused here, before anything is sent: its row is rejected
with ``budget_exhausted`` and a message giving budget, used and remaining.

A door's budget is the first of: its ``[budgets.doors]`` entry (device_id or door name), its
site's ``[budgets.sites]`` entry, ``per_door`` (``--budget-per-door``). Seam's
``max_active_codes_supported`` caps it when Seam reports one, and is the budget when nothing
is configured; a door with neither is *unbudgeted* (its codes aren't limited, and the summary
says so). ``reserve`` codes of every budget are kept free for emergencies.

Used codes are the door's codes that Seam lists plus those the ledger created (or may have
created: ``sending``) that Seam doesn't list yet (``usage.existing_codes``). Two modes:
    lifetime    every code ever created on the door counts
    concurrent  at no instant may more codes be valid on the door than its budget

Allocation order, per door: earliest ``starts_at`` first, then ``reservation_id`` (then the
tag, so the order never depends on the files or their row order). In concurrent mode a row is
taken when the door, counting its existing codes and the rows taken before it, stays within
budget at every instant of the row's window; windows that only touch (one ends as the next
starts) don't overlap.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipeline.budget.allocation import (
    allocate_concurrent,
    allocate_lifetime,
    peak_valid,
    skip_whole_doors,
)
from pipeline.catalog.doors import read_saved_answer
from pipeline.common.errors import ConfigError, DeviceDataError, UsageError
from pipeline.common.names import did_you_mean, name_key
from pipeline.common.reasons import BUDGET_EXHAUSTED
from pipeline.common.settings import BudgetConfig
from pipeline.seam.models import AccessCode

# A door at or above this share of its budget after the run is flagged in the summary.
NEAR_FULL = 0.9
ALLOCATION_ORDER = ("starts_at_utc", "reservation_id", "idempotency_tag")
# The plan columns a budget check reads (besides outcome, reason and message).
CHECKED_COLUMNS = (
    "device_id",
    "door_name",
    "site_name",
    "reservation_id",
    "idempotency_tag",
    "starts_at_utc",
    "ends_at_utc",
)
EXISTING_SCHEMA: dict[str, pl.DataType] = {
    "device_id": pl.String(),
    "access_code_id": pl.String(),
    "tag": pl.String(),
    "starts_at_utc": pl.Datetime("us", "UTC"),
    "ends_at_utc": pl.Datetime("us", "UTC"),
}


def door_budgets(doors: pl.DataFrame, budgets: BudgetConfig) -> pl.DataFrame:
    """Every door's budget: ``device_id, budget`` (null: unbudgeted) ``, budget_source``.

    Raises ConfigError when a ``[budgets.doors]`` name matches doors at several sites.
    """
    known = set(doors["device_id"])
    by_id = {key: value for key, value in budgets.doors.items() if key in known}
    names = {
        name_key(key): (key, value) for key, value in budgets.doors.items() if key not in by_id
    }
    door_entries: dict[str, int] = {}
    if names:
        for door_key, group in doors.group_by("door_key"):
            entry = names.get(str(door_key[0]))
            if entry is None:
                continue
            if group.height > 1:
                where = ", ".join(sorted(group["site_name"].fill_null("(no site)")))
                raise ConfigError(
                    f"[budgets.doors] {entry[0]!r} names {group.height} doors (sites: {where})",
                    hint="use the device_id instead",
                )
            door_entries[group["device_id"][0]] = entry[1]
    door_entries.update(by_id)
    configured = pl.DataFrame(
        {"device_id": list(door_entries), "_door": list(door_entries.values())},
        schema={"device_id": pl.String, "_door": pl.Int64},
    )
    sites = pl.DataFrame(
        {
            "site_key": [name_key(key) for key in budgets.sites],
            "_site": list(budgets.sites.values()),
        },
        schema={"site_key": pl.String, "_site": pl.Int64},
    )
    chosen = pl.coalesce("_door", "_site", pl.lit(budgets.per_door, pl.Int64))
    source = (
        pl.when(pl.col("_door").is_not_null())
        .then(pl.lit("door"))
        .when(pl.col("_site").is_not_null())
        .then(pl.lit("site"))
        .when(chosen.is_not_null())
        .then(pl.lit("per_door"))
    )
    device = pl.col("max_active_codes_supported")
    device_is_lower = device.is_not_null() & (chosen.is_null() | (device < chosen))
    return (
        doors.select("device_id", "site_key", "max_active_codes_supported")
        .join(configured, on="device_id", how="left")
        .join(sites, on="site_key", how="left")
        .select(
            "device_id",
            budget=pl.when(device_is_lower).then(device).otherwise(chosen),
            budget_source=pl.when(device_is_lower)
            .then(pl.lit("max_active_codes_supported"))
            .otherwise(source),
        )
    )


def unmatched_budget_names(doors: pl.DataFrame, budgets: BudgetConfig) -> list[str]:
    """``[budgets.doors]`` and ``[budgets.sites]`` keys that match no door or site (a typo
    would otherwise leave a door on the default budget without a word), each with the closest
    names (``(did you mean "Alpenhof"?)``)."""
    door_keys = set(doors["device_id"]) | set(doors["door_key"].drop_nulls())
    site_keys = set(doors["site_key"].drop_nulls())
    return [
        f"[budgets.doors] {key!r}{did_you_mean(key, doors['door_name'], form=' ({})')}"
        for key in budgets.doors
        if key not in door_keys and name_key(key) not in door_keys
    ] + [
        f"[budgets.sites] {key!r}{did_you_mean(key, doors['site_name'], form=' ({})')}"
        for key in budgets.sites
        if name_key(key) not in site_keys
    ]


def budget_usage(budget: str = "budget", after: str = "after") -> pl.Expr:
    """A door's share of its budget used after a run: ``after / budget``; a budget of 0 is
    full (1.0), none is null. The run's summary and the report both read it from here."""
    return (
        pl.when(pl.col(budget) > 0)
        .then(pl.col(after) / pl.col(budget))
        .when(pl.col(budget) == 0)
        .then(pl.lit(1.0))
    )


def is_near_full(usage: str = "usage") -> pl.Expr:
    """Whether a door's ``usage`` (``budget_usage``) is ``NEAR_FULL`` or more; never for a
    door without a budget."""
    return (pl.col(usage) >= NEAR_FULL).fill_null(False)


def iso_instant(column: str) -> pl.Expr:
    """An ISO 8601 instant with ``Z`` or an offset, as UTC (null when absent or unreadable)."""
    return (
        pl.col(column)
        .str.replace(r"Z$", "+00:00")
        .str.to_datetime(format="%Y-%m-%dT%H:%M:%S%.f%:z", time_zone="UTC", strict=False)
    )


def _plan_instant(column: str) -> pl.Expr:
    """A plan's ``*_utc`` column (always ``YYYY-MM-DDTHH:MM:SSZ``) as UTC."""
    return pl.col(column).str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC")


def read_code_file(path: Path) -> list[AccessCode]:
    """Codes from a JSON file holding ``/access_codes/list`` answers (for an offline plan)."""
    payload = read_saved_answer(path, what="code file", option="--codes")
    raw = payload.get("access_codes") if isinstance(payload, dict) else payload
    if not isinstance(raw, list):
        raise DeviceDataError(
            f"code file {path} is not an /access_codes/list response",
            hint='expected an object with an "access_codes" list',
        )
    try:
        return [AccessCode.model_validate(code) for code in raw]
    except ValueError as exc:
        raise DeviceDataError(f"code file {path}: {exc}".splitlines()[0]) from exc


@dataclass(frozen=True)
class BudgetCheck:
    """The plan with rows past their door's budget rejected, and the per-door budget table.

    ``doors`` has one row per door with planned rows: ``device_id, door_name, site_name,
    budget, budget_source, reserve, used, on_door, planned, over, after, remaining, usage,
    near_full`` (``on_door``: planned rows whose code is already on the door; ``after``: used
    plus planned, or in concurrent mode the most codes valid at once after the run).
    ``budgets`` is ``door_budgets``'s table; ``on_door`` the tags of planned rows whose code
    Seam (or the ledger) already has.
    """

    plan: pl.DataFrame
    doors: pl.DataFrame
    budgets: pl.DataFrame
    on_door: frozenset[str]
    mode: str
    on_exceeded: str
    counted_existing: bool
    unmatched: tuple[str, ...] = ()  # budget config keys that match no door or site

    @property
    def exceeded(self) -> pl.DataFrame:
        return self.doors.filter(pl.col("over") > 0)

    @property
    def unbudgeted(self) -> pl.DataFrame:
        return self.doors.filter(pl.col("budget").is_null())

    def abort_error(self, written: Path | None = None) -> UsageError | None:
        """With ``--on-budget-exceeded abort``: the error to stop on, when any door is over."""
        exceeded = self.exceeded
        if self.on_exceeded != "abort" or exceeded.is_empty():
            return None
        first = exceeded.row(0, named=True)
        where = f"; the plan is in {written}" if written else ""
        return UsageError(
            f"{exceeded.height} door(s) over budget, nothing was sent: door {first['door_name']}"
            f" ({first['device_id']}) needs {first['planned'] + first['over']} new codes and has"
            f" room for {first['planned']} (budget {first['budget']}, reserve"
            f" {first['reserve']}, used {first['used']}){where}",
            hint="raise the budget, or use --on-budget-exceeded reject-rows",
        )


def check_budgets(
    plan: pl.DataFrame,
    budgets: pl.DataFrame,
    existing: pl.DataFrame | None,
    config: BudgetConfig,
    *,
    now: dt.datetime,
) -> BudgetCheck:
    """Allocate each door's remaining budget to its planned rows in allocation order.

    ``budgets`` is ``door_budgets``'s table, ``existing`` is ``existing_codes``'s (None: the
    used codes are unknown and counted as none, as in an offline plan). Planned rows whose code
    is already on the door (their tag is in ``existing``) take no new budget.
    """
    counted = existing is not None
    if existing is None:
        existing = pl.DataFrame(schema=EXISTING_SCHEMA)
    if config.mode == "concurrent":
        # A code that has ended is valid at no instant still to come.
        existing = existing.filter(pl.col("ends_at_utc").is_null() | (pl.col("ends_at_utc") > now))
    # Doors by number (sorted by device_id): sorting and grouping on it is cheap.
    numbered = budgets.sort("device_id").with_row_index("_door")
    tags_on_doors = (
        existing.select("device_id", pl.col("tag").alias("idempotency_tag"), _on_door=True)
        .drop_nulls()
        .unique()
    )
    planned = (
        plan.with_row_index("_row")
        .filter(pl.col("outcome") == "planned")
        .select("_row", *CHECKED_COLUMNS)
        .with_columns(_plan_instant("starts_at_utc"), _plan_instant("ends_at_utc"))
        .join(numbered, on="device_id", how="left")
        .join(tags_on_doors, on=["device_id", "idempotency_tag"], how="left")
        .with_columns(
            pl.col("_on_door").fill_null(False),
            _cap=(pl.col("budget") - config.reserve).clip(lower_bound=0),
            _reserve=pl.lit(config.reserve, pl.Int64),
        )
        .sort("_door", *ALLOCATION_ORDER)
    )
    budgeted = planned.filter(pl.col("budget").is_not_null())
    candidates = budgeted.filter(~pl.col("_on_door"))
    used_codes = existing.join(
        budgeted.select("device_id", "_door").unique("_door"), on="device_id"
    )
    if config.mode == "concurrent":
        used = peak_valid(used_codes)
        decided, after = allocate_concurrent(candidates, used_codes, used)
    else:
        used = used_codes.group_by("device_id").agg(used=pl.len().cast(pl.Int64))
        decided, after = allocate_lifetime(candidates, used)
    if config.on_exceeded == "skip-door":
        decided = skip_whole_doors(decided)
    doors = _door_table(planned, decided, used, after, config)
    over = decided.filter(pl.col("_over"))
    # Planned rows have no reason yet: the budget's is their first.
    marked = plan.with_columns(
        plan["outcome"].scatter(over["_row"], "rejected"),
        plan["reason"].scatter(over["_row"], BUDGET_EXHAUSTED),
        plan["message"].scatter(over["_row"], over["_message"]),
    )
    return BudgetCheck(
        plan=marked,
        doors=doors,
        budgets=budgets,
        on_door=frozenset(planned.filter(pl.col("_on_door"))["idempotency_tag"]),
        mode=config.mode,
        on_exceeded=config.on_exceeded,
        counted_existing=counted,
    )


def _door_table(
    planned: pl.DataFrame,
    decided: pl.DataFrame,
    used: pl.DataFrame,
    after: pl.DataFrame,
    config: BudgetConfig,
) -> pl.DataFrame:
    per_door = planned.group_by("device_id").agg(
        pl.col("door_name").first(),
        pl.col("site_name").first(),
        pl.col("budget").first(),
        pl.col("budget_source").first(),
        on_door=pl.col("_on_door").sum().cast(pl.Int64),
    )
    counts = decided.group_by("device_id").agg(
        planned=(~pl.col("_over")).sum().cast(pl.Int64),
        over=pl.col("_over").sum().cast(pl.Int64),
    )
    budget = pl.col("budget")
    return (
        per_door.join(counts, on="device_id", how="left")
        .join(used, on="device_id", how="left")
        .join(after, on="device_id", how="left")
        .with_columns(
            pl.col("planned", "over").fill_null(0),
            # Unbudgeted doors' codes aren't counted: their used and after stay empty.
            pl.when(budget.is_not_null()).then(pl.col("used").fill_null(0)).alias("used"),
            reserve=pl.when(budget.is_not_null()).then(pl.lit(config.reserve, pl.Int64)),
        )
        # A door that takes nothing new (skipped, or full) ends where it started.
        .with_columns(
            pl.when(pl.col("planned") == 0)
            .then(pl.col("used"))
            .otherwise(pl.coalesce("after", "used"))
            .alias("after")
        )
        .with_columns(remaining=budget - pl.col("after"), usage=budget_usage())
        .with_columns(near_full=is_near_full())
        .select(
            "device_id",
            "door_name",
            "site_name",
            "budget",
            "budget_source",
            "reserve",
            "used",
            "on_door",
            "planned",
            "over",
            "after",
            "remaining",
            "usage",
            "near_full",
        )
        .sort("site_name", "door_name", "device_id", nulls_last=True)
    )
