"""Budget tables for tests, with times in hours after BASE (2027-01-01T00:00Z): a stay
``("R1", "d1", 0, 24)`` is reservation R1 on door d1, valid from hour 0 up to (not including)
hour 24.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from pipeline.budget.limits import EXISTING_SCHEMA, BudgetCheck, check_budgets
from pipeline.common.settings import BudgetConfig

BASE = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
PLAN_SCHEMA = dict.fromkeys(
    (
        "reservation_id",
        "device_id",
        "door_name",
        "site_name",
        "idempotency_tag",
        "starts_at_utc",
        "ends_at_utc",
        "outcome",
        "reason",
        "message",
    ),
    pl.String,
)


def at(hour: float) -> dt.datetime:
    return BASE + dt.timedelta(hours=hour)


def stamp(hour: float) -> str:
    """An instant as the plan writes it: ``2027-01-03T15:00:00Z``."""
    return at(hour).strftime("%Y-%m-%dT%H:%M:%SZ")


def tag(index: int) -> str:
    return f"opl-{index:020d}"


def stays(*rows: tuple[str, str, int, int], first_tag: int = 0) -> pl.DataFrame:
    """A plan of planned rows from ``(reservation_id, device_id, start hour, end hour)``; row i
    gets the tag ``tag(first_tag + i)`` and the door ``Door <device_id>`` at site Hotel."""
    return pl.DataFrame(
        [
            {
                "reservation_id": reservation_id,
                "device_id": device_id,
                "door_name": f"Door {device_id}",
                "site_name": "Hotel",
                "idempotency_tag": tag(first_tag + i),
                "starts_at_utc": stamp(start),
                "ends_at_utc": stamp(end),
                "outcome": "planned",
                "reason": None,
                "message": None,
            }
            for i, (reservation_id, device_id, start, end) in enumerate(rows)
        ],
        schema=PLAN_SCHEMA,
    )


def codes(*rows: tuple[str, str | None, int | None, int | None]) -> pl.DataFrame:
    """``existing_codes``'s table from ``(device_id, tag, start hour, end hour)`` (None: open)."""
    return pl.DataFrame(
        [
            {
                "device_id": device_id,
                "access_code_id": f"ac-{i}",
                "tag": code_tag,
                "starts_at_utc": None if start is None else at(start),
                "ends_at_utc": None if end is None else at(end),
            }
            for i, (device_id, code_tag, start, end) in enumerate(rows)
        ],
        schema=EXISTING_SCHEMA,
    )


def past_codes(device_id: str, count: int) -> list[tuple[str, str | None, int, int]]:
    """``count`` codes on a door that ended long ago (lifetime mode counts them all)."""
    return [(device_id, None, -500 + 24 * i, -480 + 24 * i) for i in range(count)]


def budget_table(budgets: dict[str, int | None]) -> pl.DataFrame:
    """``door_budgets``'s table from device_id → budget (None: unbudgeted)."""
    return pl.DataFrame(
        {"device_id": list(budgets), "budget": list(budgets.values())},
        schema={"device_id": pl.String, "budget": pl.Int64},
    ).with_columns(budget_source=pl.when(pl.col("budget").is_not_null()).then(pl.lit("per_door")))


def run(
    plan: pl.DataFrame,
    budgets: dict[str, int | None],
    *,
    mode: str = "lifetime",
    reserve: int = 0,
    on_exceeded: str = "reject-rows",
    existing: pl.DataFrame | None = None,
    now: float = 0,
) -> BudgetCheck:
    config = BudgetConfig.model_validate(
        {"mode": mode, "reserve": reserve, "on_exceeded": on_exceeded}
    )
    return check_budgets(plan, budget_table(budgets), existing, config, now=at(now))


def rejected(check: BudgetCheck) -> list[str]:
    """The reservation ids the budget rejected, sorted."""
    return sorted(check.plan.filter(pl.col("reason") == "budget_exhausted")["reservation_id"])


def door_row(check: BudgetCheck, device_id: str = "d1") -> dict[str, Any]:
    (row,) = check.doors.filter(pl.col("device_id") == device_id).to_dicts()
    return row
