"""Reruns: what tonight's rows mean given the codes the ledger already made.

A stay is a reservation on a door: a group booking's rooms, and the doors ``[doors.also]``
adds, are each their own. A row whose code the ledger has (same reservation, door and window:
the same tag; a booking that now rounds to the same level's window is the same window) is sent
nothing again (``already_created``, decided in the apply stage). A reservation the ledger has a
code for on the same door under another tag has moved to another window since its code was
made: codes can't be deleted, so by default no new code is made and the row is rejected
``changed_after_creation`` naming the old code; with ``--reissue-changed`` the new code is made
(budget permitting) and the ledger links it to the one it replaces. A reservation on a door it
had no code on is a new stay there (its code on another door, if no row asks for it any more,
is orphaned by the run: ``Ledger.record_apply``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import polars as pl

from pipeline.common.reasons import CHANGED_AFTER_CREATION
from pipeline.ledger.store import Ledger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reruns:
    """The plan with moved reservations decided, and ``replaces``: new tag → the old tags."""

    plan: pl.DataFrame
    replaces: dict[str, str]


async def check_reruns(plan: pl.DataFrame, ledger: Ledger, *, reissue: bool) -> Reruns:
    """Find planned rows whose reservation already has a code on their door under another
    tag (several such rows of one reservation and door, e.g. two windows of an entrance, are
    each judged against all of its codes there)."""
    planned = await anyio.to_thread.run_sync(lambda: plan.filter(pl.col("outcome") == "planned"))
    ids = await anyio.to_thread.run_sync(lambda: planned["reservation_id"].unique().to_list())
    found = await ledger.codes_of_reservations(ids)

    def decide() -> Reruns:
        earlier = pl.DataFrame(
            [_described(code) for code in found],
            schema=dict.fromkeys(
                ("reservation_id", "device_id", "old_tag", "old_door", "old_window", "old_code"),
                pl.String,
            ),
            orient="row",
        )
        moved = (
            planned.join(earlier, on=["reservation_id", "device_id"])
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
                " made",
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
    """A code as a moved row's message names it: reservation, door, tag, door's name, window,
    code."""
    door = code["device_id"] if code["door_name"] is None else code["door_name"]
    access_code_id = code["access_code_id"]
    return (
        code["reservation_id"],
        code["device_id"],
        code["idempotency_tag"],
        door,
        f"{code['starts_at']} → {code['ends_at']}",
        "(outcome unknown)" if access_code_id is None else access_code_id,
    )


async def link_replacements(ledger: Ledger, replaces: dict[str, str]) -> None:
    """Record which code each reissued code replaces."""
    if replaces:
        await ledger.record_replacements(replaces)


# A run that orphans more codes than it keeps, and at least this many, may have read a partial
# export: said, since orphaned guests drop out of the hand-off.
MANY_ORPHANS = 5


def say_many_orphaned(orphaned: int, kept: int) -> None:
    """Warn when this run orphaned at least ``MANY_ORPHANS`` codes and more than the ``kept``
    codes its input still has: a truncated or partial export orphans every stay it leaves out,
    and the pins file stops listing those guests (their codes still open their doors)."""
    if orphaned >= MANY_ORPHANS and orphaned > kept:
        log.warning(
            f"this run orphaned {orphaned} code(s), more than the {kept} its input still has:"
            " is tonight's export complete? A partial export orphans every stay it leaves out"
            " (their codes still open their doors, but pins no longer lists those guests);"
            " rerun apply with the whole export and they are current again"
        )


def say_no_longer_asked(per_door: Mapping[str, int]) -> None:
    """Say, once (the run that first finds them), which codes ``[doors.also]`` made that the
    config no longer asks for while their reservations are still in the input: they stay
    valid (codes can't be deleted) and in the pins file, and are not orphaned."""
    if not per_door:
        return
    count = sum(per_door.values())
    doors = ", ".join(f"{door} ({n})" for door, n in sorted(per_door.items()))
    log.warning(
        f"[doors.also] no longer asks for {count} code(s) it made on {doors} whose"
        " reservations are still in the input: codes can't be deleted, so they stay valid and"
        " in the pins file until their windows end; they are not orphaned (this is said once)"
    )
