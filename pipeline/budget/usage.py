"""Counting each budgeted door's used codes: once before the allocation, again before a create.

A door's used codes are what the look at it found (``apply.looking``: one list per door, every
page), plus the ledger's codes that Seam doesn't list yet. The look taken before the allocation
counts the budget; a budgeted door is counted again just before its first create only when
that look has gone stale (``RECOUNT_AFTER``), since another system may have used its budget in
between (``BudgetGuard``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import polars as pl

from pipeline.budget.limits import (
    CHECKED_COLUMNS,
    BudgetCheck,
    check_budgets,
    door_budgets,
    iso_instant,
    unmatched_budget_names,
)
from pipeline.catalog.doors import DeviceCatalog
from pipeline.catalog.looking import DoorLook, find_tags, list_door_codes, look_at_doors
from pipeline.common.reasons import BUDGET_EXHAUSTED
from pipeline.common.settings import BudgetConfig
from pipeline.common.tags import TAG_PATTERN
from pipeline.ledger.store import Ledger
from pipeline.seam.client import SeamClient
from pipeline.seam.models import AccessCode

RECHECK_COLUMNS = (*CHECKED_COLUMNS, "outcome", "reason", "message")
# A door's look counts its budget for this long (seconds). Our own runs can't use a door's
# budget meanwhile (the run lock), only another system can (Seam's console, another
# integration); ten minutes keeps that window small while a nightly run of a few thousand
# doors, which looks at them all in its first minute or two, never looks twice. A door that is
# full after all still answers `no_space_for_access_code_on_device`, which closes it.
RECOUNT_AFTER = 600.0


def existing_codes(
    listed: Iterable[AccessCode], ledger_codes: Iterable[Mapping[str, Any]] = ()
) -> pl.DataFrame:
    """The codes that count as used on their doors (EXISTING_SCHEMA).

    ``listed``: what Seam's ``/access_codes/list`` answered. ``ledger_codes``: the ledger's
    ``created`` and ``sending`` codes (``idempotency_tag, device_id, access_code_id,
    starts_at, ends_at``); one counts only when Seam lists no code with its id or its tag on
    its door (Seam's list may lag behind a create).
    """
    seam = pl.DataFrame(
        [
            {
                "device_id": code.device_id,
                "access_code_id": code.access_code_id,
                "name": code.name,
                "starts_at": code.starts_at,
                "ends_at": code.ends_at,
            }
            for code in listed
        ],
        schema=dict.fromkeys(
            ("device_id", "access_code_id", "name", "starts_at", "ends_at"), pl.String
        ),
    ).select(
        "device_id",
        "access_code_id",
        pl.col("name").str.extract(f"({TAG_PATTERN})").alias("tag"),
        "starts_at",
        "ends_at",
    )
    ours = pl.DataFrame(
        list(ledger_codes),
        schema={
            "idempotency_tag": pl.String,
            "device_id": pl.String,
            "access_code_id": pl.String,
            "starts_at": pl.String,
            "ends_at": pl.String,
        },
    ).rename({"idempotency_tag": "tag"})
    listed_tags = seam.select("device_id", "tag").drop_nulls().unique()
    listed_ids = seam.select("access_code_id").unique()
    unlisted = (
        ours.join(listed_tags.with_columns(_by_tag=True), on=["device_id", "tag"], how="left")
        .join(listed_ids.with_columns(_by_id=True), on="access_code_id", how="left")
        .filter(pl.col("_by_tag").is_null() & pl.col("_by_id").is_null())
    )
    both = pl.concat([seam, unlisted.select(seam.columns)])
    return both.select(
        "device_id",
        "access_code_id",
        "tag",
        starts_at_utc=iso_instant("starts_at"),
        ends_at_utc=iso_instant("ends_at"),
    )


async def look_at_budgeted_doors(
    client: SeamClient,
    catalog: DeviceCatalog,
    config: BudgetConfig,
    device_ids: Collection[str],
) -> DoorLook:
    """The run's one look at each budgeted door among ``device_ids`` (the doors with work): it
    is taken before the allocation, which counts what it finds. Other doors are looked at by
    their first job, as they come."""
    budgets = await anyio.to_thread.run_sync(door_budgets, catalog.doors, config)
    budgeted = set(budgets.filter(pl.col("budget").is_not_null())["device_id"])
    return await look_at_doors(client, sorted(budgeted & set(device_ids)))


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


@dataclass(frozen=True)
class Recount:
    """A door counted again: ``over`` maps the tags its budget can no longer take to why;
    ``found`` the planned tags a code on the door already carries, to that code."""

    over: dict[str, str]
    found: dict[str, AccessCode]


class BudgetGuard:
    """Counts a budgeted door again just before its first create when its look has gone stale
    (``RECOUNT_AFTER``), and says which of its planned rows no longer fit (in allocation order,
    as the plan did). ``--on-budget-exceeded abort`` can't hold back creates already made on
    other doors, so here it acts as ``reject-rows``. Building one splits the plan by door: do it
    in a worker thread for a large plan."""

    def __init__(
        self,
        client: SeamClient,
        ledger: Ledger,
        check: BudgetCheck,
        config: BudgetConfig,
        *,
        now: dt.datetime,
        listed_at: Mapping[str, float] | None = None,
        recount_after: float = RECOUNT_AFTER,
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
        self._listed_at = dict(listed_at or {})
        self._recount_after = recount_after

    @property
    def doors(self) -> frozenset[str]:
        """The budgeted doors with planned rows: each is counted again before its first create
        unless its look is fresh."""
        return frozenset(str(key[0]) for key in self._rows)

    def is_fresh(self, device_id: str) -> bool:
        """Whether the door's look still counts its budget (no recount needed)."""
        listed_at = self._listed_at.get(device_id)
        return listed_at is not None and anyio.current_time() - listed_at < self._recount_after

    async def recheck(self, device_id: str) -> Recount:
        """List the door again: the planned rows its budget can no longer take, and the planned
        tags already on it. Raises SeamError when the door's codes can't be listed."""
        listed = await self._client.list_access_codes(device_id)
        self._listed_at[device_id] = anyio.current_time()
        ours = await self._ledger.codes_on_doors([device_id])

        def decide() -> Recount:
            rows = self._rows[(device_id,)]
            found = find_tags(listed, dict.fromkeys(rows["idempotency_tag"], device_id))
            budgets = self._budgets.filter(pl.col("device_id") == device_id)
            check = check_budgets(
                rows, budgets, existing_codes(listed, ours), self._config, now=self._now
            )
            over = check.plan.filter(pl.col("reason") == BUDGET_EXHAUSTED)
            return Recount(
                over={
                    tag: f"counted again just before the door's first create: {message}"
                    for tag, message in over.select("idempotency_tag", "message").iter_rows()
                },
                found=found,
            )

        return await anyio.to_thread.run_sync(decide)
