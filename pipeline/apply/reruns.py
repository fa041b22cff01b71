"""Reruns: what tonight's rows mean given the codes the ledger already made.

A row whose code the ledger has (same reservation, door and window: the same tag) is sent
nothing again (``already_created``, decided in the apply stage). A reservation the ledger has
a code for under another tag has moved (another door or window) since its code was made:
codes can't be deleted, so by default no new code is made and the row is rejected
``changed_after_creation`` naming the old code; with ``--reissue-changed`` the new code is made
(budget permitting) and the ledger links it to the one it replaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import polars as pl

from pipeline.ledger.store import Ledger
from pipeline.plan.reasons import CHANGED_AFTER_CREATION


@dataclass(frozen=True)
class Reruns:
    """The plan with moved reservations decided, and ``replaces``: new tag → the old tags."""

    plan: pl.DataFrame
    replaces: dict[str, str]


async def check_reruns(plan: pl.DataFrame, ledger: Ledger, *, reissue: bool) -> Reruns:
    """Find planned rows whose reservation already has a code under another tag."""
    planned = await anyio.to_thread.run_sync(lambda: plan.filter(pl.col("outcome") == "planned"))
    ids = await anyio.to_thread.run_sync(lambda: planned["reservation_id"].unique().to_list())
    found = await ledger.codes_of_reservations(ids)

    def decide() -> Reruns:
        earlier = pl.DataFrame(
            [_described(code) for code in found],
            schema=dict.fromkeys(
                ("reservation_id", "old_tag", "old_door", "old_window", "old_code"), pl.String
            ),
            orient="row",
        )
        moved = (
            planned.join(earlier, on="reservation_id")
            .group_by("reservation_id", "idempotency_tag")
            .agg(
                is_same=(pl.col("old_tag") == pl.col("idempotency_tag")).any(),
                old_tag=pl.col("old_tag").sort().last(),
                old=pl.format("{} on door {} for {}", "old_code", "old_door", "old_window")
                .sort()
                .str.join("; "),
            )
            .filter(~pl.col("is_same"))
        )
        if reissue or moved.is_empty():
            return Reruns(plan, dict(moved.select("idempotency_tag", "old_tag").rows()))
        rows = plan.with_row_index("_row").join(
            moved.select("idempotency_tag", "old"), on="idempotency_tag", how="left"
        )
        hit = rows.filter(pl.col("old").is_not_null() & (pl.col("outcome") == "planned"))
        messages = hit.select(
            pl.format(
                "reservation {} already has code {}; codes can't be deleted, so no new code was"
                " made: decide what the guest needs, or rerun with --reissue-changed",
                "reservation_id",
                "old",
            )
        ).to_series()
        marked = plan.with_columns(
            plan["outcome"].scatter(hit["_row"], "rejected"),
            plan["reason"].scatter(hit["_row"], CHANGED_AFTER_CREATION),
            plan["message"].scatter(hit["_row"], messages),
        )
        return Reruns(marked, {})

    return await anyio.to_thread.run_sync(decide)


def _described(code: dict[str, Any]) -> tuple[str, ...]:
    """A code as a moved row's message names it: reservation, tag, door, window, code."""
    door = code["device_id"] if code["door_name"] is None else code["door_name"]
    access_code_id = code["access_code_id"]
    return (
        code["reservation_id"],
        code["idempotency_tag"],
        door,
        f"{code['starts_at']} → {code['ends_at']}",
        "(outcome unknown)" if access_code_id is None else access_code_id,
    )


async def link_replacements(ledger: Ledger, replaces: dict[str, str]) -> None:
    """Record which code each reissued code replaces."""
    if replaces:
        await ledger.record_replacements(replaces)
