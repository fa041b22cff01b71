"""``plan``: read the files and plan them against the doors, with the budget check."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
import polars as pl

from pipeline.budget.limits import BudgetCheck, read_code_file
from pipeline.budget.usage import count_budgets
from pipeline.catalog.checks import check_config
from pipeline.catalog.sources import load_catalog
from pipeline.common.errors import UsageError
from pipeline.common.outputs import check_output_path, default_output_path, write_table
from pipeline.common.settings import BudgetOptions, load_config, load_credentials
from pipeline.plan.planner import plan_reservations
from pipeline.read.files import check_input_file, read_reservations
from pipeline.seam.client import SeamClient


@dataclass(frozen=True)
class PlanRun:
    """What ``plan_files`` did: the plan table, its budget check, and where it was written."""

    plan: pl.DataFrame
    out: Path
    budgets: BudgetCheck

    @property
    def exit_code(self) -> int:
        """0 when every row is planned or skipped, 1 when any row is rejected."""
        return 1 if (self.plan["outcome"] == "rejected").any() else 0


async def plan_files(
    paths: Sequence[Path],
    *,
    config_path: Path | None = None,
    devices: Path | None = None,
    codes: Path | None = None,
    out: Path | None = None,
    budget: BudgetOptions | None = None,
    now: dt.datetime | None = None,
) -> PlanRun:
    """Read, plan, check budgets and write: one output row per input row.

    The config's door, site and level names are checked against the doors first
    (``check_config``: one warning each, logged before any row is planned).
    Used codes come from Seam, or with ``devices`` (offline) from ``codes`` when given (else
    they are unknown, and the check says so). Raises UsageError (exit 2), also for ``codes``
    without ``devices`` and for ``--on-budget-exceeded abort`` with a door over budget (after
    writing the plan).
    """
    if codes is not None and devices is None:
        raise UsageError("--codes goes with --devices", hint="without --devices Seam is asked")
    now = now or dt.datetime.now(dt.UTC)
    out = out or default_output_path("plan", now=now)
    await anyio.to_thread.run_sync(check_output_path, out)
    config = (budget or BudgetOptions()).apply(
        await anyio.to_thread.run_sync(load_config, config_path)
    )
    # The files' own checks (each there, a file, not empty) cost no request; then the doors:
    # a missing API key (or an unreachable Seam) stops the run before a large export is read.
    for path in paths:
        await anyio.to_thread.run_sync(check_input_file, path)
    catalog = await load_catalog(config, devices)
    await anyio.to_thread.run_sync(check_config, config, catalog)
    reservations = await anyio.to_thread.run_sync(read_reservations, paths, config)
    plan = await anyio.to_thread.run_sync(
        lambda: plan_reservations(reservations, catalog, config, now=now)
    )
    if devices is None:
        async with SeamClient(load_credentials(config)) as client:
            check = await count_budgets(plan, catalog, config.budgets, now=now, client=client)
    else:
        listed = None if codes is None else await anyio.to_thread.run_sync(read_code_file, codes)
        check = await count_budgets(plan, catalog, config.budgets, now=now, listed=listed)
    written = await anyio.to_thread.run_sync(write_table, check.plan, out)
    run = PlanRun(plan=check.plan, out=written, budgets=check)
    if (error := check.abort_error(run.out)) is not None:
        raise error
    return run
