"""Planning a few partial rows against a catalog, at a fixed now."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from pipeline.catalog.doors import DeviceCatalog
from pipeline.common.columns import CANONICAL_COLUMNS
from pipeline.common.settings import Config
from pipeline.plan.planner import plan_reservations

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
# A site of the sample device file, and a stay there (dates only).
HV = {"site_name": "Harbor View"}
STAY = {"check_in": "2027-03-12", "check_out": "2027-03-16"}


def reservations(*rows: dict[str, Any]) -> pl.DataFrame:
    """A table as ``read_reservations`` returns it, from partial rows."""
    table = pl.DataFrame(
        [{name: row.get(name) for name in CANONICAL_COLUMNS} for row in rows],
        schema=dict.fromkeys(CANONICAL_COLUMNS, pl.String),
    )
    return table.with_columns(
        source_file=pl.lit("test.csv"),
        source_line=pl.int_range(pl.len(), dtype=pl.Int64) + 2,
    ).with_row_index("row")


def plan(
    catalog: DeviceCatalog,
    *rows: dict[str, Any],
    config: Config | None = None,
    now: dt.datetime = NOW,
) -> list[dict[str, Any]]:
    table = plan_reservations(reservations(*rows), catalog, config or Config(), now=now)
    return table.to_dicts()
