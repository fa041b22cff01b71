from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import stamina

from pipeline.catalog.doors import DeviceCatalog, read_device_file
from pipeline.plan.planner import plan_reservations
from pipeline.settings import CANONICAL_COLUMNS, Config
from tests.virtual_time import VIRTUAL_BACKEND

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_DEVICES = ROOT / "inputs" / "sandbox-devices.json"
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def no_retry_sleeps():
    """Retries keep their logic (attempt count, what is retried) but never sleep."""
    with stamina.set_testing(True, attempts=10, cap=True):
        yield


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> object:
    """Async tests run on asyncio; those marked ``virtual_time`` on a loop whose clock jumps
    instead of sleeping (``tests.virtual_time``). A module's own ``anyio_backend`` wins."""
    if request.node.get_closest_marker("virtual_time") is not None:
        return VIRTUAL_BACKEND
    return "asyncio"


@pytest.fixture(scope="session")
def sandbox_catalog() -> DeviceCatalog:
    return read_device_file(SANDBOX_DEVICES)


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
