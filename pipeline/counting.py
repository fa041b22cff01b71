"""Counting the codes already used on budgeted doors, from Seam and the ledger: once before the
allocation, and again just before each door's first create (another process may have used the
door's budget in between).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import anyio
import anyio.to_thread
import polars as pl

from pipeline.budgets import (
    CHECKED_COLUMNS,
    BudgetCheck,
    check_budgets,
    door_budgets,
    existing_codes,
    unmatched_budget_names,
)
from pipeline.catalog import DeviceCatalog
from pipeline.ledger import Ledger
from pipeline.models import AccessCode
from pipeline.seam import SeamClient
from pipeline.settings import BudgetConfig

# Doors listed at once when counting (reads: Seam's per-door limit is on creates).
LIST_CONCURRENCY = 8
BUDGET_EXHAUSTED = "budget_exhausted"
RECHECK_COLUMNS = (*CHECKED_COLUMNS, "outcome", "reason", "message")


async def list_door_codes(client: SeamClient, device_ids: Sequence[str]) -> list[AccessCode]:
    """Every code on the given doors: one ``/access_codes/list`` per door (all pages)."""
    codes: list[AccessCode] = []
    limiter = anyio.CapacityLimiter(LIST_CONCURRENCY)

    async def list_one(device_id: str) -> None:
        async with limiter:
            codes.extend(await client.list_access_codes(device_id))

    async with anyio.create_task_group() as group:
        for device_id in device_ids:
            group.start_soon(list_one, device_id)
    return codes


async def count_budgets(
    plan: pl.DataFrame,
    catalog: DeviceCatalog,
    config: BudgetConfig,
    *,
    now: dt.datetime,
    client: SeamClient | None = None,
    ledger: Ledger | None = None,
    listed: Sequence[AccessCode] | None = None,
) -> BudgetCheck:
    """Count each budgeted door's used codes and allocate its budget to the plan.

    Used codes come from Seam through ``client`` (budgeted doors with planned rows only) or from
    ``listed`` (a saved ``/access_codes/list``), plus the ledger's when one is given; with none
    of them the used codes are unknown (an offline plan) and the check says so.
    """

    def budgeted_doors() -> tuple[pl.DataFrame, list[str]]:
        budgets = door_budgets(catalog.doors, config)
        device_ids = (
            plan.filter(pl.col("outcome") == "planned")
            .join(budgets.filter(pl.col("budget").is_not_null()), on="device_id", how="semi")
            .get_column("device_id")
            .unique()
            .sort()
            .to_list()
        )
        return budgets, device_ids

    budgets, device_ids = await anyio.to_thread.run_sync(budgeted_doors)
    if client is not None:
        listed = await list_door_codes(client, device_ids)
    ours = await ledger.codes_on_doors(device_ids) if ledger is not None else []
    is_counted = listed is not None or ledger is not None

    def allocate() -> BudgetCheck:
        existing = existing_codes(listed or [], ours) if is_counted else None
        check = check_budgets(plan, budgets, existing, config, now=now)
        unmatched = tuple(unmatched_budget_names(catalog.doors, config))
        return dataclasses.replace(check, unmatched=unmatched)

    return await anyio.to_thread.run_sync(allocate)


class BudgetGuard:
    """Counts a budgeted door again just before its first create and says which of its planned
    rows no longer fit (in allocation order, as the plan did). ``--on-budget-exceeded abort``
    can't hold back creates already made on other doors, so here it acts as ``reject-rows``.
    Building one splits the plan by door: do it in a worker thread for a large plan."""

    def __init__(
        self,
        client: SeamClient,
        ledger: Ledger,
        check: BudgetCheck,
        config: BudgetConfig,
        *,
        now: dt.datetime,
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._budgets = check.budgets.filter(pl.col("budget").is_not_null())
        planned = check.plan.filter(pl.col("outcome") == "planned").join(
            self._budgets, on="device_id", how="semi"
        )
        self._rows = planned.select(RECHECK_COLUMNS).partition_by("device_id", as_dict=True)
        if config.on_exceeded == "abort":
            config = config.model_copy(update={"on_exceeded": "reject-rows"})
        self._config = config
        self._now = now

    @property
    def doors(self) -> frozenset[str]:
        """The budgeted doors with planned rows: each is counted again before its first create."""
        return frozenset(str(key[0]) for key in self._rows)

    async def recheck(self, device_id: str) -> dict[str, str]:
        """Tag → message for the door's planned rows that its budget can no longer take.

        Raises SeamError when the door's codes can't be listed.
        """
        listed = await self._client.list_access_codes(device_id)
        ours = await self._ledger.codes_on_doors([device_id])

        def decide() -> dict[str, str]:
            rows = self._rows[(device_id,)]
            budgets = self._budgets.filter(pl.col("device_id") == device_id)
            check = check_budgets(
                rows, budgets, existing_codes(listed, ours), self._config, now=self._now
            )
            over = check.plan.filter(pl.col("reason") == BUDGET_EXHAUSTED)
            return {
                tag: f"counted again just before the door's first create: {message}"
                for tag, message in over.select("idempotency_tag", "message").iter_rows()
            }

        return await anyio.to_thread.run_sync(decide)
